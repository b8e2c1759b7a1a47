// One "consume these bytes" function per reader, shared by the libFuzzer targets (fuzz_target.cpp,
// built once per entry with FACENET_FUZZ_TARGET=<name>) and by test_fuzz_regressions, which replays
// the committed corpora and crash inputs through exactly the same code under the normal build.
// Every entry parses the bytes as the reader's file format and lets facenet::error out; anything
// else escaping (std::bad_alloc, std::out_of_range, ...) or a sanitizer report is a bug.
#pragma once

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/eval/lfw.hpp"
#include "facenet/io/npy.hpp"
#include "facenet/io/openface_csv.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/io/tf_checkpoint.hpp"
#include "facenet/io/tf_graphdef.hpp"
#include "facenet/io/torch7.hpp"
#include "facenet/io/torch_file.hpp"
#include "facenet/train/checkpoint.hpp"

namespace facenet::fuzz {

using consume_fn = void (*)(const std::uint8_t* data, std::size_t size);

struct entry_point {
  const char* name;  // also the fuzz target (fuzz_<name>) and the corpus / regression directory
  consume_fn consume;
};

inline constexpr const char* source = "<fuzz input>";

inline io::byte_span span_of(const std::uint8_t* data, std::size_t size) { return {data, size}; }

// A TF checkpoint is two files; the input carries both: u32 little-endian index length, the .index
// bytes, then the data bytes every shard reads from (so shard ids and offsets are exercised).
inline void consume_tf_checkpoint(const std::uint8_t* data, std::size_t size) {
  io::span_reader r(span_of(data, size), source);
  const std::uint32_t index_len = r.read<std::uint32_t>("index length");
  const io::byte_span index = r.span(index_len, "index");
  const io::byte_span shard = r.span(r.remaining(), "data");
  io::parse_tf_checkpoint(std::vector<std::uint8_t>(index.data, index.data + index.size), source,
                          [shard](const std::string& tensor, std::int64_t, std::int64_t, std::int64_t offset, std::int64_t n) {
                            io::tf::check_data_range("<fuzz data shard>", tensor, offset, n,
                                                     static_cast<std::int64_t>(shard.size));
                            const std::uint8_t* p = shard.data + offset;
                            return std::vector<std::uint8_t>(p, p + n);
                          });
}

// The fuzzer runs with a smaller pixel limit than the library's default so that each input decodes
// quickly; the limit is checked by the same code either way.
inline void consume_image(const std::uint8_t* data, std::size_t size) {
  data::image_load_options opt;
  opt.max_pixels = std::int64_t{1} << 22;
  data::decode_image(data, size, opt, source);
}

inline void consume_lfw_pairs(const std::uint8_t* data, std::size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  eval::parse_lfw_pairs(in, source);
}

inline const std::vector<entry_point>& entry_points() {
  static const std::vector<entry_point> all = {
      {"safetensors", [](const std::uint8_t* d, std::size_t n) { io::parse_safetensors(span_of(d, n), source); }},
      {"checkpoint",
       [](const std::uint8_t* d, std::size_t n) {
         train::checkpoint_from_tensor_map(io::parse_safetensors(span_of(d, n), source), source);
       }},
      {"torch_zip", [](const std::uint8_t* d, std::size_t n) { io::parse_torch_zip(span_of(d, n), source); }},
      {"torch_legacy", [](const std::uint8_t* d, std::size_t n) { io::parse_torch_legacy(span_of(d, n), source); }},
      {"npy", [](const std::uint8_t* d, std::size_t n) { io::parse_npy(span_of(d, n), source); }},
      {"npz", [](const std::uint8_t* d, std::size_t n) { io::parse_npz(span_of(d, n), source); }},
      {"tf_checkpoint", consume_tf_checkpoint},
      {"tf_graphdef",
       [](const std::uint8_t* d, std::size_t n) { io::parse_tf_graphdef(std::vector<std::uint8_t>(d, d + n), source); }},
      {"torch7",
       [](const std::uint8_t* d, std::size_t n) { io::torch7_parameters(io::t7::file(std::vector<std::uint8_t>(d, d + n), source)); }},
      {"openface_csv",
       [](const std::uint8_t* d, std::size_t n) { io::openface_csv::parse_numbers(reinterpret_cast<const char*>(d), n, source); }},
      {"image", consume_image},
      {"lfw_pairs", consume_lfw_pairs},
  };
  return all;
}

// The entry called `name`, or nullptr.
inline const entry_point* find_entry_point(const std::string& name) {
  for (const entry_point& e : entry_points())
    if (name == e.name) return &e;
  return nullptr;
}

// Runs one input; true when the reader accepted it, false when it refused it with a facenet::error.
inline bool consume(const entry_point& e, const std::uint8_t* data, std::size_t size) {
  try {
    e.consume(data, size);
    return true;
  } catch (const facenet::error&) {
    return false;
  }
}

}  // namespace facenet::fuzz
