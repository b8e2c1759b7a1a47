// One exception hierarchy for the whole library. Every message starts with a stable id
// ("[facenet.format]") so users and the CLI can tell the kinds apart without parsing prose.
#pragma once

#include <cstddef>
#include <stdexcept>
#include <string>
#include <vector>

namespace facenet {

enum class error_kind { io, format, shape, unsupported, numeric, argument };

inline const char* error_kind_name(error_kind k) noexcept {
  switch (k) {
    case error_kind::io: return "io";
    case error_kind::format: return "format";
    case error_kind::shape: return "shape";
    case error_kind::unsupported: return "unsupported";
    case error_kind::numeric: return "numeric";
    case error_kind::argument: return "argument";
  }
  return "unknown";
}

class error : public std::runtime_error {
 public:
  error(error_kind kind, const std::string& what)
      : std::runtime_error("[facenet." + std::string(error_kind_name(kind)) + "] " + what), kind_(kind) {}
  error_kind kind() const noexcept { return kind_; }

 private:
  error_kind kind_;
};

// Thin subclasses so callers can catch one kind without inspecting kind().
#define FACENET_DEFINE_ERROR(name, kind_value)                                  \
  class name : public error {                                                   \
   public:                                                                      \
    explicit name(const std::string& what) : error(error_kind::kind_value, what) {} \
  };
FACENET_DEFINE_ERROR(io_error, io)
FACENET_DEFINE_ERROR(format_error, format)
FACENET_DEFINE_ERROR(shape_error, shape)
FACENET_DEFINE_ERROR(unsupported_error, unsupported)
FACENET_DEFINE_ERROR(numeric_error, numeric)
FACENET_DEFINE_ERROR(argument_error, argument)
#undef FACENET_DEFINE_ERROR

// Up to `limit` names for an error message, then how many there are in all: a message listing 600
// tensor names hides its point.
inline std::string list_names(const std::vector<std::string>& names, std::size_t limit = 12) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > limit) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s;
}

}  // namespace facenet

// Precondition check that throws the named error kind; the message is built only on failure.
#define FACENET_CHECK(cond, error_type, msg) \
  do {                                       \
    if (!(cond)) throw error_type(msg);      \
  } while (0)
