// Helpers for tests that run the built `facenet` tool as a subprocess (test_cli*.cpp): run it with
// captured stdout/stderr and exit code, a per-process scratch folder, random NN4-small2 weights
// written by the library, and an independent .npy writer.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "facenet/io/safetensors.hpp"
#include "facenet/models/nn4_small2.hpp"
#include "model_testing.hpp"
#include "testing.hpp"

namespace cli_testing {

namespace fs = std::filesystem;

struct run_result {
  int code = -1;
  std::string out, err;
};

inline fs::path tool() { return fs::path(FACENET_BINARY_DIR) / "tools" / "facenet" / "facenet"; }

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

inline fs::path scratch_dir() {
  const fs::path d = fs::temp_directory_path() / ("facenet_test_cli_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}

// Runs `facenet ARGS` (ARGS already shell-quoted where needed) with 2 threads.
inline run_result run(const std::string& arguments) {
  if (!fs::exists(tool())) {
    ADD_FAILURE() << "the facenet tool was not built at " << tool() << " (build the facenet_tool target)";
    return {};
  }
  const fs::path err = scratch_dir() / "stderr.txt";
  const std::string cmd = "OMP_NUM_THREADS=2 '" + tool().string() + "' " + arguments + " 2>'" + err.string() + "'";
  FILE* p = ::popen(cmd.c_str(), "r");
  run_result r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.err = slurp(err);
  return r;
}

inline std::string q(const fs::path& p) { return "'" + p.string() + "'"; }

inline fs::path shared() { return facenet::testing::shared_dir(); }

#define REQUIRE_SHARED_PATH(p)                                                        \
  do {                                                                                \
    if (!fs::exists(p)) GTEST_SKIP() << "shared input " << (p) << " not present"; \
  } while (0)

// Random NN4-small2 weights written by the library (the tool must reproduce the library's numbers).
inline fs::path nn4_weights() {
  const fs::path path = scratch_dir() / "nn4_random.safetensors";
  if (!fs::exists(path)) {
    facenet::models::nn4_small2<float> m;
    facenet::testing::randomize_parameters(m.root(), 11);
    facenet::io::save_safetensors(path.string(), m.export_weights());
  }
  return path;
}

// A little-endian float32 .npy of any shape (the test's own writer, independent of the tool's).
inline void write_npy(const fs::path& path, const facenet::Tensor<float>& t) {
  std::string dims;
  for (std::int64_t i = 0; i < t.rank(); ++i) dims += std::to_string(t.size(static_cast<int>(i))) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  out.put(static_cast<char>(header.size() & 0xff)).put(static_cast<char>(header.size() >> 8));
  out << header;
  out.write(reinterpret_cast<const char*>(t.data()), static_cast<std::streamsize>(t.numel() * 4));
}

}  // namespace cli_testing
