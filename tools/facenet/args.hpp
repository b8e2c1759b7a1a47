// A small, strict command-line parser for the facenet tool: --flag, --key value, --key=value and
// positionals; unknown flags are errors (a typo must not be silently ignored).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"

namespace facenet::cli {

class args {
 public:
  // `flags` take no value; `options` take one (repeatable options keep every value).
  args(int argc, char** argv, int first, const std::set<std::string>& flags, const std::set<std::string>& options) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--") {
        for (++i; i < argc; ++i) positional_.push_back(argv[i]);
        break;
      }
      if (a.size() < 3 || a.compare(0, 2, "--") != 0) {
        positional_.push_back(a);
        continue;
      }
      std::string key = a.substr(2), value;
      const auto eq = key.find('=');
      const bool inline_value = eq != std::string::npos;
      if (inline_value) {
        value = key.substr(eq + 1);
        key = key.substr(0, eq);
      }
      if (flags.count(key)) {
        FACENET_CHECK(!inline_value, argument_error, "--" + key + " takes no value");
        values_[key].push_back("1");
      } else if (options.count(key)) {
        if (!inline_value) {
          FACENET_CHECK(i + 1 < argc, argument_error, "--" + key + " needs a value");
          value = argv[++i];
        }
        values_[key].push_back(value);
      } else {
        throw argument_error("unknown option --" + key + " (see --help)");
      }
    }
  }

  bool has(const std::string& key) const { return values_.count(key) != 0; }
  std::string get(const std::string& key, const std::string& fallback = "") const {
    auto it = values_.find(key);
    return it == values_.end() ? fallback : it->second.back();
  }
  std::vector<std::string> all(const std::string& key) const {
    auto it = values_.find(key);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }
  double number(const std::string& key, double fallback) const {
    if (!has(key)) return fallback;
    const std::string v = get(key);
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    FACENET_CHECK(end && *end == '\0' && !v.empty(), argument_error, "--" + key + " expects a number, got '" + v + "'");
    return d;
  }
  // "--key a,b,c" with exactly `count` numbers.
  std::vector<double> numbers(const std::string& key, std::size_t count) const {
    const std::string v = get(key);
    std::vector<double> out;
    for (std::size_t start = 0, comma; start <= v.size(); start = comma + 1) {
      comma = std::min(v.find(',', start), v.size());
      const std::string part = v.substr(start, comma - start);
      char* end = nullptr;
      out.push_back(std::strtod(part.c_str(), &end));
      FACENET_CHECK(!part.empty() && end && *end == '\0', argument_error, "--" + key + " expects comma-separated numbers, got '" + v + "'");
    }
    FACENET_CHECK(out.size() == count, argument_error,
                  "--" + key + " expects " + std::to_string(count) + " comma-separated numbers, got '" + v + "'");
    return out;
  }
  long integer(const std::string& key, long fallback) const {
    if (!has(key)) return fallback;
    const std::string v = get(key);
    char* end = nullptr;
    const long d = std::strtol(v.c_str(), &end, 10);
    FACENET_CHECK(end && *end == '\0' && !v.empty(), argument_error, "--" + key + " expects an integer, got '" + v + "'");
    return d;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

}  // namespace facenet::cli
