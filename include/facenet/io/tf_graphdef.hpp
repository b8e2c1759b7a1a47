// Frozen TensorFlow GraphDef (.pb, as written by freeze_graph): variables became "Const" nodes whose
// attr "value" holds a TensorProto. Field numbers from tensorflow/core/framework/{graph,node_def,
// attr_value,tensor}.proto:
//   GraphDef   { repeated NodeDef node = 1; }
//   NodeDef    { string name = 1; string op = 2; map<string, AttrValue> attr = 5; }
//   AttrValue  { oneof { ...; TensorProto tensor = 8; } }
//   TensorProto{ DataType dtype = 1; TensorShapeProto tensor_shape = 2; bytes tensor_content = 4;
//                repeated float float_val = 5; repeated double double_val = 6; repeated int32 half_val = 13; }
// When tensor_content is empty, the *_val list may be shorter than the tensor: TensorFlow repeats
// the last value (a single value broadcasts) and an empty list means zeros.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "facenet/io/protobuf.hpp"
#include "facenet/io/tf_checkpoint.hpp"

namespace facenet::io {
namespace tf {

inline constexpr std::size_t max_graphdef_bytes = std::size_t{1} << 31;  // protobuf's own 2 GiB limit

// A TensorProto of a float dtype as a tensor; returns false (and leaves `out` alone) for other dtypes.
// `expand_budget` is what short value lists may still expand to, over the whole graph (a broadcast
// constant is legitimately larger than its encoding, but many of them must not add up without limit);
// each such constant's bytes are taken from it before the tensor is allocated.
inline bool parse_tensor_proto(pb::message_reader m, const std::string& name, Tensor<float>& out, std::string& dtype_name,
                               std::uint64_t& expand_budget) {
  std::uint64_t dt = 0;
  facenet::shape dims;
  byte_reader content(nullptr, 0, m.source());
  bool has_content = false;
  std::vector<pb::field> values;  // float_val / double_val / half_val fields, decoded once dtype is known
  pb::field f;
  while (m.next(f)) {
    switch (f.number) {
      case 1: dt = m.varint(f); break;
      case 2: dims = parse_shape(m.nested(f), name); break;
      case 4:
        if (f.type != pb::wire_type::length_delimited) m.fail_at(f, "tensor_content of '" + name + "' is not bytes");
        content = f.payload;
        has_content = true;
        break;
      case 5:
      case 6:
      case 13: values.push_back(f); break;
      default: break;
    }
  }
  if (float_dtype_size(dt) == 0) return false;
  const std::int64_t numel = checked_numel(dims, m.source(), name);
  const std::uint64_t bytes = static_cast<std::uint64_t>(numel) * static_cast<std::uint64_t>(float_dtype_size(dt));
  if (has_content && content.size() != bytes)
    content.fail("tensor_content of '" + name + "' (" + float_dtype_name(dt) + " " + dims.str() + ") has " +
                 std::to_string(content.size()) + " bytes, expected " + std::to_string(bytes));
  if (!has_content) {
    const std::uint64_t expanded = static_cast<std::uint64_t>(numel) * 4;
    if (expanded > expand_budget)
      throw format_error(m.source() + ": constant '" + name + "' of shape " + dims.str() + " expands to " +
                         std::to_string(expanded) + " bytes, beyond the limit of " + std::to_string(expand_budget) +
                         " bytes left for expanded constants");
    expand_budget -= expanded;
  }
  Tensor<float> t = Tensor<float>::uninitialized(dims);
  if (has_content) {
    decode_float_elements(dt, content.bytes(bytes), numel, t.data());
  } else {
    std::vector<std::uint64_t> raw;
    const std::uint32_t wanted = dt == dt_double ? 6 : dt == dt_float ? 5 : 13;
    for (const pb::field& v : values) {
      if (v.number != wanted) continue;
      if (wanted == 6) m.repeated<8>(v, raw, static_cast<std::uint64_t>(numel));
      else if (wanted == 5) m.repeated<4>(v, raw, static_cast<std::uint64_t>(numel));
      else m.repeated<0>(v, raw, static_cast<std::uint64_t>(numel));  // half_val: int32 varints holding the bits
    }
    for (std::int64_t i = 0; i < numel; ++i) {
      const std::uint64_t bits = raw.empty() ? 0 : raw[std::min<std::size_t>(static_cast<std::size_t>(i), raw.size() - 1)];
      std::uint8_t le[8];
      for (int b = 0; b < 8; ++b) le[b] = static_cast<std::uint8_t>(bits >> (8 * b));
      decode_float_elements(dt, le, 1, t.data() + i);
    }
  }
  out = std::move(t);
  dtype_name = float_dtype_name(dt);
  return true;
}

// The TensorProto in attr "value" of a NodeDef if its op is "Const".
inline void read_const_node(pb::message_reader node, tensor_map& out, std::uint64_t& expand_budget) {
  std::string name, op;
  std::vector<pb::field> attrs;
  pb::field f;
  while (node.next(f)) {
    if (f.number == 1) name = node.string(f);
    else if (f.number == 2) op = node.string(f);
    else if (f.number == 5) attrs.push_back(f);
  }
  if (op != "Const") return;
  for (const pb::field& a : attrs) {
    pb::message_reader entry = node.nested(a);  // map entry { string key = 1; AttrValue value = 2; }
    std::string key;
    pb::field value_field;
    bool has_value = false;
    pb::field e;
    while (entry.next(e)) {
      if (e.number == 1) key = entry.string(e);
      else if (e.number == 2) { value_field = e; has_value = true; }
    }
    if (key != "value" || !has_value) continue;
    pb::message_reader value = entry.nested(value_field);
    pb::field v;
    while (value.next(v)) {
      if (v.number != 8) continue;
      Tensor<float> t;
      std::string dtype_name;
      if (parse_tensor_proto(value.nested(v), name, t, dtype_name, expand_budget)) out.add(name, std::move(t), dtype_name);
      else append_skipped(out, name);
    }
  }
}

}  // namespace tf

// Every floating-point Const of a serialized GraphDef already in memory; `path` names it in errors.
inline tensor_map parse_tf_graphdef(const std::vector<std::uint8_t>& bytes, const std::string& path) {
  FACENET_CHECK(bytes.size() < tf::max_graphdef_bytes, format_error, path + ": larger than protobuf's 2 GiB limit");
  pb::message_reader graph(byte_reader(bytes.data(), bytes.size(), path));
  tensor_map out;
  out.metadata["source_format"] = "tf-frozen";
  // Constants given by short value lists may together expand beyond the file by up to 64 MiB.
  std::uint64_t expand_budget = bytes.size() + (std::uint64_t{64} << 20);
  std::size_t nodes = 0;
  pb::field f;
  while (graph.next(f)) {
    if (f.number != 1) continue;  // versions, library: nothing to load
    tf::read_const_node(graph.nested(f), out, expand_budget);
    ++nodes;
  }
  FACENET_CHECK(nodes > 0, format_error, path + ": no NodeDef found; not a TensorFlow GraphDef");
  return out;
}

// Every floating-point Const of a frozen GraphDef file, by node name, in graph order.
inline tensor_map read_tf_graphdef(const std::string& path) { return parse_tf_graphdef(read_file_bytes(path), path); }

}  // namespace facenet::io
