// Weight conversion: detect a published file's format from its magic bytes, read it, map its
// tensors onto one architecture's names and layout (facenet-pytorch names, OIHW), check every name
// and shape, and write the library's safetensors file with the metadata the model needs. Used by
// weights_converter/ (facenet_convert) and the `facenet convert` command.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/arch_names.hpp"
#include "facenet/io/mapping_report.hpp"
#include "facenet/io/mmap_file.hpp"
#include "facenet/io/npy.hpp"
#include "facenet/io/openface_csv.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/io/sstable.hpp"
#include "facenet/io/tensor_map.hpp"
#include "facenet/io/tf_checkpoint.hpp"
#include "facenet/io/tf_graphdef.hpp"
#include "facenet/io/tf_names.hpp"
#include "facenet/io/torch7.hpp"
#include "facenet/io/torch_file.hpp"
#include "facenet/io/zip.hpp"

namespace facenet::io {

enum class weight_format { auto_detect, pytorch, npy, npz, safetensors, tf_checkpoint, tf_frozen, torch7, openface_csv };

inline const char* weight_format_name(weight_format f) noexcept {
  switch (f) {
    case weight_format::auto_detect: return "auto";
    case weight_format::pytorch: return "pytorch";
    case weight_format::npy: return "npy";
    case weight_format::npz: return "npz";
    case weight_format::safetensors: return "safetensors";
    case weight_format::tf_checkpoint: return "tf-checkpoint";
    case weight_format::tf_frozen: return "tf-frozen";
    case weight_format::torch7: return "torch7";
    case weight_format::openface_csv: return "openface-csv";
  }
  return "?";
}

inline const std::vector<weight_format>& all_weight_formats() {
  static const std::vector<weight_format> all = {weight_format::auto_detect,   weight_format::pytorch,   weight_format::npy,
                                                 weight_format::npz,           weight_format::safetensors, weight_format::tf_checkpoint,
                                                 weight_format::tf_frozen,     weight_format::torch7,    weight_format::openface_csv};
  return all;
}

inline weight_format parse_weight_format(const std::string& s) {
  std::string known;
  for (weight_format f : all_weight_formats()) {
    if (s == weight_format_name(f)) return f;
    known += std::string(known.empty() ? "" : ", ") + weight_format_name(f);
  }
  throw argument_error("unknown format '" + s + "' (known: " + known + ")");
}

namespace detail {

// A TF checkpoint is named by its prefix; accept the prefix, the .index file or a data shard.
inline std::string tf_checkpoint_prefix(const std::string& path) {
  const std::string index = ".index";
  if (path.size() > index.size() && path.compare(path.size() - index.size(), index.size(), index) == 0)
    return path.substr(0, path.size() - index.size());
  const auto data = path.rfind(".data-");
  if (data != std::string::npos && path.find("-of-", data) != std::string::npos) return path.substr(0, data);
  return path;
}

// SSTable footer magic (LevelDB table format), the last 8 bytes of a checkpoint's .index file.
inline bool is_sstable(byte_span b) { return b.size >= 48 && load_le<std::uint64_t>(b.data + b.size - 8) == 0xdb4775248b80fb57ull; }

// Torch7 binary serialisation of an object: int32 TYPE_TORCH (4), int32 reference index 1, then a
// length-prefixed version string "V <n>" or class name.
inline bool is_torch7(byte_span b) {
  if (b.size < 16 || load_le<std::int32_t>(b.data) != 4 || load_le<std::int32_t>(b.data + 4) != 1) return false;
  const std::int32_t n = load_le<std::int32_t>(b.data + 8);
  return n >= 2 && n < 256 && (std::memcmp(b.data + 12, "V ", 2) == 0 || std::memcmp(b.data + 12, "nn", 2) == 0);
}

// A GraphDef starts with field 1 (node, length-delimited) whose NodeDef starts with field 1 (name).
inline bool looks_like_graphdef(byte_span b) {
  if (b.size < 4 || b.data[0] != 0x0a) return false;
  std::size_t i = 1;
  while (i < b.size && i < 11 && (b.data[i] & 0x80)) ++i;
  return i + 1 < b.size && b.data[i + 1] == 0x0a;
}

// The first bytes of a file in hex, for "unrecognised format" messages.
inline std::string hex_prefix(byte_span b, std::size_t n = 8) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  for (std::size_t i = 0; i < b.size && i < n; ++i) {
    if (i) s += ' ';
    s += digits[b.data[i] >> 4];
    s += digits[b.data[i] & 15];
  }
  return s;
}

}  // namespace detail

// Identifies a weights file by its first (or, for SSTables, last) bytes - never by its extension.
// A directory is taken as the Keras-OpenFace per-tensor CSV layout.
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
  if (detail::is_sstable(b)) return weight_format::tf_checkpoint;
  if (detail::is_torch7(b)) return weight_format::torch7;
  if (b.size >= 4 && std::memcmp(b.data, "\x89HDF", 4) == 0)
    throw unsupported_error(what + ": HDF5 (Keras) files are not supported; convert to the per-tensor CSV layout");
  if (detail::looks_like_graphdef(b)) return weight_format::tf_frozen;
  // A safetensors header whose length runs past the end: say so rather than "unrecognised".
  if (b.size >= 9 && b.data[8] == '{')
    throw format_error(what + ": safetensors header length " + std::to_string(load_le<std::uint64_t>(b.data)) +
                       " (bytes 0-7) exceeds the " + std::to_string(b.size - 8) + " bytes after it");
  throw format_error(what + ": unrecognised weights format (not torch.save, .npy, .npz, safetensors, a TF checkpoint or "
                            "frozen graph, or Torch7)" +
                     (b.size ? "; it starts with " + detail::hex_prefix(b) : "; the file is empty"));
}

inline weight_format detect_weight_format(const std::string& path) {
  if (std::filesystem::is_directory(path)) return weight_format::openface_csv;
  // A checkpoint prefix, .index or data shard is identified by its .index file.
  const std::string prefix = detail::tf_checkpoint_prefix(path);
  const std::string index = prefix + ".index";
  const bool use_index = std::filesystem::exists(index) && (prefix != path || !std::filesystem::exists(path));
  const mapped_file file(use_index ? index : path);
  return detect_weight_format(file.bytes(), file.path());
}

// Reads `path` in `format` (auto: detected). TF files come back under facenet-pytorch names (the
// TF-slim mapping's leftovers go to `report.unused`), Torch7 and CSV under nn4_small2 names.
inline tensor_map read_weights(const std::string& path, weight_format format, weight_format* detected = nullptr,
                               mapping_report* report = nullptr) {
  if (format == weight_format::auto_detect) format = detect_weight_format(path);
  if (detected) *detected = format;
  mapping_report local;
  mapping_report& r = report ? *report : local;
  switch (format) {
    case weight_format::pytorch: return load_torch(path);
    case weight_format::npy: return load_npy(path);
    case weight_format::npz: return load_npz(path);
    case weight_format::safetensors: return load_safetensors(path);
    case weight_format::tf_checkpoint: return map_tf_slim_to_facenet_pytorch(read_tf_checkpoint(detail::tf_checkpoint_prefix(path)), r);
    case weight_format::tf_frozen: return map_tf_slim_to_facenet_pytorch(read_tf_graphdef(path), r);
    case weight_format::torch7: return read_openface_t7(path, r);
    case weight_format::openface_csv: return read_openface_csv_dir(path, r);
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
      s += std::string(s.empty() ? "" : "; ") + std::to_string(v.size()) + " " + label + ": " + list_names(v);
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
  mapping_report reader_report;  // readers that map names themselves (TF, Torch7, CSV) report leftovers here
  tensor_map source = read_weights(src, opt.format, &detected, &reader_report);
  report.source = src;
  report.format = weight_format_name(detected);
  if (looks_like_mtcnn_tf(source)) {
    source = adapt_mtcnn_tf(source);
    report.format += " (davidsandberg MTCNN, TF layout)";
  }
  const architecture arch = opt.arch.empty() ? guess_architecture(source) : find_architecture(opt.arch);
  tensor_map out = map_to_architecture(source, arch, report);
  // Source tensors the format's own name mapping could not place (TF optimizer slots, stray CSVs).
  report.unused.insert(report.unused.end(), reader_report.unused.begin(), reader_report.unused.end());
  // Non-floating-point TF variables (global_step, ...) the TF readers skipped.
  if (auto skipped = source.metadata.find("tf.skipped"); skipped != source.metadata.end() && !skipped->second.empty()) {
    std::size_t start = 0;
    for (std::size_t comma; (comma = skipped->second.find(',', start)) != std::string::npos; start = comma + 1)
      report.unused.push_back(skipped->second.substr(start, comma - start));
    report.unused.push_back(skipped->second.substr(start));
  }
  // What the source's own metadata says about using the weights (standardization, threshold, ...)
  // survives a re-conversion; what describes the network comes from the architecture.
  for (const auto& kv : source.metadata)
    if (!out.metadata.count(kv.first) || kv.first == "standardization" || kv.first == "channel_order")
      if (kv.first != "source" && kv.first != "source_format" && kv.first.compare(0, 3, "tf.") != 0)
        out.metadata[kv.first] = kv.second;
  std::string base = src;
  while (base.size() > 1 && base.back() == '/') base.pop_back();  // a CSV directory given as "dir/"
  const auto slash = base.find_last_of('/');
  out.metadata["source"] = (slash == std::string::npos ? base : base.substr(slash + 1)) + " (" + report.format + ")";
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
