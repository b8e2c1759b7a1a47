// Distinct exit codes per error kind, so scripts can tell a missing file from a corrupt one.
#pragma once

#include <stdexcept>
#include <string>

#include "facenet/core/error.hpp"

namespace facenet::cli {

enum exit_code : int {
  exit_ok = 0,
  exit_failure = 1,      // anything not covered below
  exit_usage = 2,        // bad command line (argument_error)
  exit_io = 3,           // file missing / unreadable / unwritable
  exit_format = 4,       // corrupt or unrecognised file contents
  exit_shape = 5,        // shapes disagree (e.g. weights for another architecture)
  exit_unsupported = 6,  // valid but not supported (dtype, compression, ...)
  exit_numeric = 7,      // NaN/Inf, divergence
  exit_no_face = 8,      // a command needed a face and found none
};

// Not a library error: the input was valid, it just shows no face (mapped to exit_no_face).
class no_face_error : public std::runtime_error {
 public:
  explicit no_face_error(const std::string& what) : std::runtime_error(what) {}
};

inline int exit_code_for(error_kind k) {
  switch (k) {
    case error_kind::io: return exit_io;
    case error_kind::format: return exit_format;
    case error_kind::shape: return exit_shape;
    case error_kind::unsupported: return exit_unsupported;
    case error_kind::numeric: return exit_numeric;
    case error_kind::argument: return exit_usage;
  }
  return exit_failure;
}

}  // namespace facenet::cli
