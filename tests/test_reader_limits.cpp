// The limits the readers enforce instead of trusting a file (tests/fuzz covers them at random; these
// are the hand-made worst cases): element counts against the storage, walks over shared or cyclic
// containers, expansion budgets, counts that must fit an int, and the JPEG Huffman table size that the
// Debian stb_image does not check. Each input here is small; without its limit it would hang, exhaust
// memory or write out of bounds.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "facenet/data/image_io.hpp"
#include "facenet/eval/lfw.hpp"
#include "facenet/io/pickle.hpp"
#include "facenet/io/tf_graphdef.hpp"
#include "facenet/io/torch7.hpp"
#include "facenet/io/torch_file.hpp"

using facenet::testing::error_message;

namespace {

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(reader_limits, strided_view_with_more_elements_than_its_storage_is_refused) {
  // Stride 0 over a one-element storage: a broadcast view, which would let 4 bytes demand gigabytes.
  const std::uint8_t one_float[4] = {0, 0, 0x80, 0x3f};
  const std::string msg = error_message<facenet::format_error>([&] {
    facenet::io::decode_tensor({one_float, 4}, facenet::io::element_type::f32, facenet::shape{std::int64_t{1} << 30}, 0, {0},
                               "t");
  });
  EXPECT_TRUE(contains(msg, "more elements than its 1-element storage")) << msg;
}

TEST(reader_limits, pickle_of_shared_dicts_is_not_walked_exponentially) {
  // d0 = {}; d(i) = {'a': d(i-1), 'b': d(i-1)} through memo references: 23 values, 2^8 paths.
  std::string p = "\x80\x02}q";
  p += '\0';
  p += '0';
  const auto key = [&](char c) { p += std::string("X\x01\0\0\0", 5) + c; };
  const int levels = 7;
  for (int i = 1; i <= levels; ++i) {
    p += "}q";
    p += static_cast<char>(i);
    p += '(';
    for (char c : {'a', 'b'}) {
      key(c);
      p += 'h';
      p += static_cast<char>(i - 1);
    }
    p += "u0";
  }
  p += 'h';
  p += static_cast<char>(levels);
  p += '.';
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(p.data());
  const facenet::io::pickle_tree t = facenet::io::unpickle({bytes, p.size()}, "shared.pkl");
  const facenet::io::detail::storage_resolver never = [](const facenet::io::pickle_tree&, std::size_t) -> facenet::io::detail::torch_storage {
    throw facenet::format_error("no storage expected");
  };
  const std::string msg = error_message<facenet::format_error>([&] { facenet::io::detail::state_dict_from(t, never, p.size()); });
  EXPECT_TRUE(contains(msg, "reach more values than it holds")) << msg;
}

namespace {

// Torch7 binary serialization pieces (File.lua writeObject).
struct t7_writer {
  std::string out;
  void i32(std::int32_t v) {
    for (int b = 0; b < 4; ++b) out += static_cast<char>((static_cast<std::uint32_t>(v) >> (8 * b)) & 0xff);
  }
  void number(double v) {
    i32(1);
    std::uint64_t bits;
    std::memcpy(&bits, &v, 8);
    for (int b = 0; b < 8; ++b) out += static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  void raw_string(const std::string& s) {
    i32(static_cast<std::int32_t>(s.size()));
    out += s;
  }
  void string(const std::string& s) {
    i32(2);
    raw_string(s);
  }
  void table(std::int32_t ref, std::int32_t n) {
    i32(3);
    i32(ref);
    i32(n);
  }
  void torch_object(std::int32_t ref, const std::string& cls) {
    i32(4);
    i32(ref);
    raw_string("V 1");
    raw_string(cls);
  }
  void back_reference(std::int32_t type, std::int32_t ref) {
    i32(type);
    i32(ref);
  }
};

}  // namespace

TEST(reader_limits, torch7_container_listing_itself_is_refused_not_walked_forever) {
  // root = nn.Sequential{modules = {root, root}}: a cycle with fan-out 2 (2^256 paths to the depth limit).
  t7_writer w;
  w.torch_object(1, "nn.Sequential");
  w.table(2, 1);
  w.string("modules");
  w.table(3, 2);
  for (int i = 1; i <= 2; ++i) {
    w.number(i);
    w.back_reference(4, 1);
  }
  const facenet::io::t7::file f(std::vector<std::uint8_t>(w.out.begin(), w.out.end()), "cycle.t7");
  const std::string msg = error_message<facenet::format_error>([&] { facenet::io::torch7_parameters(f); });
  EXPECT_TRUE(contains(msg, "shared or cyclic modules")) << msg;
}

namespace {

// Protobuf wire format pieces.
std::string pb_varint(std::uint64_t v) {
  std::string s;
  for (; v >= 0x80; v >>= 7) s += static_cast<char>((v & 0x7f) | 0x80);
  return s + static_cast<char>(v);
}
std::string length_delimited(int field, const std::string& payload) {
  return pb_varint(static_cast<std::uint64_t>(field) << 3 | 2) + pb_varint(payload.size()) + payload;
}
std::string varint_field(int field, std::uint64_t v) { return pb_varint(static_cast<std::uint64_t>(field) << 3) + pb_varint(v); }

// A Const node whose float tensor of `numel` elements is given by one broadcast float_val.
std::string broadcast_const(const std::string& name, std::int64_t numel) {
  const std::string shape = length_delimited(2, varint_field(1, static_cast<std::uint64_t>(numel)));
  const std::string half = std::string("\0\0\0\x3f", 4);  // 0.5f, packed float_val
  const std::string tensor = varint_field(1, 1) + length_delimited(2, shape) + length_delimited(5, half);
  const std::string attr = length_delimited(1, "value") + length_delimited(2, length_delimited(8, tensor));
  return length_delimited(1, length_delimited(1, name) + length_delimited(2, "Const") + length_delimited(5, attr));
}

}  // namespace

TEST(reader_limits, graphdef_broadcast_constants_share_one_expansion_budget) {
  // Each constant alone fits the 64 MiB allowance; together they must not (each would have before).
  const std::int64_t numel = std::int64_t{10} << 20;  // 40 MiB of float each
  const std::string one = broadcast_const("c0", numel);
  const std::string two = one + broadcast_const("c1", numel);
  const facenet::io::tensor_map m = facenet::io::parse_tf_graphdef(std::vector<std::uint8_t>(one.begin(), one.end()), "one.pb");
  EXPECT_EQ(m.at("c0").numel(), numel);
  EXPECT_EQ(m.at("c0").data()[numel - 1], 0.5f);
  const std::string msg = error_message<facenet::format_error>(
      [&] { facenet::io::parse_tf_graphdef(std::vector<std::uint8_t>(two.begin(), two.end()), "two.pb"); });
  EXPECT_TRUE(contains(msg, "'c1'") && contains(msg, "left for expanded constants")) << msg;
}

TEST(reader_limits, lfw_pair_counts_must_fit_an_int) {
  // 2^32 + 1 folds of 2^32 - 1 pairs: as ints, 1 fold of -1 pairs, which read nothing and "succeeded".
  for (const char* header : {"4294967297 4294967295\n", "2 4294967295\n", "4294967296\n"}) {
    std::istringstream in(header);
    const std::string msg = error_message<facenet::format_error>([&] { facenet::eval::parse_lfw_pairs(in, "pairs.txt"); });
    EXPECT_TRUE(contains(msg, "counts in [1, 2^31)")) << header << ": " << msg;
  }
}

TEST(reader_limits, jpeg_huffman_table_with_more_than_256_codes_is_refused_before_stb_reads_it) {
  // SOI, then a DHT whose 16 counts add up to 16 * 20 = 320 codes, after FF fill bytes as stb allows.
  std::string jpeg = "\xff\xff\xd8\xff\xc4";
  const std::size_t len = 2 + 17 + 320;
  jpeg += static_cast<char>(len >> 8);
  jpeg += static_cast<char>(len & 0xff);
  jpeg += '\0';  // class 0, id 0
  jpeg += std::string(16, '\x14');
  jpeg += std::string(320, '\x01');
  jpeg += "\xff\xd9";
  const auto* d = reinterpret_cast<const std::uint8_t*>(jpeg.data());
  EXPECT_NE(facenet::data::detail::jpeg_huffman_problem(d, jpeg.size()), nullptr);
  const std::string msg = error_message<facenet::format_error>([&] { facenet::data::decode_image(d, jpeg.size()); });
  EXPECT_TRUE(contains(msg, "Huffman table declares more than 256 codes")) << msg;
  jpeg[8] = 15;  // 315 codes: still too many
  EXPECT_NE(facenet::data::detail::jpeg_huffman_problem(d, jpeg.size()), nullptr);
}

// A DHT with 2 codes for table `class_id`, then an SOS of one component using DC table 0 and AC
// table 0, spectral selection ss..se, successive approximation ah/al (progressive if `sof` is C2).
std::string jpeg_scan(std::uint8_t sof, std::uint8_t class_id, std::uint8_t ss, std::uint8_t se, std::uint8_t ah) {
  std::string j = "\xff\xd8";
  j += std::string("\xff") + static_cast<char>(sof) + std::string("\x00\x0b\x08\x00\x08\x00\x08\x01\x01\x11\x00", 11);
  j += std::string("\xff\xc4\x00\x15", 4) + static_cast<char>(class_id) + std::string("\x01\x01", 2) + std::string(14, '\0') +
       std::string("\x00\x01", 2);
  j += std::string("\xff\xda\x00\x08\x01\x01\x00", 7) + static_cast<char>(ss) + static_cast<char>(se) +
       static_cast<char>(ah << 4);
  return j + std::string(8, '\x55') + "\xff\xd9";
}

TEST(reader_limits, jpeg_scan_with_a_huffman_table_never_defined_is_refused) {
  // stb_image 2.27 would decode with an uninitialised table (its decoder state is malloc'ed, not
  // cleared): an index of -5 into a 256-entry array in fuzz_image's find.
  const auto problem = [](const std::string& j) {
    return facenet::data::detail::jpeg_huffman_problem(reinterpret_cast<const std::uint8_t*>(j.data()), j.size());
  };
  EXPECT_NE(problem(jpeg_scan(0xC0, 0x00, 0, 63, 0)), nullptr);    // baseline: DC defined, AC not
  EXPECT_NE(problem(jpeg_scan(0xC0, 0x10, 0, 63, 0)), nullptr);    // baseline: AC defined, DC not
  EXPECT_NE(problem(jpeg_scan(0xC2, 0x00, 1, 5, 0)), nullptr);     // progressive AC scan without an AC table
  EXPECT_NE(problem(jpeg_scan(0xC2, 0x10, 0, 0, 0)), nullptr);     // progressive first DC scan without a DC table
  EXPECT_EQ(problem(jpeg_scan(0xC2, 0x00, 0, 0, 0)), nullptr);     // ... with one
  EXPECT_EQ(problem(jpeg_scan(0xC2, 0x10, 0, 0, 1)), nullptr);     // DC refinement decodes no Huffman codes
  EXPECT_EQ(problem(jpeg_scan(0xC2, 0x10, 1, 5, 0)), nullptr);     // AC scan with its AC table
  const std::string j = jpeg_scan(0xC2, 0x00, 1, 5, 0);
  const std::string msg =
      error_message<facenet::format_error>([&] { facenet::data::decode_image(reinterpret_cast<const std::uint8_t*>(j.data()), j.size()); });
  EXPECT_TRUE(contains(msg, "no DHT segment defined")) << msg;
}

TEST(reader_limits, pgm_header_numbers_must_fit_an_int) {
  // stb_image 2.27 would overflow an int reading this width (undefined behaviour).
  const std::string pgm = "P5 # comment\n99999999999 1\n255\n\x01";
  const auto* d = reinterpret_cast<const std::uint8_t*>(pgm.data());
  EXPECT_EQ(facenet::data::detail::pnm_max_value(d, pgm.size()), -1);
  const std::string msg = error_message<facenet::format_error>([&] { facenet::data::decode_image(d, pgm.size()); });
  EXPECT_TRUE(contains(msg, "PGM/PPM header")) << msg;
  const std::string ok = "P5 2147483647 1 255\n";
  EXPECT_EQ(facenet::data::detail::pnm_max_value(reinterpret_cast<const std::uint8_t*>(ok.data()), ok.size()), 255);
}

TEST(reader_limits, sixteen_bit_pgm_is_refused_as_unsupported) {
  // stb_image 2.27 reads 16-bit samples in host byte order (Netpbm's are big-endian), and asked for RGB
  // it converted them with its 8-bit routine and read past the result.
  const std::string pgm = std::string("P5 3 1 65535\n") + std::string("\xff\xff\x80\x00\x00\xff", 6);
  EXPECT_THROW(facenet::data::decode_image(reinterpret_cast<const std::uint8_t*>(pgm.data()), pgm.size()),
               facenet::unsupported_error);
}
