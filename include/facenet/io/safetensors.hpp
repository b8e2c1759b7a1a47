// safetensors: the library's own weights file (https://huggingface.co/docs/safetensors).
// Layout: u64 little-endian header length N, N bytes of JSON
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
// then the raw little-endian tensor bytes; offsets are relative to the end of the header.
// Loading validates like the reference implementation: offsets in range, tensors packed without
// gaps or overlap, byte size == numel * dtype size, before anything is decoded.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/binary.hpp"
#include "facenet/io/json.hpp"
#include "facenet/io/mmap_file.hpp"
#include "facenet/io/tensor_map.hpp"

namespace facenet::io {

namespace detail {

inline element_type safetensors_dtype(const std::string& name, const std::string& what) {
  static const std::pair<const char*, element_type> table[] = {
      {"F16", element_type::f16}, {"BF16", element_type::bf16}, {"F32", element_type::f32},
      {"F64", element_type::f64}, {"I8", element_type::i8},     {"U8", element_type::u8},
      {"I16", element_type::i16}, {"I32", element_type::i32},   {"I64", element_type::i64},
      {"BOOL", element_type::boolean}};
  std::string known;
  for (const auto& e : table) {
    if (name == e.first) return e.second;
    known += std::string(known.empty() ? "" : ", ") + e.first;
  }
  throw unsupported_error(what + ": unsupported dtype \"" + name + "\" (expected one of " + known + ")");
}

struct safetensors_entry {
  std::string name;
  element_type type;
  shape dims;
  std::uint64_t begin, end;
};

inline safetensors_entry parse_safetensors_entry(const std::string& name, const json_value& v, const std::string& file) {
  const std::string what = file + ": tensor '" + name + "'";
  const json_value* dtype = v.find("dtype");
  const json_value* dims = v.find("shape");
  const json_value* offsets = v.find("data_offsets");
  FACENET_CHECK(v.is_object() && dtype && dims && offsets, format_error,
                what + ": expected an object with dtype, shape and data_offsets");
  safetensors_entry e{name, safetensors_dtype(dtype->as_string(what + " dtype"), what), {}, 0, 0};
  const auto& dim_list = dims->as_array(what + " shape");
  FACENET_CHECK(static_cast<int>(dim_list.size()) <= shape::max_rank, unsupported_error,
                what + ": rank " + std::to_string(dim_list.size()) + " exceeds " + std::to_string(shape::max_rank));
  std::uint64_t numel = 1;
  for (const auto& d : dim_list) {
    const std::int64_t n = d.as_int(what + " shape entry");
    FACENET_CHECK(n >= 0, format_error, what + ": negative dimension " + std::to_string(n));
    e.dims.push_back(n);
    numel = checked_mul(numel, static_cast<std::uint64_t>(n), what);
  }
  const auto& off = offsets->as_array(what + " data_offsets");
  FACENET_CHECK(off.size() == 2, format_error, what + ": data_offsets must hold [begin, end]");
  const std::int64_t b = off[0].as_int(what + " data_offsets"), en = off[1].as_int(what + " data_offsets");
  FACENET_CHECK(b >= 0 && en >= b, format_error,
                what + ": bad data_offsets [" + std::to_string(b) + ", " + std::to_string(en) + "]");
  e.begin = static_cast<std::uint64_t>(b);
  e.end = static_cast<std::uint64_t>(en);
  const std::uint64_t expected = checked_mul(numel, element_size(e.type), what);
  FACENET_CHECK(e.end - e.begin == expected, format_error,
                what + ": data_offsets span " + std::to_string(e.end - e.begin) + " bytes but shape " + e.dims.str() +
                    " of " + element_type_name(e.type) + " needs " + std::to_string(expected));
  return e;
}

}  // namespace detail

// Parses a safetensors image held in memory. Tensors come back in data order; `decoded` (if set) is
// told each tensor's bytes once they are copied out.
inline tensor_map parse_safetensors(byte_span bytes, const std::string& what,
                                    const std::function<void(byte_span)>& decoded = nullptr) {
  span_reader r(bytes, what);
  const std::uint64_t header_len = r.read<std::uint64_t>("header length");
  FACENET_CHECK(header_len <= r.remaining(), format_error,
                what + ": header length " + std::to_string(header_len) + " exceeds the " + std::to_string(r.remaining()) +
                    " bytes after it (not a safetensors file, or truncated)");
  const std::string header = r.string(header_len, "JSON header");
  const byte_span data = bytes.sub(8 + header_len, bytes.size - 8 - header_len, what);
  const json_value root = parse_json(header, what + " header");
  tensor_map out;
  std::vector<detail::safetensors_entry> entries;
  for (const auto& m : root.members(what + " header")) {
    if (m.first == "__metadata__") {
      for (const auto& kv : m.second.members(what + " __metadata__"))
        out.metadata[kv.first] = kv.second.as_string(what + " __metadata__ value '" + kv.first + "'");
      continue;
    }
    entries.push_back(detail::parse_safetensors_entry(m.first, m.second, what));
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  std::uint64_t expected_begin = 0;
  for (const auto& e : entries) {
    FACENET_CHECK(e.begin == expected_begin, format_error,
                  what + ": tensor '" + e.name + "' starts at data offset " + std::to_string(e.begin) + ", expected " +
                      std::to_string(expected_begin) + (e.begin < expected_begin ? " (overlaps the previous tensor)" : " (gap)"));
    expected_begin = e.end;
  }
  FACENET_CHECK(expected_begin == data.size, format_error,
                what + ": tensors cover " + std::to_string(expected_begin) + " data bytes but the file holds " +
                    std::to_string(data.size));
  for (const auto& e : entries) {
    const byte_span raw = data.sub(e.begin, e.end - e.begin, what + ": tensor '" + e.name + "'");
    out.add(e.name, decode_tensor(raw, e.type, e.dims, 0, contiguous_strides(e.dims, false), what + ": tensor '" + e.name + "'"),
            element_type_name(e.type));
    if (decoded) decoded(raw);
  }
  return out;
}

// Loads a .safetensors file through a memory mapping (tensors are decoded into aligned buffers).
inline tensor_map load_safetensors(const std::string& path) {
  const mapped_file file(path);
  // The file's pages leave memory as their tensors are decoded: never two copies of the weights.
  return parse_safetensors(file.bytes(), path, [&file](byte_span raw) { file.drop_pages(raw); });
}

// Serialises `tensors` (in their order) with `metadata` as __metadata__. dtype "F32", "F16" or "BF16".
inline std::string serialize_safetensors(const tensor_map& tensors, const std::string& dtype = "F32") {
  const element_type type = detail::safetensors_dtype(dtype, "save_safetensors");
  FACENET_CHECK(type == element_type::f32 || type == element_type::f16 || type == element_type::bf16, unsupported_error,
                "save_safetensors: can write F32, F16 or BF16, not " + dtype);
  json_value header = json_value::make_object();
  if (!tensors.metadata.empty()) {
    json_value meta = json_value::make_object();
    for (const auto& kv : tensors.metadata) meta.set(kv.first, json_value::make_string(kv.second));
    header.set("__metadata__", std::move(meta));
  }
  std::string data;
  for (const auto& e : tensors.entries()) {
    FACENET_CHECK(e.name != "__metadata__", argument_error, "save_safetensors: '__metadata__' is not a valid tensor name");
    const Tensor<float> t = e.value.is_contiguous() ? e.value : e.value.clone();
    json_value entry = json_value::make_object();
    entry.set("dtype", json_value::make_string(element_type_name(type)));
    json_value dims = json_value::make_array();
    for (std::int64_t d : t.shape()) dims.push_back(json_value::make_int(d));
    entry.set("shape", std::move(dims));
    json_value offsets = json_value::make_array();
    offsets.push_back(json_value::make_int(static_cast<std::int64_t>(data.size())));
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const float v = t.data()[i];
      if (type == element_type::f32) store_le(data, float_to_bits(v));
      else store_le(data, type == element_type::f16 ? float_to_half(v) : float_to_bfloat16(v));
    }
    offsets.push_back(json_value::make_int(static_cast<std::int64_t>(data.size())));
    entry.set("data_offsets", std::move(offsets));
    header.set(e.name, std::move(entry));
  }
  std::string json = to_json(header);
  json.append((8 - json.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the reference writer does
  std::string out;
  out.reserve(8 + json.size() + data.size());
  store_le(out, static_cast<std::uint64_t>(json.size()));
  out += json;
  out += data;
  return out;
}

inline void save_safetensors(const std::string& path, const tensor_map& tensors, const std::string& dtype = "F32") {
  write_file_atomically(path, serialize_safetensors(tensors, dtype));
}

}  // namespace facenet::io
