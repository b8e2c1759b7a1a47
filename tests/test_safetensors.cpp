// safetensors reader/writer and the strict JSON parser under it: a file written by an independent
// (Python) writer, bit-exact round trips, F16/BF16 conversion, and hostile headers.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "facenet/io/json.hpp"
#include "facenet/io/safetensors.hpp"
#include "fixtures/io_fixtures.hpp"

using namespace facenet;
using namespace facenet::io;
using facenet::testing::fixture_value;
using facenet::testing::io_fixture;
using facenet::testing::scratch_file;

namespace {


tensor_map parse_bytes(const std::string& s) {
  return parse_safetensors({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()}, "test.safetensors");
}

// A file image with the given JSON header and `data_bytes` zero bytes of data.
std::string image(const std::string& header, std::size_t data_bytes) {
  std::string out;
  store_le(out, static_cast<std::uint64_t>(header.size()));
  return out + header + std::string(data_bytes, '\0');
}

}  // namespace

// --- JSON -----------------------------------------------------------------------------------------

TEST(json, parses_documents_exactly) {
  const json_value v = parse_json(R"( {"a": [1, -2, 3.5, 1e3, true, false, null], "b": {"c": "x\"\\\/\n\u00e9\ud83d\ude00"},
                                      "big": 9007199254740993, "neg": -9223372036854775808} )");
  const auto& a = v.find("a")->as_array("a");
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a[0].as_int("a0"), 1);
  EXPECT_EQ(a[1].as_int("a1"), -2);
  EXPECT_EQ(a[2].as_number("a2"), 3.5);
  EXPECT_EQ(a[3].as_number("a3"), 1000.0);
  EXPECT_TRUE(a[4].as_bool("a4"));
  EXPECT_TRUE(a[6].is_null());
  EXPECT_EQ(v.find("b")->find("c")->as_string("c"), "x\"\\/\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(v.find("big")->as_int("big"), 9007199254740993);  // not rounded through a double
  EXPECT_EQ(v.find("neg")->as_int("neg"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(to_json(parse_json(to_json(v))), to_json(v));
}

TEST(json, rejects_garbage) {
  for (const char* bad : {"", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "[01]", "[1.]", "[.5]", "[1e]", "[+1]", "tru", "nul",
                          "\"abc", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "\"a\tb\"", "[1] 2", "{\"a\" 1}", "{\"a\":1 \"b\":2}",
                          "{\"a\":1,\"a\":2}", "[9223372036854775808]", "[1e999]", "/*c*/1", "\"\xc3\"", "\"\xed\xa0\x80\"", "NaN"}) {
    EXPECT_THROW(parse_json(bad), format_error) << bad;
  }
}

TEST(json, bounds_nesting_depth) {
  EXPECT_NO_THROW(parse_json(std::string(60, '[') + std::string(60, ']')));
  EXPECT_FACENET_ERROR(parse_json(std::string(100000, '[') + std::string(100000, ']')), format_error, "nesting deeper");
}

// --- half / bfloat16 -------------------------------------------------------------------------------

TEST(half, every_half_round_trips_through_float) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(half_to_float(float_to_half(f)))) << h;
      continue;
    }
    EXPECT_EQ(float_to_half(f), h) << h;
  }
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
}

TEST(half, rounds_to_nearest_even) {
  // Between consecutive halves a < b, the midpoint rounds to the even one; anything else to the nearer.
  for (std::uint32_t h = 0; h < 0x7bff; h += 37) {
    const float a = half_to_float(static_cast<std::uint16_t>(h)), b = half_to_float(static_cast<std::uint16_t>(h + 1));
    const float mid = (a + b) / 2;  // exact in float
    EXPECT_EQ(float_to_half(mid), (h % 2 == 0) ? h : h + 1) << h;
    EXPECT_EQ(float_to_half(std::nextafter(mid, a)), h) << h;
    EXPECT_EQ(float_to_half(std::nextafter(mid, b)), h + 1) << h;
    EXPECT_EQ(float_to_half(-mid), ((h % 2 == 0) ? h : h + 1) | 0x8000u) << h;
  }
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // overflows to infinity, as IEEE rounding requires
  EXPECT_EQ(float_to_half(65519.99f), 0x7bff);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0x0000);  // exactly half the smallest subnormal: to even (0)
  EXPECT_EQ(float_to_half(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
}

TEST(bfloat16, rounds_to_nearest_even) {
  EXPECT_EQ(float_to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(float_to_bfloat16(bits_to_float(0x3f808000u)), 0x3f80);  // tie -> even
  EXPECT_EQ(float_to_bfloat16(bits_to_float(0x3f818000u)), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(float_to_bfloat16(bits_to_float(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(bfloat16_to_float(float_to_bfloat16(std::numeric_limits<float>::quiet_NaN()))));
}

// --- safetensors -----------------------------------------------------------------------------------

TEST(safetensors, reads_file_from_independent_writer) {
  const tensor_map m = load_safetensors(io_fixture("sample.safetensors"));
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m.metadata.at("architecture"), "test");
  EXPECT_EQ(m.metadata.at("source"), "make_torch_fixtures.py");
  ASSERT_EQ(m.at("a").shape(), shape({2, 3, 4}));
  for (int i = 0; i < 24; ++i) EXPECT_EQ(m.at("a").data()[i], static_cast<float>(fixture_value(i)));
  for (const char* name : {"h", "bf"})
    for (int i = 0; i < 7; ++i) EXPECT_EQ(m.at(name).data()[i], static_cast<float>(fixture_value(i))) << name;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(m.at("d").data()[i], static_cast<float>(fixture_value(i)));
  EXPECT_EQ(m.entries()[0].source_dtype, "F32");
  EXPECT_EQ(m.entries()[1].source_dtype, "F16");
  EXPECT_EQ(m.entries()[2].source_dtype, "BF16");
  EXPECT_EQ(m.entries()[3].source_dtype, "F64");
}

TEST(safetensors, save_load_round_trips_bit_exactly) {
  tensor_map m;
  m.add("conv.weight", facenet::testing::random_tensor<float>({5, 3, 3, 3}, 1, -10, 10));
  Tensor<float> special({7});
  const float values[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(), 1e-30f};
  std::memcpy(special.data(), values, sizeof values);
  m.add("special", special);
  m.add("scalar", Tensor<float>::full(shape(), 3.25f));
  m.add("empty", Tensor<float>({0, 4}));
  m.metadata = {{"architecture", "inception_resnet_v1"}, {"note", "quote \" and \\ and \n"}};
  const std::string path = scratch_file("round_trip.safetensors", "");
  save_safetensors(path, m);
  const tensor_map r = load_safetensors(path);
  ASSERT_EQ(r.size(), m.size());
  EXPECT_EQ(r.metadata, m.metadata);
  for (std::size_t k = 0; k < m.size(); ++k) {
    const auto& a = m.entries()[k];
    const auto& b = r.entries()[k];
    EXPECT_EQ(a.name, b.name);
    ASSERT_EQ(a.value.shape(), b.value.shape()) << a.name;
    for (std::int64_t i = 0; i < a.value.numel(); ++i) EXPECT_EQ(float_to_bits(a.value.data()[i]), float_to_bits(b.value.data()[i])) << a.name << i;
  }
  // Saving what was loaded reproduces the file byte for byte.
  EXPECT_EQ(serialize_safetensors(r), facenet::testing::read_bytes(path));
}

TEST(safetensors, saves_strided_views_by_value) {
  Tensor<float> base = facenet::testing::random_tensor<float>({4, 6}, 2);
  tensor_map m;
  m.add("slice", base.slice(1, 2, 3));  // not contiguous
  const tensor_map r = parse_bytes(serialize_safetensors(m));
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(r.at("slice")(i, j), base(i, j + 2));
}

TEST(safetensors, saves_f16_and_bf16) {
  tensor_map m;
  m.add("x", facenet::testing::random_tensor<float>({3, 5}, 3, -100, 100));
  for (const char* dtype : {"F16", "BF16"}) {
    const tensor_map r = parse_bytes(serialize_safetensors(m, dtype));
    EXPECT_EQ(r.entries()[0].source_dtype, dtype);
    for (int i = 0; i < 15; ++i) {
      const float v = m.at("x").data()[i];
      const float expect = std::string(dtype) == "F16" ? half_to_float(float_to_half(v)) : bfloat16_to_float(float_to_bfloat16(v));
      EXPECT_EQ(r.at("x").data()[i], expect);
    }
  }
  EXPECT_FACENET_ERROR(serialize_safetensors(m, "F64"), unsupported_error, "F64");
}

// --- hostile input ---------------------------------------------------------------------------------

TEST(safetensors_hostile, every_truncation_is_a_clean_error) {
  const std::string bytes = facenet::testing::read_bytes(io_fixture("sample.safetensors"));
  for (std::size_t n = 0; n < bytes.size(); ++n) EXPECT_THROW(parse_bytes(bytes.substr(0, n)), facenet::error) << n;
}

TEST(safetensors_hostile, huge_header_length) {
  std::string s;
  store_le(s, std::uint64_t(1) << 62);
  s += "{}";
  EXPECT_FACENET_ERROR(parse_bytes(s), format_error, "header length");
}

TEST(safetensors_hostile, offsets_and_sizes_are_checked) {
  const std::string t = R"("dtype":"F32","shape":[2])";
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{)" + t + R"(,"data_offsets":[0,8]}})", 4)), format_error, "cover 8 data bytes");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{)" + t + R"(,"data_offsets":[0,12]}})", 12)), format_error, "needs 8");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{)" + t + R"(,"data_offsets":[8,0]}})", 8)), format_error, "bad data_offsets");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{)" + t + R"(,"data_offsets":[0,8]},"b":{)" + t + R"(,"data_offsets":[4,12]}})", 12)),
                       format_error, "overlaps");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{)" + t + R"(,"data_offsets":[4,12]}})", 12)), format_error, "gap");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
                       format_error, "overflows");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8)), format_error, "negative");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8)), unsupported_error, "C64");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{"dtype":"F32","shape":[2]}})", 8)), format_error, "data_offsets");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{"dtype":"F32","shape":[1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4)),
                       unsupported_error, "rank 7");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"__metadata__":{"k":1}})", 0)), format_error, "__metadata__ value 'k'");
  EXPECT_FACENET_ERROR(parse_bytes(image(R"({"a":{)" + t + R"(,"data_offsets":[0,8]},"a":{)" + t + R"(,"data_offsets":[8,16]}})", 16)),
                       format_error, "duplicate key");
  EXPECT_FACENET_ERROR(parse_bytes(image("[1,2]", 0)), format_error, "expected a JSON object");
  EXPECT_FACENET_ERROR(parse_bytes(image("{\"a\":", 0)), format_error, "invalid JSON");
}

TEST(safetensors_hostile, missing_file_is_an_io_error) {
  EXPECT_FACENET_ERROR(load_safetensors("/nonexistent/dir/x.safetensors"), io_error, "cannot open");
}

TEST(safetensors_hostile, every_single_byte_corruption_is_caught_or_harmless) {
  const std::string bytes = facenet::testing::read_bytes(io_fixture("sample.safetensors"));
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (const char mask : {'\x01', '\x80'}) {
      std::string b = bytes;
      b[i] = static_cast<char>(b[i] ^ mask);
      try {
        parse_bytes(b);
      } catch (const facenet::error&) {
      }
    }
  }
}
