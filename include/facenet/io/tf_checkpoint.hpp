// TensorFlow V2 checkpoints ("tensor bundles", as written by tf.train.Saver since TF 1.x):
//   <prefix>.index                  SSTable: key "" -> BundleHeaderProto, key name -> BundleEntryProto
//   <prefix>.data-00000-of-0000N    raw little-endian tensor bytes at BundleEntryProto.offset
// Messages and field numbers follow tensorflow/core/protobuf/tensor_bundle.proto and
// tensorflow/core/framework/{tensor_shape,types}.proto. Floating-point tensors (float, double, half,
// bfloat16) are read; others (global_step, strings) are listed in metadata["tf.skipped"].
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/io/protobuf.hpp"
#include "facenet/io/sstable.hpp"
#include "facenet/io/tensor_map.hpp"

namespace facenet::io {
namespace tf {

// tensorflow.DataType values we can turn into float.
enum dtype : std::uint64_t { dt_float = 1, dt_double = 2, dt_bfloat16 = 14, dt_half = 19 };

inline int float_dtype_size(std::uint64_t dt) {
  switch (dt) {
    case dt_float: return 4;
    case dt_double: return 8;
    case dt_half:
    case dt_bfloat16: return 2;
    default: return 0;
  }
}
inline const char* float_dtype_name(std::uint64_t dt) {
  switch (dt) {
    case dt_float: return "DT_FLOAT";
    case dt_double: return "DT_DOUBLE";
    case dt_half: return "DT_HALF";
    case dt_bfloat16: return "DT_BFLOAT16";
    default: return "non-float";
  }
}

inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal half: normalise into a float exponent
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while (!(mant & 0x400u));
    bits = sign | (static_cast<std::uint32_t>(112 - e) << 23) | ((mant & 0x3ffu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Converts `count` little-endian elements of float dtype `dt` into `out`.
inline void decode_float_elements(std::uint64_t dt, const std::uint8_t* src, std::int64_t count, float* out) {
  for (std::int64_t i = 0; i < count; ++i) {
    const std::uint8_t* p = src + i * float_dtype_size(dt);
    std::uint64_t bits = 0;
    for (int b = 0; b < float_dtype_size(dt); ++b) bits |= static_cast<std::uint64_t>(p[b]) << (8 * b);
    if (dt == dt_float) {
      const auto u = static_cast<std::uint32_t>(bits);
      std::memcpy(&out[i], &u, 4);
    } else if (dt == dt_double) {
      double d;
      std::memcpy(&d, &bits, 8);
      out[i] = static_cast<float>(d);
    } else if (dt == dt_half) {
      out[i] = half_to_float(static_cast<std::uint16_t>(bits));
    } else {
      const auto u = static_cast<std::uint32_t>(bits << 16);
      std::memcpy(&out[i], &u, 4);
    }
  }
}

// TensorShapeProto { repeated Dim dim = 2 { int64 size = 1; string name = 2; } bool unknown_rank = 3; }
inline facenet::shape parse_shape(pb::message_reader m, const std::string& tensor) {
  facenet::shape s;
  pb::field f;
  while (m.next(f)) {
    if (f.number == 3 && m.varint(f) != 0) m.fail_at(f, "tensor '" + tensor + "' has unknown rank");
    if (f.number != 2) continue;
    pb::message_reader dim = m.nested(f);
    std::int64_t size = 0;
    pb::field d;
    while (dim.next(d))
      if (d.number == 1) size = static_cast<std::int64_t>(dim.varint(d));
    if (size < 0 || size > (std::int64_t{1} << 40))
      m.fail_at(f, "tensor '" + tensor + "' has invalid dimension " + std::to_string(size));
    if (s.rank() == facenet::shape::max_rank)
      m.fail_at(f, "tensor '" + tensor + "' has more than " + std::to_string(facenet::shape::max_rank) + " dimensions");
    s.push_back(size);
  }
  return s;
}

// Element count with overflow checking (each dim <= 2^40 already).
inline std::int64_t checked_numel(const facenet::shape& s, const std::string& source, const std::string& tensor) {
  std::int64_t n = 1;
  for (std::int64_t d : s) {
    if (d != 0 && n > (std::int64_t{1} << 50) / d)
      throw format_error(source + ": tensor '" + tensor + "' of shape " + s.str() + " is implausibly large");
    n *= d;
  }
  return n;
}

struct bundle_entry {
  std::uint64_t dtype = 0;
  facenet::shape dims;
  std::int64_t shard_id = 0, offset = 0, size = 0;
  std::uint32_t crc32c = 0;
  bool has_crc = false, sliced = false;
};

inline bundle_entry parse_bundle_entry(pb::message_reader m, const std::string& name) {
  bundle_entry e;
  pb::field f;
  while (m.next(f)) {
    switch (f.number) {
      case 1: e.dtype = m.varint(f); break;
      case 2: e.dims = parse_shape(m.nested(f), name); break;
      case 3: e.shard_id = static_cast<std::int64_t>(m.varint(f)); break;
      case 4: e.offset = static_cast<std::int64_t>(m.varint(f)); break;
      case 5: e.size = static_cast<std::int64_t>(m.varint(f)); break;
      case 6: e.crc32c = m.fixed32(f); e.has_crc = true; break;
      case 7: e.sliced = true; break;
      default: break;  // unknown fields are skipped, as protobuf requires
    }
  }
  return e;
}

struct bundle_header {
  std::int64_t num_shards = 1;
  bool big_endian = false;
};

inline bundle_header parse_bundle_header(pb::message_reader m) {
  bundle_header h;
  pb::field f;
  while (m.next(f)) {
    if (f.number == 1) h.num_shards = static_cast<std::int64_t>(m.varint(f));
    if (f.number == 2) h.big_endian = m.varint(f) != 0;
  }
  return h;
}

inline std::string shard_path(const std::string& prefix, std::int64_t shard, std::int64_t num_shards) {
  char buf[64];
  std::snprintf(buf, sizeof buf, ".data-%05lld-of-%05lld", static_cast<long long>(shard),
                static_cast<long long>(num_shards));
  return prefix + buf;
}

// Throws unless [offset, offset + n) lies inside a `size`-byte data shard; checked before any
// buffer for the tensor is allocated.
inline void check_data_range(const std::string& shard, const std::string& tensor, std::int64_t offset, std::int64_t n,
                             std::int64_t size) {
  FACENET_CHECK(offset >= 0 && n >= 0 && offset <= size && n <= size - offset, format_error,
                shard + ": tensor '" + tensor + "' at offset " + std::to_string(offset) + " with " + std::to_string(n) +
                    " bytes lies outside the " + std::to_string(size) + "-byte data file");
}

// One open data shard; reads byte ranges after checking them against the file size.
class shard_file {
 public:
  explicit shard_file(std::string path) : path_(std::move(path)), in_(path_, std::ios::binary | std::ios::ate) {
    FACENET_CHECK(in_, io_error, "cannot open checkpoint data file '" + path_ + "'");
    size_ = static_cast<std::int64_t>(in_.tellg());
  }
  std::vector<std::uint8_t> read(std::int64_t offset, std::int64_t n, const std::string& tensor) {
    check_data_range(path_, tensor, offset, n, size_);
    std::vector<std::uint8_t> buf(static_cast<std::size_t>(n));
    in_.seekg(offset);
    if (n) in_.read(reinterpret_cast<char*>(buf.data()), n);
    FACENET_CHECK(in_.good(), io_error, path_ + ": read error at offset " + std::to_string(offset));
    return buf;
  }

 private:
  std::string path_;
  std::ifstream in_;
  std::int64_t size_ = 0;
};

// Where tensor bytes come from: `n` bytes at `offset` of shard `shard` (0 <= shard < num_shards).
// Implementations check the range against the shard's size before allocating.
using shard_reader = std::function<std::vector<std::uint8_t>(const std::string& tensor, std::int64_t shard,
                                                             std::int64_t num_shards, std::int64_t offset, std::int64_t n)>;

// The data files "<prefix>.data-NNNNN-of-MMMMM", each opened on first use.
inline shard_reader shard_files(const std::string& prefix) {
  auto open = std::make_shared<std::map<std::int64_t, shard_file>>();
  return [prefix, open](const std::string& tensor, std::int64_t shard, std::int64_t num_shards, std::int64_t offset,
                        std::int64_t n) {
    auto it = open->find(shard);
    if (it == open->end()) it = open->emplace(shard, shard_file(shard_path(prefix, shard, num_shards))).first;
    return it->second.read(offset, n, tensor);
  };
}

// Reads the tensors an index names from the data shards.
class bundle_data {
 public:
  bundle_data(std::string index_path, std::int64_t num_shards, shard_reader read_shard)
      : index_path_(std::move(index_path)), num_shards_(num_shards), read_shard_(std::move(read_shard)) {}

  Tensor<float> read(const std::string& name, const bundle_entry& e) {
    FACENET_CHECK(!e.sliced, unsupported_error, index_path_ + ": tensor '" + name + "' is a partitioned (sliced) variable");
    FACENET_CHECK(e.shard_id >= 0 && e.shard_id < num_shards_, format_error,
                  index_path_ + ": tensor '" + name + "' names shard " + std::to_string(e.shard_id) + " of " +
                      std::to_string(num_shards_));
    const std::int64_t numel = checked_numel(e.dims, index_path_, name);
    const std::int64_t bytes = numel * float_dtype_size(e.dtype);
    FACENET_CHECK(bytes == e.size, format_error,
                  index_path_ + ": tensor '" + name + "' of " + float_dtype_name(e.dtype) + " shape " + e.dims.str() +
                      " needs " + std::to_string(bytes) + " bytes but its entry declares " + std::to_string(e.size));
    const std::vector<std::uint8_t> raw = read_shard_(name, e.shard_id, num_shards_, e.offset, e.size);
    if (e.has_crc) {
      const std::uint32_t crc = crc32c_mask(crc32c(raw.data(), raw.size()));
      FACENET_CHECK(skip_checksums || crc == e.crc32c, format_error,
                    index_path_ + ": tensor '" + name + "' (shard " + std::to_string(e.shard_id) + ", offset " +
                        std::to_string(e.offset) + ") checksum mismatch (index says " + std::to_string(e.crc32c) +
                        ", data gives " + std::to_string(crc) + ")");
    }
    Tensor<float> t = Tensor<float>::uninitialized(e.dims);
    decode_float_elements(e.dtype, raw.data(), numel, t.data());
    return t;
  }

 private:
  std::string index_path_;
  std::int64_t num_shards_;
  shard_reader read_shard_;
};

inline void append_skipped(tensor_map& out, const std::string& name) {
  std::string& s = out.metadata["tf.skipped"];
  s += (s.empty() ? "" : ",") + name;
}

}  // namespace tf

// Every floating-point tensor of a checkpoint whose .index file is in memory; tensor bytes come
// from `read_shard`. `index_path` names the index in errors.
inline tensor_map parse_tf_checkpoint(const std::vector<std::uint8_t>& index_bytes, const std::string& index_path,
                                      const tf::shard_reader& read_shard) {
  const byte_reader index(index_bytes.data(), index_bytes.size(), index_path);
  const auto entries = sstable::read_all(index);
  FACENET_CHECK(!entries.empty() && entries.front().first.empty(), format_error,
                index_path + ": no BundleHeaderProto (entry with the empty key); not a TensorFlow V2 checkpoint index");

  auto message = [&](const std::string& value) {
    return pb::message_reader(byte_reader(reinterpret_cast<const std::uint8_t*>(value.data()), value.size(), index_path));
  };
  const tf::bundle_header header = tf::parse_bundle_header(message(entries.front().second));
  FACENET_CHECK(!header.big_endian, unsupported_error, index_path + ": big-endian checkpoints are not supported");
  FACENET_CHECK(header.num_shards >= 1 && header.num_shards <= 100000, format_error,
                index_path + ": invalid shard count " + std::to_string(header.num_shards));

  tensor_map out;
  out.metadata["source_format"] = "tf-checkpoint";
  tf::bundle_data data(index_path, header.num_shards, read_shard);
  for (std::size_t i = 1; i < entries.size(); ++i) {
    const std::string& name = entries[i].first;
    const tf::bundle_entry e = tf::parse_bundle_entry(message(entries[i].second), name);
    if (tf::float_dtype_size(e.dtype) == 0) tf::append_skipped(out, name);
    else out.add(name, data.read(name, e), tf::float_dtype_name(e.dtype));
  }
  return out;
}

// Reads every floating-point tensor of the checkpoint `prefix` (the path without ".index").
inline tensor_map read_tf_checkpoint(const std::string& prefix) {
  const std::string index_path = prefix + ".index";
  return parse_tf_checkpoint(read_file_bytes(index_path), index_path, tf::shard_files(prefix));
}

}  // namespace facenet::io
