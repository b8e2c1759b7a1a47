// Torch7 binary serialization (torch.save(..., 'binary'), File.lua writeObject), read without
// executing anything:
//   object   = int32 type, then by type: nil(0) -; number(1) double; string(2) int32 n + bytes;
//              boolean(5) int32; table(3) int32 ref index, int32 n, n x (key object, value object);
//              torch(4) int32 ref index, "V <version>" string, class-name string, then either the
//              class's own payload (tensors, storages) or one object holding its fields;
//              function(6) int32 n + bytecode + upvalues object; recursive function(7, 8) with a ref
//              index. Functions are skipped, never loaded.
//   Storage  = int64 element count, raw little-endian elements
//   Tensor   = int32 ndim, int64 sizes[ndim], int64 strides[ndim], int64 1-based storage offset, storage object
// A ref index seen before is a back-reference to the same object (shared storages, cycles).
// On top of the generic reader: the parametrized modules of an nn container in order, and OpenFace
// nn4.small2.v1 mapped onto the nn4_small2 names of nn4_names.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/io/mapping_report.hpp"
#include "facenet/io/nn4_names.hpp"
#include "facenet/io/protobuf.hpp"
#include "facenet/io/tensor_map.hpp"

namespace facenet::io {
namespace t7 {

enum class kind : std::uint8_t { nil, number, string, boolean, table, object, tensor, storage, function };

// One deserialized value. Values refer to each other by slot index into file::values (slot 0 is nil).
struct value {
  kind k = kind::nil;
  double number = 0;
  bool boolean = false;
  std::string text;                                     // string contents, or the torch class name
  std::vector<std::pair<std::size_t, std::size_t>> items;  // table: (key slot, value slot)
  std::size_t fields = 0;                               // object: slot of its field table
  // storage: element size/type and where its elements sit in the file
  int elem_size = 0;
  bool is_float = false;
  std::uint64_t count = 0;
  std::size_t data_offset = 0;
  // tensor
  std::vector<std::int64_t> sizes, strides;
  std::int64_t storage_offset = 0;
  std::size_t storage = 0;
};

inline constexpr int max_depth = 256;
// Each decoded value costs ~200 bytes against as few as 12 in the file; nn models hold a few
// thousand objects, so a million is a generous bound that keeps hostile files from ballooning.
inline constexpr std::size_t max_values = std::size_t{1} << 20;

// (element size, floating point?) of a torch tensor/storage type name such as "Float" or "Long".
inline std::pair<int, bool> element_type(const std::string& type) {
  static const std::map<std::string, std::pair<int, bool>> types = {
      {"Float", {4, true}}, {"Cuda", {4, true}},  {"Double", {8, true}}, {"Byte", {1, false}},
      {"Char", {1, false}}, {"Short", {2, false}}, {"Int", {4, false}},   {"Long", {8, false}}};
  auto it = types.find(type);
  return it == types.end() ? std::pair<int, bool>{0, false} : it->second;
}

class file {
 public:
  explicit file(const std::string& path) : file(read_file_bytes(path), path) {}
  // From bytes already in memory; `source` names them in error messages.
  file(std::vector<std::uint8_t> bytes, std::string source) : bytes_(std::move(bytes)), source_(std::move(source)) {
    values_.emplace_back();  // slot 0: nil
    byte_reader r(bytes_.data(), bytes_.size(), source_);
    root_ = read_object(r, 0);
  }

  const value& root() const { return values_[root_]; }
  std::size_t size() const noexcept { return values_.size(); }
  const value& at(std::size_t slot) const { return values_.at(slot); }
  const std::string& source() const { return source_; }

  // Slot of field `name` of an object or table, 0 when absent.
  std::size_t field(const value& v, const std::string& name) const {
    const value& t = v.k == kind::object ? values_[v.fields] : v;
    if (t.k != kind::table) return 0;
    for (const auto& [key, val] : t.items)
      if (values_[key].k == kind::string && values_[key].text == name) return val;
    return 0;
  }
  // Array part of a table (numeric keys 1..n), in key order.
  std::vector<std::size_t> array_items(const value& t) const {
    std::vector<std::pair<double, std::size_t>> numbered;
    if (t.k == kind::table)
      for (const auto& [key, val] : t.items)
        if (values_[key].k == kind::number) numbered.emplace_back(values_[key].number, val);
    std::sort(numbered.begin(), numbered.end());
    std::vector<std::size_t> out;
    for (const auto& n : numbered) out.push_back(n.second);
    return out;
  }

  // A float/double tensor as a contiguous float tensor, honouring sizes, strides and offset.
  Tensor<float> to_tensor(const value& t, const std::string& what) const {
    FACENET_CHECK(t.k == kind::tensor, format_error, source_ + ": " + what + " is not a tensor");
    FACENET_CHECK(t.sizes.size() <= static_cast<std::size_t>(facenet::shape::max_rank), unsupported_error,
                  source_ + ": " + what + " has " + std::to_string(t.sizes.size()) + " dimensions");
    const facenet::shape dims(t.sizes.begin(), t.sizes.end());
    if (t.sizes.empty() || std::find(t.sizes.begin(), t.sizes.end(), 0) != t.sizes.end())
      return Tensor<float>(facenet::shape{0});
    FACENET_CHECK(t.storage != 0, format_error, source_ + ": " + what + " has elements but no storage");
    const value& s = values_[t.storage];
    // Saved weights never repeat storage elements, so more elements than the storage holds (or an
    // overflowing count) means a damaged file; checked before allocating.
    std::uint64_t numel = 1;
    for (std::int64_t d : t.sizes) {
      numel *= static_cast<std::uint64_t>(d);
      FACENET_CHECK(numel <= s.count, format_error,
                    source_ + ": " + what + " of shape " + dims.str() + " has more elements than its " +
                        std::to_string(s.count) + "-element storage");
    }
    FACENET_CHECK(s.is_float, unsupported_error, source_ + ": " + what + " is a " + t.text + ", not a float tensor");
    // Largest element index reached, checked against the storage before any read.
    // Sizes are in [1, 2^40] here; strides of dimensions longer than 1 are bounded so the sum
    // cannot overflow (strides of size-1 dimensions never matter).
    FACENET_CHECK(t.storage_offset >= 0 && static_cast<std::uint64_t>(t.storage_offset) < s.count, format_error,
                  source_ + ": " + what + " starts at element " + std::to_string(t.storage_offset) + " of a " +
                      std::to_string(s.count) + "-element storage");
    std::int64_t last = t.storage_offset;
    for (std::size_t i = 0; i < t.sizes.size(); ++i) {
      if (t.sizes[i] == 1) continue;
      FACENET_CHECK(t.strides[i] >= 0 && t.strides[i] <= (std::int64_t{1} << 40) / t.sizes[i], format_error,
                    source_ + ": " + what + " has invalid stride " + std::to_string(t.strides[i]) + " for size " +
                        std::to_string(t.sizes[i]));
      last += (t.sizes[i] - 1) * t.strides[i];
    }
    Tensor<float> out = Tensor<float>::uninitialized(dims);
    FACENET_CHECK(static_cast<std::uint64_t>(last) < s.count, format_error,
                  source_ + ": " + what + " of shape " + dims.str() + " at storage offset " +
                      std::to_string(t.storage_offset) + " reaches element " + std::to_string(last) + " of a " +
                      std::to_string(s.count) + "-element storage");
    std::int64_t idx[facenet::shape::max_rank] = {};
    const int rank = dims.rank();
    for (std::int64_t k = 0, n = dims.numel(); k < n; ++k) {
      std::int64_t e = t.storage_offset;
      for (int i = 0; i < rank; ++i)
        if (dims[i] > 1) e += idx[i] * t.strides[static_cast<std::size_t>(i)];
      out.data()[k] = element(s, e);
      for (int i = rank - 1; i >= 0; --i) {
        if (++idx[i] < dims[i]) break;
        idx[i] = 0;
      }
    }
    return out;
  }

 private:
  // Element i of a float/double storage (range already checked by to_tensor).
  float element(const value& s, std::int64_t i) const {
    const std::uint8_t* p = bytes_.data() + s.data_offset + static_cast<std::size_t>(i) * static_cast<std::size_t>(s.elem_size);
    std::uint64_t bits = 0;
    for (int b = 0; b < s.elem_size; ++b) bits |= static_cast<std::uint64_t>(p[b]) << (8 * b);
    if (s.elem_size == 8) {
      double d;
      std::memcpy(&d, &bits, sizeof d);
      return static_cast<float>(d);
    }
    const auto u = static_cast<std::uint32_t>(bits);
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }

  std::size_t add(value v) {
    FACENET_CHECK(values_.size() < max_values, format_error,
                  source_ + ": more than " + std::to_string(max_values) + " objects; not an nn model");
    values_.push_back(std::move(v));
    return values_.size() - 1;
  }

  std::string read_string(byte_reader& r, const char* what) {
    const std::int32_t n = r.i32("string length");
    if (n < 0) r.fail(std::string("negative ") + what + " length " + std::to_string(n));
    return r.string(static_cast<std::uint64_t>(n), what);
  }

  std::size_t read_object(byte_reader& r, int depth) {
    if (depth > max_depth) r.fail("objects nested deeper than " + std::to_string(max_depth));
    const std::uint64_t at = r.file_offset();
    const std::int32_t type = r.i32("object type");
    switch (type) {
      case 0: return 0;
      case 1: {
        value v;
        v.k = kind::number;
        v.number = r.f64("number");
        return add(std::move(v));
      }
      case 2: {
        value v;
        v.k = kind::string;
        v.text = read_string(r, "string");
        return add(std::move(v));
      }
      case 5: {
        value v;
        v.k = kind::boolean;
        v.boolean = r.i32("boolean") == 1;
        return add(std::move(v));
      }
      case 6: {  // plain function: bytecode + upvalues, skipped
        read_string(r, "function bytecode");
        read_object(r, depth + 1);
        value v;
        v.k = kind::function;
        return add(std::move(v));
      }
      case 3:
      case 4:
      case 7:
      case 8: return read_referenced(r, type, depth);
      default:
        throw format_error(source_ + " at offset " + std::to_string(at) + ": unknown Torch7 object type " + std::to_string(type));
    }
  }

  // Tables, torch objects and recursive functions carry a reference index; a repeated index is a
  // back-reference. The slot is registered before the contents are read, as File.lua does, so
  // cycles resolve to the (partly read) object.
  std::size_t read_referenced(byte_reader& r, std::int32_t type, int depth) {
    const std::int32_t index = r.i32("reference index");
    auto it = refs_.find(index);
    if (it != refs_.end()) return it->second;
    const std::size_t slot = add(value{});
    refs_[index] = slot;
    if (type == 7 || type == 8) {
      read_string(r, "function bytecode");
      read_object(r, depth + 1);
      values_[slot].k = kind::function;
      return slot;
    }
    if (type == 3) {
      read_table(r, slot, depth);
      return slot;
    }
    std::string version = read_string(r, "class version");
    std::string class_name = version.rfind("V ", 0) == 0 ? read_string(r, "class name") : version;
    values_[slot].text = class_name;
    read_torch_payload(r, slot, class_name, depth);
    return slot;
  }

  void read_table(byte_reader& r, std::size_t slot, int depth) {
    const std::int32_t n = r.i32("table size");
    if (n < 0 || static_cast<std::uint64_t>(n) > r.remaining() / 8)
      r.fail("table declares " + std::to_string(n) + " entries, more than the file can hold");
    values_[slot].k = kind::table;
    for (std::int32_t i = 0; i < n; ++i) {
      const std::size_t key = read_object(r, depth + 1);
      const std::size_t val = read_object(r, depth + 1);
      values_[slot].items.emplace_back(key, val);
    }
  }

  void read_torch_payload(byte_reader& r, std::size_t slot, const std::string& class_name, int depth) {
    const bool torch_ns = class_name.rfind("torch.", 0) == 0;
    const auto ends_with = [&](const char* suffix) {
      const std::string s(suffix);
      return class_name.size() > s.size() && class_name.compare(class_name.size() - s.size(), s.size(), s) == 0;
    };
    if (torch_ns && (ends_with("Storage") || ends_with("Tensor"))) {
      const bool storage = ends_with("Storage");
      const std::string type = class_name.substr(6, class_name.size() - 6 - (storage ? 7 : 6));
      const auto [elem_size, is_float] = element_type(type);
      if (elem_size == 0) r.fail("unsupported Torch7 class " + class_name);
      if (storage) return read_storage(r, slot, elem_size, is_float);
      return read_tensor(r, slot, depth);
    }
    values_[slot].k = kind::object;
    values_[slot].fields = read_object(r, depth + 1);  // the field table of an nn module etc.
  }

  void read_storage(byte_reader& r, std::size_t slot, int elem_size, bool is_float) {
    const std::int64_t n = r.i64("storage size");
    if (n < 0 || static_cast<std::uint64_t>(n) > r.remaining() / static_cast<std::uint64_t>(elem_size))
      r.fail("storage declares " + std::to_string(n) + " elements of " + std::to_string(elem_size) + " bytes, only " +
             std::to_string(r.remaining()) + " bytes remain");
    value& v = values_[slot];
    v.k = kind::storage;
    v.elem_size = elem_size;
    v.is_float = is_float;
    v.count = static_cast<std::uint64_t>(n);
    v.data_offset = static_cast<std::size_t>(r.file_offset());
    r.bytes(static_cast<std::uint64_t>(n) * static_cast<std::uint64_t>(elem_size), "storage elements");
  }

  void read_tensor(byte_reader& r, std::size_t slot, int depth) {
    const std::int32_t ndim = r.i32("tensor dimension count");
    if (ndim < 0 || static_cast<std::uint64_t>(ndim) > r.remaining() / 16)
      r.fail("tensor declares " + std::to_string(ndim) + " dimensions");
    std::vector<std::int64_t> sizes, strides;
    for (std::int32_t i = 0; i < ndim; ++i) sizes.push_back(r.i64("tensor size"));
    for (std::int32_t i = 0; i < ndim; ++i) strides.push_back(r.i64("tensor stride"));
    for (std::int64_t s : sizes)
      if (s < 0 || s > (std::int64_t{1} << 40)) r.fail("tensor size " + std::to_string(s) + " out of range");
    const std::int64_t stored_offset = r.i64("tensor storage offset");  // 1-based
    if (stored_offset < 0 || stored_offset > (std::int64_t{1} << 62))
      r.fail("tensor storage offset " + std::to_string(stored_offset) + " out of range");
    const std::int64_t offset = stored_offset - 1;
    const std::size_t storage = read_object(r, depth + 1);
    if (storage != 0 && values_[storage].k != kind::storage)
      r.fail("tensor storage is a " + values_[storage].text + ", not a storage");
    value& v = values_[slot];
    v.k = kind::tensor;
    v.sizes = std::move(sizes);
    v.strides = std::move(strides);
    v.storage_offset = offset;
    v.storage = storage;
  }

  std::vector<std::uint8_t> bytes_;
  std::string source_;
  std::vector<value> values_;
  std::map<std::int32_t, std::size_t> refs_;
  std::size_t root_ = 0;
};

// A module that owns parameters, with its position ("14.1.2.1": Lua indices through `modules`).
struct module_params {
  std::string path, class_name;
  std::map<std::string, Tensor<float>> tensors;  // weight, bias, running_mean, running_var, running_std
  double eps = 1e-5;
};

// Charges a visit of `v` (and the scan of its field table) against `budget`. Back-references let a
// small file list one module many times or in a cycle, so an unbounded walk could take exponential
// time; a real container visits each module once, costing at most the number of values in the file.
inline void charge_visit(const file& f, const value& v, std::size_t& budget) {
  const value& t = v.k == kind::object ? f.at(v.fields) : v;
  const std::size_t cost = 1 + (t.k == kind::table ? t.items.size() : 0);
  FACENET_CHECK(cost <= budget, format_error,
                f.source() + ": module containers reach more objects than the file holds (shared or cyclic modules)");
  budget -= cost;
}

inline void collect_modules(const file& f, const value& v, const std::string& path, std::vector<module_params>& out,
                            int depth, std::size_t& budget) {
  FACENET_CHECK(depth <= max_depth, format_error, f.source() + ": module containers nested deeper than " + std::to_string(max_depth));
  if (v.k != kind::object) return;
  charge_visit(f, v, budget);
  module_params m{path, v.text, {}, 1e-5};
  for (const char* name : {"weight", "bias", "running_mean", "running_var", "running_std"}) {
    const std::size_t slot = f.field(v, name);
    if (slot && f.at(slot).k == kind::tensor) {
      Tensor<float> t = f.to_tensor(f.at(slot), "module " + path + " (" + v.text + ")." + name);
      if (t.numel() > 0) m.tensors.emplace(name, std::move(t));
    }
  }
  if (const std::size_t eps = f.field(v, "eps"); eps && f.at(eps).k == kind::number) m.eps = f.at(eps).number;
  if (!m.tensors.empty()) out.push_back(std::move(m));
  if (const std::size_t children = f.field(v, "modules")) {
    charge_visit(f, f.at(children), budget);
    const auto items = f.array_items(f.at(children));
    for (std::size_t i = 0; i < items.size(); ++i)
      collect_modules(f, f.at(items[i]), path.empty() ? std::to_string(i + 1) : path + "." + std::to_string(i + 1), out,
                      depth + 1, budget);
  }
}

inline bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace t7

// Parametrized modules of a serialized nn container, depth-first in `modules` order.
inline std::vector<t7::module_params> torch7_modules(const t7::file& f) {
  std::vector<t7::module_params> out;
  std::size_t budget = f.size();
  t7::collect_modules(f, f.root(), "", out, 0, budget);
  return out;
}
inline std::vector<t7::module_params> read_torch7_modules(const std::string& path) { return torch7_modules(t7::file(path)); }

// Every parameter tensor of a serialized nn container, named "<module path>.<field>".
inline tensor_map torch7_parameters(const t7::file& f) {
  tensor_map out;
  out.metadata["source_format"] = "torch7";
  for (const auto& m : torch7_modules(f))
    for (const auto& [name, t] : m.tensors) out.add(m.path + "." + name, t);
  return out;
}
inline tensor_map read_torch7(const std::string& path) { return torch7_parameters(t7::file(path)); }

namespace t7 {

inline void map_nn4_layer(const module_params& m, const nn4_layer& layer, tensor_map& out, mapping_report& report,
                          const std::string& source) {
  const bool ok = layer.kind == nn4_layer_kind::conv         ? contains(m.class_name, "Convolution")
                  : layer.kind == nn4_layer_kind::batch_norm ? contains(m.class_name, "BatchNormalization")
                                                             : contains(m.class_name, "Linear");
  FACENET_CHECK(ok, format_error,
                source + ": module " + m.path + " is a " + m.class_name + " where nn4.small2 has layer '" + layer.name + "'");
  auto tensors = m.tensors;
  if (layer.kind == nn4_layer_kind::batch_norm && !tensors.count("running_var") && tensors.count("running_std")) {
    // Torch's pre-2016 BatchNormalization kept running_std = 1 / sqrt(var + eps).
    Tensor<float> var = tensors.at("running_std").clone();
    for (float& v : var) v = static_cast<float>(1.0 / (static_cast<double>(v) * v) - m.eps);
    tensors["running_var"] = var;
  }
  for (const nn4_param& p : nn4_layer_params(layer)) {
    const std::string field = p.name.substr(p.name.rfind('.') + 1);
    auto it = tensors.find(field);
    if (it == tensors.end()) {
      report.missing.push_back(p.name);
      continue;
    }
    FACENET_CHECK(it->second.numel() == p.dims.numel() && it->second.size(0) == p.dims[0], shape_error,
                  source + ": module " + m.path + " (" + m.class_name + ")." + field + " has shape " +
                      it->second.shape().str() + ", nn4.small2 expects " + p.dims.str() + " for " + p.name);
    out.add(p.name, it->second.reshape(p.dims));  // SpatialConvolutionMM stores [out, in*kh*kw]
    report.mapped.push_back(p.name);
  }
}

}  // namespace t7

// OpenFace nn4.small2.v1.t7 -> nn4_small2 parameter names. The file's parametrized modules must
// line up one to one with nn4_small2_layers().
inline tensor_map read_openface_t7(const std::string& path, mapping_report& report) {
  const auto modules = read_torch7_modules(path);
  const auto& layers = nn4_small2_layers();
  FACENET_CHECK(modules.size() == layers.size(), format_error,
                path + ": " + std::to_string(modules.size()) + " modules with parameters, nn4.small2 has " +
                    std::to_string(layers.size()) + " (not an nn4.small2 model?)");
  tensor_map out;
  out.metadata["source_format"] = "torch7";
  out.metadata["architecture"] = "nn4_small2";
  for (std::size_t i = 0; i < layers.size(); ++i) t7::map_nn4_layer(modules[i], layers[i], out, report, path);
  return out;
}

}  // namespace facenet::io
