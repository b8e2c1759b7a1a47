// Weight conversion: detect a published file's format from its magic bytes, read it, map its
// tensors onto one architecture's names and layout (facenet-pytorch names, OIHW), check every name
// and shape, and write the library's safetensors file with the metadata the model needs. Used by
// weights_converter/ (facenet_convert) and the `facenet convert` command.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/arch_names.hpp"
#include "facenet/io/mmap_file.hpp"
#include "facenet/io/npy.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/io/tensor_map.hpp"
#include "facenet/io/torch_file.hpp"
#include "facenet/io/zip.hpp"

namespace facenet::io {

enum class weight_format { auto_detect, pytorch, npy, npz, safetensors };

inline const char* weight_format_name(weight_format f) noexcept {
  switch (f) {
    case weight_format::auto_detect: return "auto";
    case weight_format::pytorch: return "pytorch";
    case weight_format::npy: return "npy";
    case weight_format::npz: return "npz";
    case weight_format::safetensors: return "safetensors";
  }
  return "?";
}

inline weight_format parse_weight_format(const std::string& s) {
  for (weight_format f : {weight_format::auto_detect, weight_format::pytorch, weight_format::npy, weight_format::npz,
                          weight_format::safetensors})
    if (s == weight_format_name(f)) return f;
  if (s == "tf-checkpoint" || s == "tf-frozen" || s == "torch7" || s == "openface-csv")
    throw unsupported_error("format '" + s + "' is not handled by this converter yet");
  throw argument_error("unknown format '" + s + "' (known: auto, pytorch, npy, npz, safetensors)");
}

// Identifies a weights file by its first bytes (never by its extension).
inline weight_format detect_weight_format(byte_span b, const std::string& what) {
  if (is_zip(b)) {
    const zip_archive z(b, what);
    for (const auto& e : z.entries())
      if (e.name.size() > 9 && e.name.compare(e.name.size() - 9, 9, "/data.pkl") == 0) return weight_format::pytorch;
    return weight_format::npz;
  }
  if (is_torch_legacy(b)) return weight_format::pytorch;
  if (b.size >= 6 && std::memcmp(b.data, "\x93NUMPY", 6) == 0) return weight_format::npy;
  if (b.size >= 9 && load_le<std::uint64_t>(b.data) <= b.size - 8 && b.data[8] == '{') return weight_format::safetensors;
  if (b.size >= 4 && std::memcmp(b.data, "\x89HDF", 4) == 0)
    throw unsupported_error(what + ": HDF5 (Keras) files are not supported; convert to the per-tensor CSV layout");
  throw format_error(what + ": unrecognised weights format (not torch.save, .npy, .npz or safetensors)");
}

inline tensor_map read_weights(const std::string& path, weight_format format, weight_format* detected = nullptr) {
  const mapped_file file(path);
  if (format == weight_format::auto_detect) format = detect_weight_format(file.bytes(), path);
  if (detected) *detected = format;
  switch (format) {
    case weight_format::pytorch:
      return is_zip(file.bytes()) ? parse_torch_zip(file.bytes(), path) : parse_torch_legacy(file.bytes(), path);
    case weight_format::npy: return parse_npy(file.bytes(), path);
    case weight_format::npz: return load_npz(path);
    case weight_format::safetensors: return parse_safetensors(file.bytes(), path);
    case weight_format::auto_detect: break;
  }
  throw argument_error("read_weights: no format");
}

// Permutes the axes of a contiguous tensor: out.shape[i] = in.shape[perm[i]].
inline Tensor<float> permute(const Tensor<float>& in, const std::vector<int>& perm) {
  FACENET_CHECK(static_cast<int>(perm.size()) == in.rank(), shape_error, "permute: " + std::to_string(perm.size()) + " axes for " + in.shape().str());
  in.require_contiguous("permute");
  shape out_shape;
  for (int p : perm) out_shape.push_back(in.shape().dim(p));
  const std::vector<std::int64_t> in_strides = contiguous_strides(in.shape(), false);
  std::vector<std::int64_t> strides;
  for (int p : perm) strides.push_back(in_strides[static_cast<std::size_t>(p)]);
  Tensor<float> out = Tensor<float>::uninitialized(out_shape);
  std::int64_t idx[shape::max_rank] = {};
  for (std::int64_t k = 0; k < out.numel(); ++k) {
    std::int64_t e = 0;
    for (int i = 0; i < out.rank(); ++i) e += idx[i] * strides[static_cast<std::size_t>(i)];
    out.data()[k] = in.data()[e];
    for (int i = out.rank() - 1; i >= 0; --i) {
      if (++idx[i] < out_shape[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

// davidsandberg/facenet MTCNN (det1/2/3.npy, TF layout) -> facenet-pytorch names and layout.
//  conv weights  "convN/weights" [kh, kw, in, out] -> "convN.weight" [out, in, kw, kh]: the TF graph
//                  runs on images with H and W swapped, so its kernels are transposed too;
//  dense weights "convN/weights" [in, out] (rank 2) -> "denseN.weight" [out, in]; "convN-M" -> "denseN_M";
//                  the flatten order already matches facenet-pytorch's permute(0, 3, 2, 1);
//  "*/biases" -> ".bias"; "PReLUN/alpha" or "preluN/alpha" -> "preluN.weight".
// Verified bit-exact against facenet-pytorch's pnet/rnet/onet.pt by tests/test_convert_mtcnn.cpp.
inline tensor_map adapt_mtcnn_tf(const tensor_map& tf) {
  std::map<std::string, int> weight_rank;  // layer -> rank of its weights
  for (const auto& e : tf.entries()) {
    const auto slash = e.name.find('/');
    if (slash != std::string::npos && e.name.substr(slash + 1) == "weights") weight_rank[e.name.substr(0, slash)] = e.value.rank();
  }
  tensor_map out;
  for (const auto& e : tf.entries()) {
    const auto slash = e.name.find('/');
    FACENET_CHECK(slash != std::string::npos, format_error, "MTCNN TF weights: unexpected tensor name '" + e.name + "'");
    std::string layer = e.name.substr(0, slash);
    const std::string field = e.name.substr(slash + 1);
    std::transform(layer.begin(), layer.end(), layer.begin(), [](char c) { return c == '-' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(c))); });
    if (field == "alpha") {
      out.add(layer + ".weight", e.value, e.source_dtype);
      continue;
    }
    const auto rank = weight_rank.find(e.name.substr(0, slash));
    FACENET_CHECK(rank != weight_rank.end() && (field == "weights" || field == "biases"), format_error,
                  "MTCNN TF weights: unexpected tensor '" + e.name + "'");
    FACENET_CHECK(rank->second == 4 || rank->second == 2, format_error,
                  "MTCNN TF weights: '" + e.name + "' belongs to a layer with rank-" + std::to_string(rank->second) + " weights");
    if (rank->second == 2) layer.replace(0, 4, "dense");  // "conv5_1" -> "dense5_1"
    const std::string name = layer + (field == "weights" ? ".weight" : ".bias");
    if (field == "biases") out.add(name, e.value, e.source_dtype);
    else out.add(name, permute(e.value, rank->second == 4 ? std::vector<int>{3, 2, 1, 0} : std::vector<int>{1, 0}), e.source_dtype);
  }
  return out;
}

inline bool looks_like_mtcnn_tf(const tensor_map& m) {
  for (const auto& e : m.entries())
    if (e.name.find('/') == std::string::npos) return false;
  return m.size() > 0;
}

struct converted_tensor {
  std::string name;
  shape dims;
  std::string source_dtype;
};

struct conversion_report {
  std::string source, format, arch;
  std::vector<converted_tensor> converted;
  std::vector<std::string> missing;     // expected, not in the source
  std::vector<std::string> unused;      // in the source, not expected
  std::vector<std::string> mismatched;  // "name: expected [..], found [..]"
  std::vector<std::string> ignored;     // optional tensors present in the source (num_batches_tracked)
  bool ok() const noexcept { return missing.empty() && mismatched.empty(); }

  std::string problems() const {
    std::string s;
    auto list = [&](const char* label, const std::vector<std::string>& v) {
      if (v.empty()) return;
      s += std::string(s.empty() ? "" : "; ") + std::to_string(v.size()) + " " + label + ":";
      for (const auto& n : v) s += " " + n;
    };
    list("missing", missing);
    list("mis-shaped", mismatched);
    return s;
  }
};

// How many of `a`'s required names `m` provides.
inline std::size_t matching_names(const tensor_map& m, const architecture& a) {
  std::size_t n = 0;
  for (const auto& t : a.tensors) n += (!t.optional && m.contains(t.name)) ? 1 : 0;
  return n;
}

// The architecture whose required names the source matches best (ties: the first).
inline architecture guess_architecture(const tensor_map& m) {
  architecture best;
  std::size_t best_n = 0;
  for (const auto& name : architecture_names()) {
    architecture a = find_architecture(name);
    if (m.contains("logits.weight") && name == "inception_resnet_v1")
      a = inception_resnet_v1(m.at("logits.weight").shape().dim(0));
    const std::size_t n = matching_names(m, a);
    if (n > best_n) {
      best = a;
      best_n = n;
    }
  }
  FACENET_CHECK(best_n > 0, format_error, "no known architecture matches these tensor names; pass --arch");
  return best;
}

// Maps `source` onto `arch`: output tensors in the architecture's order, every shape checked.
inline tensor_map map_to_architecture(const tensor_map& source, const architecture& arch, conversion_report& report) {
  report.arch = arch.name;
  tensor_map out;
  std::set<std::string> used;
  for (const auto& t : arch.tensors) {
    if (!source.contains(t.name)) {
      if (!t.optional) report.missing.push_back(t.name);
      continue;
    }
    used.insert(t.name);
    const Tensor<float>& v = source.at(t.name);
    if (t.optional) {
      report.ignored.push_back(t.name);
      continue;
    }
    if (v.shape() != t.dims) {
      report.mismatched.push_back(t.name + ": expected " + t.dims.str() + ", found " + v.shape().str());
      continue;
    }
    std::string dtype = "F32";
    for (const auto& e : source.entries())
      if (e.name == t.name) dtype = e.source_dtype;
    out.add(t.name, v, dtype);
    report.converted.push_back({t.name, v.shape(), dtype});
  }
  for (const auto& e : source.entries())
    if (!used.count(e.name)) report.unused.push_back(e.name);
  out.metadata = arch.metadata;
  return out;
}

struct convert_options {
  weight_format format = weight_format::auto_detect;
  std::string arch;             // empty: guessed from the tensor names
  std::string dtype = "F32";    // F32, F16 or BF16
  bool allow_unused = true;     // extra source tensors are reported; false makes them an error
};

// Reads `src`, maps it and returns the tensors to write plus the report (nothing is written).
inline tensor_map prepare_conversion(const std::string& src, const convert_options& opt, conversion_report& report) {
  weight_format detected = opt.format;
  tensor_map source = read_weights(src, opt.format, &detected);
  report.source = src;
  report.format = weight_format_name(detected);
  if (looks_like_mtcnn_tf(source)) {
    source = adapt_mtcnn_tf(source);
    report.format += " (davidsandberg MTCNN, TF layout)";
  }
  const architecture arch = opt.arch.empty() ? guess_architecture(source) : find_architecture(opt.arch);
  tensor_map out = map_to_architecture(source, arch, report);
  const auto slash = src.find_last_of('/');
  out.metadata["source"] = (slash == std::string::npos ? src : src.substr(slash + 1)) + " (" + report.format + ")";
  return out;
}

// Converts `src` to safetensors at `dst`; throws format_error naming every missing or mis-shaped
// tensor (nothing is written then).
inline conversion_report convert_weights(const std::string& src, const std::string& dst, const convert_options& opt = {}) {
  conversion_report report;
  const tensor_map out = prepare_conversion(src, opt, report);
  FACENET_CHECK(report.ok(), format_error, src + " does not fit " + report.arch + ": " + report.problems());
  FACENET_CHECK(opt.allow_unused || report.unused.empty(), format_error,
                src + ": " + std::to_string(report.unused.size()) + " tensors not used by " + report.arch);
  save_safetensors(dst, out, opt.dtype);
  return report;
}

// The table the converter prints.
inline std::string format_report(const conversion_report& r) {
  std::string s = "source: " + r.source + "\nformat: " + r.format + "\narchitecture: " + r.arch + "\n";
  std::size_t width = 4;
  for (const auto& t : r.converted) width = std::max(width, t.name.size());
  std::int64_t params = 0;
  for (const auto& t : r.converted) {
    s += "  " + t.name + std::string(width + 2 - t.name.size(), ' ') + t.dims.str() + "  " + t.source_dtype + "\n";
    params += t.dims.numel();
  }
  s += std::to_string(r.converted.size()) + " tensors converted (" + std::to_string(params) + " values)\n";
  auto list = [&](const char* label, const std::vector<std::string>& v) {
    s += std::to_string(v.size()) + " " + label + (v.empty() ? "\n" : ":\n");
    for (const auto& n : v) s += "  " + n + "\n";
  };
  list("missing", r.missing);
  list("mis-shaped", r.mismatched);
  list("unused", r.unused);
  if (!r.ignored.empty()) s += std::to_string(r.ignored.size()) + " optional tensors ignored (num_batches_tracked)\n";
  return s;
}

}  // namespace facenet::io
