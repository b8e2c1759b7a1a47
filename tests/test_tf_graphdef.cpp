// Frozen GraphDef reader. tests/fixtures/tf/irv1_small_frozen.pb was serialized by python3-protobuf
// from the published GraphDef/NodeDef/AttrValue/TensorProto messages (make_tf_fixtures.py).
#include "facenet/io/tf_graphdef.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "facenet/io/tf_names.hpp"
#include "fixtures/expected_tensors.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;
using facenet::format_error;
using facenet::io::tensor_map;

using facenet::testing::fixture_path;

namespace {


// Protobuf encoding helpers for hand-made hostile graphs.
using bytes = std::vector<std::uint8_t>;
bytes varint(std::uint64_t v) {
  bytes b;
  do {
    b.push_back(static_cast<std::uint8_t>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
    v >>= 7;
  } while (v);
  return b;
}
bytes cat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}
bytes len_field(std::uint32_t number, const bytes& payload) { return cat({varint(number << 3 | 2), varint(payload.size()), payload}); }
bytes int_field(std::uint32_t number, std::uint64_t v) { return cat({varint(number << 3), varint(v)}); }
bytes str(const std::string& s) { return bytes(s.begin(), s.end()); }

// GraphDef { node { name op=Const attr { key: "value" value { tensor: <tensor> } } } }
bytes const_graph(const bytes& tensor) {
  const bytes attr = cat({len_field(1, str("value")), len_field(2, len_field(8, tensor))});
  return len_field(1, cat({len_field(1, str("w")), len_field(2, str("Const")), len_field(5, attr)}));
}
bytes shape_2x2() { return len_field(2, cat({len_field(2, int_field(1, 2)), len_field(2, int_field(1, 2))})); }

std::string write_temp_pb(const std::string& tag, const bytes& b) {
  const fs::path p = fs::temp_directory_path() / ("facenet_pb_" + tag + "_" + std::to_string(::getpid()) + ".pb");
  std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  return p.string();
}

std::string error_of(const std::string& path) {
  try {
    facenet::io::read_tf_graphdef(path);
  } catch (const format_error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no format_error for " << path;
  return {};
}

}  // namespace

TEST(tf_graphdef, reads_float_consts_including_broadcast_values) {
  const tensor_map m = facenet::io::read_tf_graphdef(fixture_path("tf/irv1_small_frozen.pb"));
  facenet::testing::expect_matches(m, facenet::testing::read_expected(fixture_path("tf/irv1_small_frozen.raw_expected")));
  EXPECT_EQ(m.metadata.at("tf.skipped"), "InceptionResnetV1/Reshape/shape");
  for (float v : m.at("broadcast_017")) EXPECT_EQ(v, 0.17f);
  EXPECT_EQ(m.at("repeat_last").data()[3], -2.0f);
  EXPECT_EQ(m.entries().front().name, "InceptionResnetV1/Block8/Branch_0/Conv2d_1x1/BatchNorm/beta");  // graph order
}

TEST(tf_graphdef, maps_onto_facenet_pytorch_like_the_checkpoint) {
  const tensor_map tf = facenet::io::read_tf_graphdef(fixture_path("tf/irv1_small_frozen.pb"));
  facenet::io::mapping_report report;
  const tensor_map pt = facenet::io::map_tf_slim_to_facenet_pytorch(tf, report);
  facenet::testing::expect_matches(pt, facenet::testing::read_expected(fixture_path("tf/irv1_small.expected")));
  EXPECT_TRUE(report.complete());
  EXPECT_EQ(report.unused, (std::vector<std::string>{"broadcast_017", "repeat_last", "doubles"}));
}

TEST(tf_graphdef_hostile, truncated_file) {
  const bytes full = facenet::io::read_file_bytes(fixture_path("tf/irv1_small_frozen.pb"));
  const std::string msg = error_of(write_temp_pb("trunc", bytes(full.begin(), full.begin() + static_cast<long>(full.size() / 3))));
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at offset"), std::string::npos) << msg;
}

TEST(tf_graphdef_hostile, not_a_graph) {
  EXPECT_NE(error_of(write_temp_pb("empty", {})).find("no NodeDef"), std::string::npos);
  EXPECT_NE(error_of(write_temp_pb("text", str("node { name: 'x' }"))).find("protobuf"), std::string::npos);
}

TEST(tf_graphdef_hostile, content_size_and_value_count_must_fit_the_shape) {
  const bytes short_content = cat({int_field(1, 1), shape_2x2(), len_field(4, bytes(12, 0))});
  EXPECT_NE(error_of(write_temp_pb("content", const_graph(short_content))).find("has 12 bytes, expected 16"), std::string::npos);
  const bytes one = {0, 0, 0x80, 0x3f};  // 1.0f
  const bytes five_floats = cat({one, one, one, one, one});
  const bytes too_many = cat({int_field(1, 1), shape_2x2(), len_field(5, five_floats)});
  EXPECT_NE(error_of(write_temp_pb("many", const_graph(too_many))).find("more repeated values"), std::string::npos);
  const bytes huge_dim = cat({int_field(1, 1), len_field(2, len_field(2, int_field(1, std::uint64_t{1} << 45)))});
  EXPECT_NE(error_of(write_temp_pb("huge", const_graph(huge_dim))).find("invalid dimension"), std::string::npos);
  const bytes broadcast_huge = cat({int_field(1, 1), len_field(2, cat({len_field(2, int_field(1, 1 << 20)), len_field(2, int_field(1, 1 << 20))})),
                                    len_field(5, one)});
  EXPECT_NE(error_of(write_temp_pb("bcast", const_graph(broadcast_huge))).find("beyond the limit"), std::string::npos);
  const bytes unknown_rank = cat({int_field(1, 1), len_field(2, int_field(3, 1))});
  EXPECT_NE(error_of(write_temp_pb("rank", const_graph(unknown_rank))).find("unknown rank"), std::string::npos);
}

TEST(tf_graphdef_hostile, corrupted_bytes_never_escape_as_anything_but_facenet_errors) {
  const bytes full = facenet::io::read_file_bytes(fixture_path("tf/irv1_small_frozen.pb"));
  for (std::size_t i = 0; i < full.size(); i += 167) {
    bytes b = full;
    b[i] ^= static_cast<std::uint8_t>(i % 3 == 0 ? 0x80 : i % 3 == 1 ? 0x7f : 0xff);
    try {
      facenet::io::parse_tf_graphdef(b, "flipped.pb");
    } catch (const facenet::error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "byte " << i << ": " << e.what();
    }
  }
}

TEST(tf_graphdef, half_values_and_empty_value_lists) {
  // DT_HALF via half_val (int32 bit patterns): 1.0 = 0x3c00, -2.0 = 0xc000; DT_FLOAT with no values -> zeros.
  const bytes halfs = cat({int_field(1, 19), shape_2x2(), len_field(13, cat({varint(0x3c00), varint(0xc000)}))});
  const tensor_map h = facenet::io::read_tf_graphdef(write_temp_pb("half", const_graph(halfs)));
  EXPECT_EQ(h.at("w").data()[0], 1.0f);
  EXPECT_EQ(h.at("w").data()[3], -2.0f);
  EXPECT_EQ(h.entries()[0].source_dtype, "DT_HALF");
  const tensor_map z = facenet::io::read_tf_graphdef(write_temp_pb("zero", const_graph(cat({int_field(1, 1), shape_2x2()}))));
  for (float v : z.at("w")) EXPECT_EQ(v, 0.0f);
}
