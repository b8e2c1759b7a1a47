// OpenFace nn4.small2.v1 as the per-tensor CSV directory of the Keras-OpenFace port: one file per
// tensor, "<layer>_<w|b|m|v>.csv", each a row of comma-separated floats. Conv weights are in Torch
// order [out, in, kh, kw], the dense weight is [128, 736]; BN as _w (gamma), _b (beta), _m (running
// mean), _v (running variance). Files are matched against the nn4_small2 table: absent tensors are
// reported as missing, CSV files nothing asked for as unused.
#pragma once

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/io/mapping_report.hpp"
#include "facenet/io/nn4_names.hpp"
#include "facenet/io/protobuf.hpp"
#include "facenet/io/tensor_map.hpp"

namespace facenet::io {
namespace openface_csv {

// "inception_3a_3x3_bn1.running_var" -> "inception_3a_3x3_bn1_v.csv"
inline std::string file_name(const std::string& param) {
  const std::size_t dot = param.rfind('.');
  const std::string field = param.substr(dot + 1);
  const char* suffix = field == "weight" ? "_w" : field == "bias" ? "_b" : field == "running_mean" ? "_m" : "_v";
  return param.substr(0, dot) + suffix + ".csv";
}

// All numbers of CSV text (separators: commas and whitespace), locale-independent; `what` names it in errors.
inline std::vector<float> parse_numbers(const char* text, std::size_t size, const std::string& what) {
  const char* p = text;
  const char* end = text + size;
  std::vector<float> values;
  while (p != end) {
    if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
      ++p;
      continue;
    }
    const char* start = p + (*p == '+');  // from_chars rejects a leading '+'
    float v = 0;
    const auto r = std::from_chars(start, end, v);
    if (r.ec == std::errc::result_out_of_range)
      throw format_error(what + " at offset " + std::to_string(p - text) + ": number out of float range");
    if (r.ec != std::errc() || r.ptr == start)
      throw format_error(what + " at offset " + std::to_string(p - text) + ": expected a number, found '" +
                         std::string(p, std::min<std::ptrdiff_t>(end - p, 16)) + "'");
    values.push_back(v);
    p = r.ptr;
  }
  return values;
}

inline std::vector<float> parse_numbers(const std::string& path) {
  const std::vector<std::uint8_t> raw = read_file_bytes(path);
  return parse_numbers(reinterpret_cast<const char*>(raw.data()), raw.size(), path);
}

inline Tensor<float> read_tensor(const std::string& path, const facenet::shape& dims) {
  const std::vector<float> values = parse_numbers(path);
  FACENET_CHECK(static_cast<std::int64_t>(values.size()) == dims.numel(), format_error,
                path + ": expected " + std::to_string(dims.numel()) + " values for shape " + dims.str() + ", found " +
                    std::to_string(values.size()));
  Tensor<float> t = Tensor<float>::uninitialized(dims);
  std::copy(values.begin(), values.end(), t.data());
  return t;
}

}  // namespace openface_csv

// Reads every nn4_small2 tensor present in `dir` (names from nn4_names.hpp).
inline tensor_map read_openface_csv_dir(const std::string& dir, mapping_report& report) {
  namespace fs = std::filesystem;
  FACENET_CHECK(fs::is_directory(dir), io_error, "'" + dir + "' is not a directory");
  tensor_map out;
  out.metadata["source_format"] = "openface-csv";
  out.metadata["architecture"] = "nn4_small2";
  std::set<std::string> used;
  for (const nn4_param& p : nn4_small2_parameters()) {
    const std::string file = openface_csv::file_name(p.name);
    const fs::path path = fs::path(dir) / file;
    if (!fs::exists(path)) {
      report.missing.push_back(p.name);
      continue;
    }
    used.insert(file);
    out.add(p.name, openface_csv::read_tensor(path.string(), p.dims), "csv");
    report.mapped.push_back(p.name);
  }
  std::vector<std::string> stray;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".csv" && !used.count(e.path().filename().string()))
      stray.push_back(e.path().filename().string());
  std::sort(stray.begin(), stray.end());
  report.unused.insert(report.unused.end(), stray.begin(), stray.end());
  return out;
}

}  // namespace facenet::io
