// The libFuzzer main of every fuzz_<name> target. tests/fuzz/CMakeLists.txt compiles this file once
// and links it as each fuzz_<name> executable; the executable's own name selects the entry point
// of fuzz_entry_points.hpp, so all targets share one body and one (slow) compilation.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz_entry_points.hpp"

namespace {
const facenet::fuzz::entry_point* selected = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  std::string exe = *argc > 0 ? (*argv)[0] : "";
  exe = exe.substr(exe.find_last_of('/') + 1);
  const std::string prefix = "fuzz_";
  if (exe.rfind(prefix, 0) == 0) selected = facenet::fuzz::find_entry_point(exe.substr(prefix.size()));
  if (!selected) {
    std::fprintf(stderr, "'%s' names no fuzz entry point (expected fuzz_<name>, see fuzz_entry_points.hpp)\n", exe.c_str());
    std::exit(2);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  facenet::fuzz::consume(*selected, data, size);
  return 0;
}
