// TensorFlow checkpoint (tensor bundle) reader and the TF-slim -> facenet-pytorch name mapping. The
// fixtures in tests/fixtures/tf/ were written by tests/fixtures/make_tf_fixtures.py with protoc +
// python3-protobuf from the published .proto files and an SSTable writer following LevelDB's spec.
#include "facenet/io/tf_checkpoint.hpp"

#include <unistd.h>

#include <algorithm>
#include <functional>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "facenet/io/convert.hpp"
#include "facenet/io/tf_names.hpp"
#include "fixtures/expected_tensors.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;
using facenet::format_error;
using facenet::io::mapping_report;
using facenet::io::tensor_map;
using facenet::testing::read_expected;

using facenet::testing::error_message;
using facenet::testing::fixture_path;

namespace {


// A private copy of a checkpoint so a test can damage it.
std::string copy_checkpoint(const std::string& name, const std::string& tag) {
  const fs::path dir = fs::temp_directory_path() / ("facenet_tf_" + tag + "_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(fs::path(fixture_path("tf/"))))
    if (e.path().filename().string().rfind(name + ".", 0) == 0)
      fs::copy_file(e.path(), dir / e.path().filename(), fs::copy_options::overwrite_existing);
  return (dir / name).string();
}

void patch_byte(const std::string& path, std::int64_t offset_from_end_or_start, bool from_end) {
  std::vector<std::uint8_t> b = facenet::io::read_file_bytes(path);
  const std::size_t at = from_end ? b.size() - static_cast<std::size_t>(offset_from_end_or_start)
                                  : static_cast<std::size_t>(offset_from_end_or_start);
  b[at] ^= 0x5a;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void truncate_file(const std::string& path, std::uintmax_t size) { fs::resize_file(path, size); }

tensor_map without(const tensor_map& src, const std::vector<std::string>& drop) {
  tensor_map out;
  for (const auto& e : src.entries())
    if (std::find(drop.begin(), drop.end(), e.name) == drop.end()) out.add(e.name, e.value, e.source_dtype);
  return out;
}

}  // namespace

TEST(crc32c, known_vector) {
  const std::string s = "123456789";
  EXPECT_EQ(facenet::io::crc32c(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()), 0xe3069283u);
  const std::uint8_t zeros[32] = {};
  EXPECT_EQ(facenet::io::crc32c(zeros, 32), 0x8a9136aau);  // RFC 3720 B.4
}

TEST(tf_checkpoint, reads_every_float_tensor) {
  const tensor_map m = facenet::io::read_tf_checkpoint(fixture_path("tf/irv1_small"));
  facenet::testing::expect_matches(m, read_expected(fixture_path("tf/irv1_small.raw_expected")));
  EXPECT_EQ(m.metadata.at("tf.skipped"), "global_step");
  EXPECT_EQ(m.metadata.at("source_format"), "tf-checkpoint");
}

TEST(tf_checkpoint, double_half_bfloat16_over_two_shards) {
  const tensor_map m = facenet::io::read_tf_checkpoint(fixture_path("tf/dtypes"));
  facenet::testing::expect_matches(m, read_expected(fixture_path("tf/dtypes.expected")));
  EXPECT_EQ(m.entries()[0].source_dtype, "DT_DOUBLE");
  EXPECT_EQ(m.at("b_half").data()[1], -65504.0f);
  EXPECT_NEAR(m.at("b_half").data()[0], 5.96e-8f, 1e-10);  // subnormal half
}

TEST(tf_names, maps_every_variable_onto_facenet_pytorch) {
  const tensor_map tf = facenet::io::read_tf_checkpoint(fixture_path("tf/irv1_small"));
  mapping_report report;
  const tensor_map pt = facenet::io::map_tf_slim_to_facenet_pytorch(tf, report);
  facenet::testing::expect_matches(pt, read_expected(fixture_path("tf/irv1_small.expected")));
  EXPECT_TRUE(report.complete());
  EXPECT_EQ(report.unused, std::vector<std::string>{"centers"});
  EXPECT_EQ(report.mapped.size(), pt.size());
  EXPECT_EQ(pt.metadata.at("architecture"), "inception_resnet_v1");
  // Spot checks against the published layout: HWIO -> OIHW and the residual conv with its bias.
  const auto& w = tf.at("InceptionResnetV1/Repeat_1/block17_3/Branch_1/Conv2d_0b_1x7/weights");
  const auto& o = pt.at("repeat_2.2.branch1.1.conv.weight");
  ASSERT_EQ(o.shape(), (facenet::shape{w.size(3), w.size(2), 1, 7}));
  EXPECT_EQ(o(1, 0, 0, 5), w(0, 5, 0, 1));
  EXPECT_EQ(pt.at("repeat_1.4.conv2d.bias").data()[0], tf.at("InceptionResnetV1/Repeat/block35_5/Conv2d_1x1/biases").data()[0]);
  EXPECT_EQ(pt.at("last_linear.weight")(2, 4), tf.at("InceptionResnetV1/Bottleneck/weights")(4, 2));
  for (float v : pt.at("mixed_7a.branch2.1.bn.weight")) EXPECT_EQ(v, 1.0f);
}

TEST(tf_names, reports_missing_and_treats_logits_as_optional) {
  const tensor_map tf = facenet::io::read_tf_checkpoint(fixture_path("tf/irv1_small"));
  const tensor_map partial = without(tf, {"InceptionResnetV1/Block8/Conv2d_1x1/biases",
                                          "InceptionResnetV1/Mixed_6a/Branch_1/Conv2d_0b_3x3/BatchNorm/moving_variance",
                                          "Logits/weights", "Logits/biases"});
  mapping_report report;
  const tensor_map pt = facenet::io::map_tf_slim_to_facenet_pytorch(partial, report);
  EXPECT_EQ(report.missing, (std::vector<std::string>{"mixed_6a.branch1.1.bn.running_var", "block8.conv2d.bias"}));
  EXPECT_FALSE(pt.contains("logits.weight"));
  EXPECT_FALSE(pt.contains("block8.conv2d.bias"));
  EXPECT_TRUE(pt.contains("block8.conv2d.weight"));
}

TEST(tf_names, wrong_rank_is_a_shape_error) {
  tensor_map tf = facenet::io::read_tf_checkpoint(fixture_path("tf/irv1_small"));
  tensor_map bad = without(tf, {"InceptionResnetV1/Conv2d_1a_3x3/weights"});
  bad.add("InceptionResnetV1/Conv2d_1a_3x3/weights", facenet::Tensor<float>({3, 3}));
  mapping_report report;
  const std::string msg = error_message<facenet::shape_error>([&] { facenet::io::map_tf_slim_to_facenet_pytorch(bad, report); });
  EXPECT_NE(msg.find("Conv2d_1a_3x3/weights"), std::string::npos) << msg;
}

TEST(tf_checkpoint, converter_detects_prefix_index_and_frozen_graph) {
  // The fixture has tiny channel counts, so every tensor is mis-shaped for the real model, but the
  // names must all be found (nothing missing) and the classifier head sized from Logits.
  for (const std::string& src : {fixture_path("tf/irv1_small"), fixture_path("tf/irv1_small.index"), fixture_path("tf/irv1_small_frozen.pb")}) {
    facenet::io::conversion_report report;
    facenet::io::prepare_conversion(src, {}, report);
    EXPECT_EQ(report.format, src.find(".pb") != std::string::npos ? "tf-frozen" : "tf-checkpoint") << src;
    EXPECT_EQ(report.arch, "inception_resnet_v1") << src;
    EXPECT_TRUE(report.missing.empty()) << report.problems();
    EXPECT_EQ(report.mismatched.size(), 603u) << src;
    ASSERT_EQ(report.converted.size(), 1u) << src;  // only logits.bias [7] has its real shape
    EXPECT_EQ(report.converted[0].name, "logits.bias");
  }
}

TEST(tf_checkpoint_hostile, bad_block_crc) {
  const std::string p = copy_checkpoint("irv1_small", "crc");
  patch_byte(p + ".index", 100, false);  // inside the first data block
  const std::string msg = error_message<format_error>([&] { facenet::io::read_tf_checkpoint(p); });
  EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find(".index at offset"), std::string::npos) << msg;
}

TEST(tf_checkpoint_hostile, truncated_index_and_bad_magic) {
  const std::string p = copy_checkpoint("irv1_small", "trunc");
  truncate_file(p + ".index", 20);
  EXPECT_NE(error_message<format_error>([&] { facenet::io::read_tf_checkpoint(p); }).find("48-byte table footer"),
            std::string::npos);
  const std::string q = copy_checkpoint("irv1_small", "magic");
  patch_byte(q + ".index", 1, true);
  EXPECT_NE(error_message<format_error>([&] { facenet::io::read_tf_checkpoint(q); }).find("bad table magic"), std::string::npos);
  const std::string r = copy_checkpoint("irv1_small", "cut");
  truncate_file(r + ".index", fs::file_size(r + ".index") / 2);  // footer now points past the end
  EXPECT_NE(error_message<format_error>([&] { facenet::io::read_tf_checkpoint(r); }).find("offset"), std::string::npos);
}

TEST(tf_checkpoint_hostile, corrupt_and_truncated_data) {
  const std::string p = copy_checkpoint("irv1_small", "data");
  patch_byte(p + ".data-00000-of-00001", 8, false);
  const std::string msg = error_message<format_error>([&] { facenet::io::read_tf_checkpoint(p); });
  EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor '"), std::string::npos) << msg;
  const std::string q = copy_checkpoint("irv1_small", "short");
  truncate_file(q + ".data-00000-of-00001", 1000);
  EXPECT_NE(error_message<format_error>([&] { facenet::io::read_tf_checkpoint(q); }).find("lies outside"), std::string::npos);
  fs::remove(q + ".data-00000-of-00001");
  error_message<facenet::io_error>([&] { facenet::io::read_tf_checkpoint(q); });
  error_message<facenet::io_error>([&] { facenet::io::read_tf_checkpoint(fixture_path("tf/does_not_exist")); });
}

TEST(tf_checkpoint_hostile, huge_or_inconsistent_declared_sizes) {
  const std::string huge = error_message<format_error>([&] { facenet::io::read_tf_checkpoint(fixture_path("tf/hostile_huge")); });
  EXPECT_NE(huge.find("'huge'"), std::string::npos) << huge;
  EXPECT_NE(huge.find("lies outside"), std::string::npos) << huge;
  const std::string wrong = error_message<format_error>([&] { facenet::io::read_tf_checkpoint(fixture_path("tf/hostile_wrong")); });
  EXPECT_NE(wrong.find("needs 16 bytes but its entry declares 12"), std::string::npos) << wrong;
}

TEST(tf_checkpoint_hostile, damaged_index_bytes_never_escape_as_anything_but_facenet_errors) {
  const std::vector<std::uint8_t> full = facenet::io::read_file_bytes(fixture_path("tf/irv1_small.index"));
  auto parse = [](const std::vector<std::uint8_t>& b) {
    facenet::io::sstable::read_all(facenet::io::byte_reader(b.data(), b.size(), "damaged.index"));
  };
  // Every truncation of the footer region, then single-byte damage across the footer and index block
  // (bounds, varints, restart arrays) and every 50th byte elsewhere (caught by the block CRCs).
  for (std::size_t n = full.size() - 300; n < full.size(); ++n)
    EXPECT_THROW(parse(std::vector<std::uint8_t>(full.begin(), full.begin() + static_cast<long>(n))), format_error) << n;
  for (std::size_t i = 0; i < full.size(); i += (i + 400 >= full.size() ? 1 : 50)) {
    std::vector<std::uint8_t> b = full;
    b[i] ^= static_cast<std::uint8_t>(i % 2 ? 0xff : 0x80);
    try {
      parse(b);
    } catch (const facenet::error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "byte " << i << ": " << e.what();
    }
  }
}

// A structurally valid table (correct CRCs) whose prefix-compressed keys each grow by one byte:
// 1.5 MB on disk, tens of GB if decoded naively.
TEST(tf_checkpoint_hostile, prefix_compression_bomb_is_refused) {
  using bytes = std::vector<std::uint8_t>;
  auto varint = [](bytes& b, std::uint64_t v) {
    do {
      b.push_back(static_cast<std::uint8_t>((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
      v >>= 7;
    } while (v);
  };
  auto u32 = [](bytes& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  bytes file;
  auto emit_block = [&](bytes block) {  // appends block + trailer, returns its encoded handle
    u32(block, 0);  // one restart at offset 0
    u32(block, 1);
    bytes handle;
    varint(handle, file.size());
    varint(handle, block.size());
    block.push_back(0);  // uncompressed
    const std::uint32_t crc = facenet::io::crc32c_mask(facenet::io::crc32c(block.data(), block.size()));
    file.insert(file.end(), block.begin(), block.end());
    u32(file, crc);
    return handle;
  };
  bytes data;
  for (std::uint64_t i = 0; i < 300000; ++i) {
    varint(data, i);  // shares the whole previous key
    varint(data, 1);
    varint(data, 0);
    data.push_back('k');
  }
  const bytes data_handle = emit_block(data);
  bytes index;
  varint(index, 0);
  varint(index, 1);
  varint(index, data_handle.size());
  index.push_back(0xff);
  index.insert(index.end(), data_handle.begin(), data_handle.end());
  const bytes meta_handle = emit_block({});
  const bytes index_handle = emit_block(index);
  bytes footer = meta_handle;
  footer.insert(footer.end(), index_handle.begin(), index_handle.end());
  footer.resize(40, 0);
  for (int i = 0; i < 8; ++i) footer.push_back(static_cast<std::uint8_t>(facenet::io::sstable::table_magic >> (8 * i)));
  file.insert(file.end(), footer.begin(), footer.end());
  const std::string msg = error_message<format_error>(
      [&] { facenet::io::sstable::read_all(facenet::io::byte_reader(file.data(), file.size(), "bomb.index")); });
  EXPECT_NE(msg.find("more than 16x the file size"), std::string::npos) << msg;
}

// Protobuf wire-format edge cases, on hand-made bytes.
TEST(protobuf, nesting_limit_and_malformed_input) {
  using facenet::io::byte_reader;
  namespace pb = facenet::io::pb;
  // 80 levels of field 1 { field 1 { ... } }, built inside out.
  std::vector<std::uint8_t> msg;
  for (int i = 0; i < 80; ++i) {
    std::vector<std::uint8_t> outer = {0x0a, static_cast<std::uint8_t>(msg.size())};
    if (msg.size() >= 128) outer = {0x0a, static_cast<std::uint8_t>(0x80 | (msg.size() & 0x7f)), static_cast<std::uint8_t>(msg.size() >> 7)};
    outer.insert(outer.end(), msg.begin(), msg.end());
    msg = outer;
  }
  auto descend = [&] {
    std::function<void(pb::message_reader)> go = [&](pb::message_reader m) {
      pb::field f;
      while (m.next(f)) go(m.nested(f));
    };
    go(pb::message_reader(byte_reader(msg.data(), msg.size(), "deep.pb")));
  };
  EXPECT_NE(error_message<format_error>(descend).find("nested deeper"), std::string::npos);

  const std::vector<std::uint8_t> overlong(12, 0xff);
  EXPECT_NE(error_message<format_error>([&] { byte_reader(overlong.data(), overlong.size(), "v").varint(); }).find("longer than 10"),
            std::string::npos);
  const std::vector<std::uint8_t> truncated = {0x0a, 0x05, 0x01};  // 5-byte field with 1 byte present
  const std::string t = error_message<format_error>([&] {
    pb::message_reader m(byte_reader(truncated.data(), truncated.size(), "t.pb"));
    pb::field f;
    m.next(f);
  });
  EXPECT_NE(t.find("t.pb at offset 2"), std::string::npos) << t;
  const std::vector<std::uint8_t> group = {0x0b};  // wire type 3 (start group)
  error_message<format_error>([&] {
    pb::message_reader m(byte_reader(group.data(), group.size(), "g.pb"));
    pb::field f;
    m.next(f);
  });
}
