// torch.save readers against files written by PyTorch itself: a small committed state_dict in both
// formats (views with offsets and strides, several dtypes, parameters, nesting), and at test time a
// full InceptionResnetV1 state_dict (random weights, both formats) checked bit-exactly against a
// numpy dump of the same tensors, plus the name/shape table against the Python module.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "facenet/io/arch_names.hpp"
#include "facenet/io/convert.hpp"
#include "facenet/io/npy.hpp"
#include "facenet/io/torch_file.hpp"
#include "fixtures/io_fixtures.hpp"

using namespace facenet;
using namespace facenet::io;
using facenet::testing::fixture_value;
using facenet::testing::io_fixture;
using facenet::testing::read_bytes;
using facenet::testing::scratch_file;

namespace {


void expect_values(const Tensor<float>& t, const shape& s, std::int64_t first) {
  ASSERT_EQ(t.shape(), s);
  for (std::int64_t i = 0; i < t.numel(); ++i) EXPECT_EQ(t.data()[i], static_cast<float>(fixture_value(first + i))) << i;
}

// The committed fixture's state_dict (see make_torch_fixtures.py small()).
void expect_small_state_dict(const tensor_map& m) {
  ASSERT_EQ(m.size(), 9u);  // 'epoch' (an int) carries no weights
  expect_values(m.at("conv.weight"), {2, 3, 2, 2}, 0);
  const Tensor<float>& s = m.at("strided");  // base[:24].view(4, 6).t()
  ASSERT_EQ(s.shape(), shape({6, 4}));
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 4; ++j) EXPECT_EQ(s(i, j), static_cast<float>(fixture_value(j * 6 + i)));
  expect_values(m.at("offset"), {3, 4}, 30);
  expect_values(m.at("f64"), {5}, 0);
  expect_values(m.at("f16"), {7}, 0);
  expect_values(m.at("bf16"), {7}, 0);
  expect_values(m.at("param"), {4}, 0);
  expect_values(m.at("nested.inner"), {3}, 0);
  EXPECT_EQ(m.at("bn.num_batches_tracked").rank(), 0);
  EXPECT_EQ(m.at("bn.num_batches_tracked").data()[0], 12345.0f);
  std::map<std::string, std::string> dtypes;
  for (const auto& e : m.entries()) dtypes[e.name] = e.source_dtype;
  EXPECT_EQ(dtypes["f64"], "F64");
  EXPECT_EQ(dtypes["f16"], "F16");
  EXPECT_EQ(dtypes["bf16"], "BF16");
  EXPECT_EQ(dtypes["bn.num_batches_tracked"], "I64");
  EXPECT_EQ(dtypes["strided"], "F32");
}

}  // namespace

TEST(torch_file, reads_zip_format) { expect_small_state_dict(load_torch(io_fixture("state_zip.pt"))); }

TEST(torch_file, reads_legacy_format) { expect_small_state_dict(load_torch(io_fixture("state_legacy.pt"))); }

TEST(torch_file, zip_prefix_may_be_any_name) {
  // torch.save names the top folder after the file; the reader must not assume "archive/".
  const tensor_map m = load_torch(io_fixture("state_zip.pt"));
  EXPECT_NE(read_bytes(io_fixture("state_zip.pt")).find("state_zip/data.pkl"), std::string::npos);
  EXPECT_EQ(m.size(), 9u);
}

TEST(torch_file, mtcnn_strided_views_when_shared_present) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/pnet.pt");
  const tensor_map m = load_torch((facenet::testing::shared_dir() / "weights/mtcnn/facenet-pytorch/pnet.pt").string());
  EXPECT_EQ(m.size(), 13u);
  EXPECT_EQ(m.at("conv1.weight").shape(), shape({10, 3, 3, 3}));
}

// --- hostile input ---------------------------------------------------------------------------------

TEST(torch_file_hostile, every_truncation_is_a_clean_error) {
  for (const char* file : {"state_legacy.pt", "state_zip.pt"}) {
    const std::string bytes = read_bytes(io_fixture(file));
    for (std::size_t n = 0; n < bytes.size(); n += (n < 64 || bytes.size() - n < 64) ? 1 : 7) {
      const std::string cut = bytes.substr(0, n);
      const byte_span span{reinterpret_cast<const std::uint8_t*>(cut.data()), cut.size()};
      EXPECT_THROW(is_zip(span) ? parse_torch_zip(span, "cut") : parse_torch_legacy(span, "cut"), facenet::error) << file << " " << n;
    }
  }
}

TEST(torch_file_hostile, every_single_byte_corruption_is_caught_or_harmless) {
  // Flipping any one byte must give a facenet error or a well-formed result, never a crash.
  for (const char* file : {"state_legacy.pt", "state_zip.pt"}) {
    const std::string bytes = read_bytes(io_fixture(file));
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      std::string b = bytes;
      b[i] = static_cast<char>(b[i] ^ 0x5a);
      const byte_span span{reinterpret_cast<const std::uint8_t*>(b.data()), b.size()};
      try {
        if (is_zip(span)) parse_torch_zip(span, "flip");
        else parse_torch_legacy(span, "flip");
      } catch (const facenet::error&) {
      }
    }
  }
}

TEST(torch_file_hostile, wrong_magic_and_protocol) {
  std::string b = read_bytes(io_fixture("state_legacy.pt"));
  b[5] ^= 1;
  EXPECT_FACENET_ERROR(load_torch(scratch_file("magic.pt", b)), format_error, "bad magic number");
  EXPECT_FACENET_ERROR(load_torch(scratch_file("text.pt", "hello world, not a checkpoint")), format_error, "bad magic number");
  std::string p = read_bytes(io_fixture("state_legacy.pt"));
  const std::size_t proto = p.find("\x4d\xe9\x03");  // BININT2 1001
  ASSERT_NE(proto, std::string::npos);
  p[proto + 1] = '\xea';
  EXPECT_FACENET_ERROR(load_torch(scratch_file("proto.pt", p)), unsupported_error, "legacy protocol 1002");
}

TEST(torch_file_hostile, storage_too_small_for_the_view) {
  // Grow the declared storage offset of 'offset' (30) past the storage: BININT1 30 -> 250.
  std::string b = read_bytes(io_fixture("state_legacy.pt"));
  const std::size_t at = b.find("offset");
  ASSERT_NE(at, std::string::npos);
  const std::size_t k = b.find("K\x1e", at);
  ASSERT_NE(k, std::string::npos);
  b[k + 1] = static_cast<char>(250);
  EXPECT_FACENET_ERROR(load_torch(scratch_file("view.pt", b)), format_error, "but the storage holds 60");
}

TEST(torch_file_hostile, huge_storage_count) {
  // The legacy storage record's element count is trusted nowhere: set it to 2^60.
  std::string b = read_bytes(io_fixture("state_legacy.pt"));
  const std::size_t count = b.find(std::string("\x3c\x00\x00\x00\x00\x00\x00\x00", 8));  // 60 elements of the shared base
  ASSERT_NE(count, std::string::npos);
  b[count + 7] = 0x10;
  EXPECT_FACENET_ERROR(load_torch(scratch_file("huge.pt", b)), format_error, "truncated");
}

TEST(torch_file_hostile, forbidden_global_in_data_pkl) {
  std::string b = read_bytes(io_fixture("state_legacy.pt"));
  const std::size_t at = b.find("collections\nOrderedDict\n");
  ASSERT_NE(at, std::string::npos);
  b.replace(at, 24, std::string("collections\nOrderedDicX\n"));
  EXPECT_FACENET_ERROR(load_torch(scratch_file("global.pt", b)), format_error, "'collections.OrderedDicX' is not allowed");
}

// --- full-size parity with PyTorch ------------------------------------------------------------------

class irv1_parity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
#ifdef FACENET_BINARY_DIR
    dir_ = std::string(FACENET_BINARY_DIR) + "/io_irv1";
#else
    dir_ = "io_irv1";
#endif
    if (!facenet::testing::have_python_torch()) return;
    {
      // Serialised with flock: parallel ctest processes would otherwise write the same files at once
      // (or read them half-written); inside the lock, an existing dump means the generator finished.
      const std::string cmd = "flock " + dir_ + ".lock sh -c 'test -f " + dir_ + "/irv1_expected.npz || /usr/bin/python3 " +
                              (facenet::testing::source_dir() / "tests/fixtures/make_torch_fixtures.py").string() +
                              " irv1 " + dir_ + "'";
      if (std::system(cmd.c_str()) != 0) return;
    }
    ready_ = true;
  }
  void SetUp() override {
    if (!ready_) GTEST_SKIP() << "SKIPPED: /usr/bin/python3 with torch and numpy is needed to generate the InceptionResnetV1 state_dicts";
  }
  // The numpy dump, loaded once for the suite (each full load is ~94 MB).
  static const tensor_map& expected() {
    static const tensor_map m = load_npz(dir_ + "/irv1_expected.npz");
    return m;
  }
  static std::string dir_;
  static bool ready_;
};
std::string irv1_parity::dir_;
bool irv1_parity::ready_ = false;

TEST_F(irv1_parity, both_formats_match_numpy_bit_exactly) {
  const tensor_map& expected = irv1_parity::expected();
  // 716 state_dict entries: 112 BatchNorms' integer num_batches_tracked are not in the float dump.
  ASSERT_EQ(expected.size(), 716u - 112);
  for (const char* file : {"irv1_zip.pt", "irv1_legacy.pt"}) {
    SCOPED_TRACE(file);
    const tensor_map m = load_torch(dir_ + "/" + file);
    ASSERT_EQ(m.size(), expected.size() + 112);
    for (const auto& e : expected.entries()) {
      const Tensor<float>& got = m.at(e.name);
      ASSERT_EQ(got.shape(), e.value.shape()) << e.name;
      std::int64_t differing = 0;
      for (std::int64_t i = 0; i < got.numel(); ++i) differing += float_to_bits(got.data()[i]) != float_to_bits(e.value.data()[i]);
      EXPECT_EQ(differing, 0) << e.name;
    }
  }
}

TEST_F(irv1_parity, name_table_matches_the_python_module) {
  std::ifstream in(dir_ + "/irv1_names.txt");
  const architecture a = inception_resnet_v1(10);
  std::string line;
  std::size_t k = 0;
  std::int64_t python_params = -1;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string name;
    ls >> name;
    if (name == "#parameters_without_logits") {
      ls >> python_params;
      continue;
    }
    shape s;
    for (std::int64_t d; ls >> d;) s.push_back(d);
    ASSERT_LT(k, a.tensors.size());
    EXPECT_EQ(a.tensors[k].name, name);
    EXPECT_EQ(a.tensors[k].dims, s) << name;
    ++k;
  }
  EXPECT_EQ(k, a.tensors.size());
  EXPECT_EQ(python_params, 23482624);
  EXPECT_EQ(inception_resnet_v1().parameter_count(), 23482624);
}

TEST_F(irv1_parity, converts_to_safetensors_with_every_tensor) {
  const std::string out = dir_ + "/irv1.safetensors";
  convert_options opt;
  opt.arch = "inception_resnet_v1";  // the embedding network only: the classifier head is reported unused
  conversion_report report = convert_weights(dir_ + "/irv1_legacy.pt", out, opt);
  EXPECT_EQ(report.arch, "inception_resnet_v1");
  EXPECT_TRUE(report.missing.empty());
  EXPECT_EQ(report.unused, std::vector<std::string>({"logits.weight", "logits.bias"}));
  EXPECT_EQ(report.ignored.size(), 112u);
  const tensor_map st = load_safetensors(out);
  EXPECT_EQ(st.size(), 716u - 112 - 2);
  for (const auto& e : st.entries()) {
    const Tensor<float>& want = expected().at(e.name);
    ASSERT_EQ(e.value.shape(), want.shape()) << e.name;
    EXPECT_EQ(std::memcmp(e.value.data(), want.data(), static_cast<std::size_t>(want.numel()) * sizeof(float)), 0) << e.name;
  }
  EXPECT_EQ(st.metadata.at("architecture"), "inception_resnet_v1");
  EXPECT_EQ(st.metadata.at("bn_eps"), "0.001");
  EXPECT_EQ(st.metadata.at("embedding_size"), "512");
  EXPECT_EQ(st.metadata.at("standardization"), "fixed");
  EXPECT_NE(st.metadata.at("source").find("irv1_legacy.pt"), std::string::npos);
  // Auto-detection sees the logits head and keeps it.
  conversion_report auto_report;
  const tensor_map with_head = prepare_conversion(dir_ + "/irv1_zip.pt", {}, auto_report);
  EXPECT_TRUE(auto_report.ok() && auto_report.unused.empty());
  EXPECT_EQ(auto_report.converted.size(), 716u - 112);
  EXPECT_EQ(with_head.metadata.at("num_classes"), "10");
}
