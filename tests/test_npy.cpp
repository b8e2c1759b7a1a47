// .npy / .npz readers against files written by numpy itself (tests/fixtures/io, made by
// make_torch_fixtures.py), plus hostile inputs.
#include <string>

#include "facenet/io/npy.hpp"
#include "fixtures/io_fixtures.hpp"

using namespace facenet;
using namespace facenet::io;
using facenet::testing::fixture_value;
using facenet::testing::io_fixture;
using facenet::testing::read_bytes;
using facenet::testing::scratch_file;

namespace {

// The fixtures' a = value(24).reshape(2, 3, 4), in C order.
void expect_fixture_array(const Tensor<float>& t, double scale = 1.0) {
  ASSERT_EQ(t.shape(), shape({2, 3, 4}));
  for (std::int64_t i = 0; i < 24; ++i) EXPECT_EQ(t.data()[i], static_cast<float>(fixture_value(i) * scale)) << i;
}

Tensor<float> only_tensor(const tensor_map& m) {
  EXPECT_EQ(m.size(), 1u);
  return m.entries().at(0).value;
}

}  // namespace

TEST(npy, reads_float32_c_order) {
  const tensor_map m = load_npy(io_fixture("f4.npy"));
  expect_fixture_array(only_tensor(m));
  EXPECT_EQ(m.entries()[0].source_dtype, "F32");
}

TEST(npy, reorders_fortran_float64) {
  const tensor_map m = load_npy(io_fixture("f8_fortran.npy"));
  expect_fixture_array(only_tensor(m));
  EXPECT_EQ(m.entries()[0].source_dtype, "F64");
}

TEST(npy, reads_float16_and_int64) {
  expect_fixture_array(only_tensor(load_npy(io_fixture("f2.npy"))));
  expect_fixture_array(only_tensor(load_npy(io_fixture("i8.npy"))), 8.0);
}

TEST(npy, reads_header_versions_2_and_3) {
  expect_fixture_array(only_tensor(load_npy(io_fixture("v2.npy"))));
  expect_fixture_array(only_tensor(load_npy(io_fixture("v3.npy"))));
}

TEST(npy, reads_zero_dimensional_array) {
  const Tensor<float> t = only_tensor(load_npy(io_fixture("scalar.npy")));
  EXPECT_EQ(t.rank(), 0);
  EXPECT_EQ(t.data()[0], 2.5f);
}

// Object arrays holding a pickled dict, as davidsandberg's det*.npy: protocol 2 (bytes via
// _codecs.encode, Fortran-ordered arrays inside) and numpy's own protocol 3.
TEST(npy, reads_pickled_dict_of_arrays) {
  for (const char* file : {"dict_p2.npy", "dict_p3.npy"}) {
    SCOPED_TRACE(file);
    const tensor_map m = load_npy(io_fixture(file));
    ASSERT_EQ(m.size(), 3u);
    expect_fixture_array(m.at("conv1/weights"));
    for (const char* name : {"conv1/biases", "PReLU1/alpha"}) {
      ASSERT_EQ(m.at(name).shape(), shape({3}));
      for (int i = 0; i < 3; ++i) EXPECT_EQ(m.at(name).data()[i], static_cast<float>(fixture_value(i)));
    }
  }
}

TEST(npy, reads_stored_and_deflated_npz) {
  for (const char* file : {"stored.npz", "deflate.npz"}) {
    SCOPED_TRACE(file);
    const tensor_map m = load_npz(io_fixture(file));
    ASSERT_EQ(m.size(), 2u);
    expect_fixture_array(m.at("a"));
    ASSERT_EQ(m.at("b").shape(), shape({5}));
    for (int i = 0; i < 5; ++i) EXPECT_EQ(m.at("b").data()[i], static_cast<float>(fixture_value(i)));
    EXPECT_EQ(m.entries()[1].source_dtype, "F64");
  }
}

TEST(npy, reads_zip64_archive) {
  // Every size and offset in ZIP64 form (as in archives over 4 GiB); Python's zipfile reads it too.
  const tensor_map m = load_npz(io_fixture("zip64.npz"));
  ASSERT_EQ(m.size(), 1u);
  expect_fixture_array(m.at("a"));
}

TEST(npy, davidsandberg_det1_when_shared_present) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/davidsandberg/det1.npy");
  const tensor_map m = load_npy((facenet::testing::shared_dir() / "weights/mtcnn/davidsandberg/det1.npy").string());
  EXPECT_EQ(m.size(), 13u);
  EXPECT_EQ(m.at("conv1/weights").shape(), shape({3, 3, 3, 10}));
  EXPECT_EQ(m.at("conv4-2/weights").shape(), shape({1, 1, 32, 4}));
  EXPECT_EQ(m.at("PReLU3/alpha").shape(), shape({32}));
}

// --- hostile input --------------------------------------------------------------------------------

TEST(npy_hostile, every_truncation_is_a_clean_error) {
  for (const char* file : {"f4.npy", "dict_p2.npy", "v3.npy"}) {
    const std::string bytes = read_bytes(io_fixture(file));
    for (std::size_t n = 0; n < bytes.size(); ++n) {
      const std::string cut = bytes.substr(0, n);
      EXPECT_THROW(parse_npy({reinterpret_cast<const std::uint8_t*>(cut.data()), cut.size()}, "cut"), facenet::error)
          << file << " cut at " << n;
    }
  }
}

TEST(npy_hostile, wrong_magic) {
  EXPECT_FACENET_ERROR(load_npy(scratch_file("bad_magic.npy", "\x93NUMPZ\x01\x00\x10\x00{}              ")), format_error, "bad magic");
}

std::string npy_with_header(const std::string& dict, const std::string& payload = "") {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(h.size() & 0xff);
  out += static_cast<char>(h.size() >> 8);
  return out + h + payload;
}

TEST(npy_hostile, huge_declared_shape_does_not_allocate) {
  const std::string f = scratch_file("huge.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000, 100000), }"));
  EXPECT_FACENET_ERROR(load_npy(f), format_error, "needs");
  const std::string g = scratch_file("overflow.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (281474976710656, 281474976710656), }"));
  EXPECT_THROW(load_npy(g), facenet::error);
}

TEST(npy_hostile, bad_headers) {
  EXPECT_FACENET_ERROR(load_npy(scratch_file("h1.npy", npy_with_header("{'descr': '<f4', 'shape': (2,), }", "12345678"))), format_error,
                       "must hold");
  EXPECT_FACENET_ERROR(load_npy(scratch_file("h2.npy", npy_with_header("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", "12345678"))),
                       unsupported_error, "big-endian");
  EXPECT_FACENET_ERROR(load_npy(scratch_file("h3.npy", npy_with_header("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", "12345678"))),
                       unsupported_error, "c8");
  EXPECT_FACENET_ERROR(load_npy(scratch_file("h4.npy", npy_with_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", "1234"))),
                       format_error, "structured");
  EXPECT_FACENET_ERROR(load_npy(scratch_file("h5.npy", npy_with_header("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", "1234"))),
                       format_error, "True or False");
  EXPECT_FACENET_ERROR(load_npy(scratch_file("h6.npy", npy_with_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "1234"))),
                       format_error, "needs 8 data bytes");
}

TEST(npy_hostile, object_array_naming_a_forbidden_global) {
  // A 0-d object array whose pickle calls os.system: must be refused by name, never run.
  const std::string pickle = std::string("\x80\x02") + "cos\nsystem\n" + "X\x04\x00\x00\x00" + "true" + "\x85R.";
  const std::string f = scratch_file("evil.npy", npy_with_header("{'descr': '|O', 'fortran_order': False, 'shape': (), }", pickle));
  EXPECT_FACENET_ERROR(load_npy(f), format_error, "'os.system' is not allowed");
}

TEST(npy_hostile, npz_member_that_is_not_npy) {
  // A stored zip with one member "x.txt" (hand-built, CRC of "hi" = 0xd8932aac).
  std::string z;
  auto le16 = [&](unsigned v) { z += static_cast<char>(v & 0xff); z += static_cast<char>(v >> 8); };
  auto le32 = [&](std::uint32_t v) { le16(v & 0xffff); le16(v >> 16); };
  le32(0x04034b50); le16(20); le16(0); le16(0); le16(0); le16(0); le32(0xd8932aac); le32(2); le32(2); le16(5); le16(0);
  z += "x.txt"; z += "hi";
  const std::uint32_t cd = static_cast<std::uint32_t>(z.size());
  le32(0x02014b50); le16(20); le16(20); le16(0); le16(0); le16(0); le16(0); le32(0xd8932aac); le32(2); le32(2);
  le16(5); le16(0); le16(0); le16(0); le16(0); le32(0); le32(0); z += "x.txt";
  const std::uint32_t cd_size = static_cast<std::uint32_t>(z.size()) - cd;
  le32(0x06054b50); le16(0); le16(0); le16(1); le16(1); le32(cd_size); le32(cd); le16(0);
  EXPECT_FACENET_ERROR(load_npz(scratch_file("text.npz", z)), format_error, "'x.txt' is not a .npy file");
  // A numpy-written archive with one payload byte flipped fails its CRC check.
  std::string npz = read_bytes(io_fixture("stored.npz"));
  npz[npz.find("\x93NUMPY") + 100] ^= 0x40;
  EXPECT_FACENET_ERROR(load_npz(scratch_file("crc.npz", npz)), format_error, "CRC-32");
}

TEST(npy_hostile, every_single_byte_corruption_is_caught_or_harmless) {
  // Any one flipped byte must end in a facenet error or a well-formed result, never a crash (run
  // under ASan/UBSan to make "never" mean something).
  for (const char* file : {"dict_p2.npy", "deflate.npz", "zip64.npz", "f8_fortran.npy"}) {
    const std::string bytes = read_bytes(io_fixture(file));
    const bool npz = std::string(file).find(".npz") != std::string::npos;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      std::string b = bytes;
      b[i] = static_cast<char>(b[i] ^ 0x21);
      const byte_span span{reinterpret_cast<const std::uint8_t*>(b.data()), b.size()};
      try {
        if (npz) parse_npz(span, "flip");
        else parse_npy(span, "flip");
      } catch (const facenet::error&) {
      }
    }
  }
}
