// What a name mapping (file tensor names -> model parameter names) found: which source tensors it
// used, which model parameters had no source, and which source tensors nothing asked for.
#pragma once

#include <string>
#include <vector>

namespace facenet::io {

struct mapping_report {
  std::vector<std::string> mapped;   // model names produced
  std::vector<std::string> missing;  // model names with no source tensor
  std::vector<std::string> unused;   // source names nothing used
  bool complete() const noexcept { return missing.empty(); }
};

}  // namespace facenet::io
