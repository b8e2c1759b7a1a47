// Conversion driver: the two published MTCNN weight sets (facenet-pytorch .pt, davidsandberg .npy in
// TF layout) must convert to bit-identical tensors under facenet-pytorch names; format detection by
// magic bytes; precise reports for missing, mis-shaped and unused tensors.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include "facenet/io/convert.hpp"
#include "fixtures/io_fixtures.hpp"

using namespace facenet;
using namespace facenet::io;
using facenet::testing::io_fixture;
using facenet::testing::scratch_file;

namespace {

std::string shared(const std::string& rel) { return (facenet::testing::shared_dir() / rel).string(); }

struct mtcnn_pair {
  const char* pt;
  const char* npy;
  const char* arch;
  std::int64_t params;
};
const mtcnn_pair pairs[] = {{"pnet.pt", "det1.npy", "mtcnn_pnet", 6632},
                            {"rnet.pt", "det2.npy", "mtcnn_rnet", 100178},
                            {"onet.pt", "det3.npy", "mtcnn_onet", 389040}};

std::int64_t value_count(const tensor_map& m) {
  std::int64_t n = 0;
  for (const auto& e : m.entries()) n += e.value.numel();
  return n;
}

}  // namespace

TEST(convert_mtcnn, both_published_sources_give_bit_identical_tensors) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/pnet.pt");
  FACENET_REQUIRE_SHARED("weights/mtcnn/davidsandberg/det1.npy");
  for (const auto& p : pairs) {
    SCOPED_TRACE(p.arch);
    conversion_report rp, rn;
    const tensor_map from_pt = prepare_conversion(shared(std::string("weights/mtcnn/facenet-pytorch/") + p.pt), {}, rp);
    const tensor_map from_npy = prepare_conversion(shared(std::string("weights/mtcnn/davidsandberg/") + p.npy), {}, rn);
    EXPECT_EQ(rp.arch, p.arch);
    EXPECT_EQ(rn.arch, p.arch);
    EXPECT_TRUE(rp.ok() && rp.unused.empty()) << format_report(rp);
    EXPECT_TRUE(rn.ok() && rn.unused.empty()) << format_report(rn);
    EXPECT_EQ(value_count(from_pt), p.params);
    EXPECT_EQ(find_architecture(p.arch).parameter_count(), p.params);
    ASSERT_EQ(from_pt.size(), from_npy.size());
    for (std::size_t k = 0; k < from_pt.size(); ++k) {
      const auto& a = from_pt.entries()[k];
      const auto& b = from_npy.entries()[k];
      ASSERT_EQ(a.name, b.name);
      ASSERT_EQ(a.value.shape(), b.value.shape()) << a.name;
      EXPECT_EQ(std::memcmp(a.value.data(), b.value.data(), static_cast<std::size_t>(a.value.numel()) * sizeof(float)), 0) << a.name;
    }
  }
}

TEST(convert_mtcnn, writes_safetensors_with_metadata) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/davidsandberg/det3.npy");
  const std::string out = scratch_file("onet.safetensors", "");
  const conversion_report r = convert_weights(shared("weights/mtcnn/davidsandberg/det3.npy"), out);
  EXPECT_EQ(r.converted.size(), 21u);
  const tensor_map m = load_safetensors(out);
  EXPECT_EQ(value_count(m), 389040);
  EXPECT_EQ(m.metadata.at("architecture"), "mtcnn_onet");
  EXPECT_EQ(m.metadata.at("input_size"), "48");
  EXPECT_EQ(m.metadata.at("standardization"), "mtcnn");
  EXPECT_NE(m.metadata.at("source").find("det3.npy"), std::string::npos);
  EXPECT_EQ(m.at("dense5.weight").shape(), shape({256, 1152}));
  const std::string report = format_report(r);
  EXPECT_NE(report.find("21 tensors converted (389040 values)"), std::string::npos) << report;
  EXPECT_NE(report.find("0 missing"), std::string::npos);
}

TEST(convert_mtcnn, detects_formats_by_magic_bytes) {
  auto detect = [](const std::string& path) {
    const mapped_file f(path);
    return detect_weight_format(f.bytes(), path);
  };
  EXPECT_EQ(detect(io_fixture("state_zip.pt")), weight_format::pytorch);
  EXPECT_EQ(detect(io_fixture("state_legacy.pt")), weight_format::pytorch);
  EXPECT_EQ(detect(io_fixture("f4.npy")), weight_format::npy);
  EXPECT_EQ(detect(io_fixture("stored.npz")), weight_format::npz);
  EXPECT_EQ(detect(io_fixture("sample.safetensors")), weight_format::safetensors);
  // The extension means nothing: a .npy renamed to .pt is still a .npy.
  const std::string renamed = scratch_file("really_npy.pt", facenet::testing::read_bytes(io_fixture("f4.npy")));
  EXPECT_EQ(detect(renamed), weight_format::npy);
  EXPECT_FACENET_ERROR(detect(scratch_file("junk.bin", "junk junk junk")), format_error, "unrecognised weights format");
  EXPECT_FACENET_ERROR(detect(scratch_file("empty.bin", "")), format_error, "unrecognised");
  EXPECT_FACENET_ERROR(detect(scratch_file("keras.h5", "\x89HDF\r\n\x1a\n....")), unsupported_error, "HDF5");
  // TF checkpoints by prefix, index or shard; frozen graphs; Torch7 (fixtures from the TF/Torch7 readers' generators).
  const std::string tf = (facenet::testing::source_dir() / "tests/fixtures/tf").string();
  EXPECT_EQ(detect_weight_format(tf + "/irv1_small"), weight_format::tf_checkpoint);
  EXPECT_EQ(detect_weight_format(tf + "/irv1_small.index"), weight_format::tf_checkpoint);
  EXPECT_EQ(detect_weight_format(tf + "/irv1_small.data-00000-of-00001"), weight_format::tf_checkpoint);
  EXPECT_EQ(detect_weight_format(tf + "/irv1_small_frozen.pb"), weight_format::tf_frozen);
  EXPECT_EQ(detect_weight_format((facenet::testing::source_dir() / "tests/fixtures/t7/generic.t7").string()), weight_format::torch7);
  EXPECT_EQ(detect_weight_format(tf), weight_format::openface_csv);  // any directory
  EXPECT_EQ(parse_weight_format("npz"), weight_format::npz);
  EXPECT_EQ(parse_weight_format("tf-checkpoint"), weight_format::tf_checkpoint);
  EXPECT_FACENET_ERROR(parse_weight_format("onnx"), argument_error, "unknown format 'onnx'");
}

TEST(convert_mtcnn, reports_missing_mis_shaped_and_unused_names) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/pnet.pt");
  const tensor_map pnet = load_torch(shared("weights/mtcnn/facenet-pytorch/pnet.pt"));
  tensor_map broken;
  for (const auto& e : pnet.entries()) {
    if (e.name == "conv2.bias") continue;                                           // missing
    if (e.name == "prelu1.weight") broken.add(e.name, e.value.reshape({2, 5}));   // mis-shaped
    else broken.add(e.name, e.value);
  }
  broken.add("extra.weight", Tensor<float>({3}));  // unused
  conversion_report r;
  map_to_architecture(broken, mtcnn_pnet(), r);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.missing, std::vector<std::string>({"conv2.bias"}));
  EXPECT_EQ(r.mismatched, std::vector<std::string>({"prelu1.weight: expected [10], found [2, 5]"}));
  EXPECT_EQ(r.unused, std::vector<std::string>({"extra.weight"}));
  EXPECT_EQ(r.problems(), "1 missing: conv2.bias; 1 mis-shaped: prelu1.weight: expected [10], found [2, 5]");

  // convert_weights refuses such a source and writes nothing.
  const std::string src = scratch_file("broken_pnet.safetensors", serialize_safetensors(broken));
  const std::string dst = scratch_file("broken_out.safetensors", "");
  std::filesystem::remove(dst);
  convert_options opt;
  opt.arch = "mtcnn_pnet";
  EXPECT_FACENET_ERROR(convert_weights(src, dst, opt), format_error, "does not fit mtcnn_pnet: 1 missing: conv2.bias");
  EXPECT_FALSE(std::filesystem::exists(dst));
  // The wrong architecture names every tensor it lacks.
  opt.arch = "mtcnn_rnet";
  EXPECT_FACENET_ERROR(convert_weights(src, dst, opt), format_error, "dense4.weight");
  opt.arch = "resnet50";
  EXPECT_FACENET_ERROR(convert_weights(src, dst, opt), argument_error, "unknown architecture 'resnet50'");
}

TEST(convert_mtcnn, strict_mode_rejects_unused_tensors) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/pnet.pt");
  tensor_map m = load_torch(shared("weights/mtcnn/facenet-pytorch/pnet.pt"));
  m.add("extra", Tensor<float>({1}));
  const std::string src = scratch_file("pnet_extra.safetensors", serialize_safetensors(m));
  convert_options opt;
  opt.allow_unused = false;
  EXPECT_FACENET_ERROR(convert_weights(src, scratch_file("x.safetensors", ""), opt), format_error, "1 tensors not used by mtcnn_pnet");
}

TEST(convert_mtcnn, unexpected_tf_names_are_errors) {
  tensor_map tf;
  tf.add("conv1/weights", Tensor<float>({3, 3, 3, 10}));
  tf.add("conv1/gamma", Tensor<float>({10}));
  EXPECT_FACENET_ERROR(adapt_mtcnn_tf(tf), format_error, "unexpected tensor 'conv1/gamma'");
  tensor_map bad_rank;
  bad_rank.add("conv1/weights", Tensor<float>({3, 3, 3}));
  bad_rank.add("conv1/biases", Tensor<float>({3}));
  EXPECT_FACENET_ERROR(adapt_mtcnn_tf(bad_rank), format_error, "rank-3 weights");
}

TEST(convert_mtcnn, permute_matches_index_arithmetic) {
  const Tensor<float> t = facenet::testing::random_tensor<float>({2, 3, 4, 5}, 9);
  const Tensor<float> p = permute(t, {3, 2, 1, 0});
  ASSERT_EQ(p.shape(), shape({5, 4, 3, 2}));
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c)
        for (int d = 0; d < 5; ++d) EXPECT_EQ(p(d, c, b, a), t(a, b, c, d));
}

TEST(convert_openface, partial_csv_directory_names_exactly_the_five_missing_tensors) {
  FACENET_REQUIRE_SHARED("weights/openface-nn4.small2.v1-csv-partial");
  const std::string dir = shared("weights/openface-nn4.small2.v1-csv-partial/");
  conversion_report r;
  const tensor_map out = prepare_conversion(dir, {}, r);
  EXPECT_EQ(r.format, "openface-csv");
  EXPECT_EQ(r.arch, "nn4_small2");
  std::vector<std::string> missing = r.missing;
  std::sort(missing.begin(), missing.end());
  EXPECT_EQ(missing, std::vector<std::string>({"inception_3c_3x3_conv2.weight", "inception_4e_3x3_conv2.weight",
                                                "inception_5a_1x1_conv.weight", "inception_5a_3x3_conv2.weight",
                                                "inception_5b_3x3_conv2.weight"}));
  EXPECT_TRUE(r.mismatched.empty());
  EXPECT_EQ(r.unused, std::vector<std::string>({"inception_5a_3x3_conv2_m.csv", "inception_5a_3x3_conv2_v.csv"}));
  EXPECT_EQ(out.metadata.at("source"), "openface-nn4.small2.v1-csv-partial (openface-csv)");
  EXPECT_FACENET_ERROR(convert_weights(dir, scratch_file("nn4.safetensors", "")), format_error,
                       "does not fit nn4_small2: 5 missing: ");
  EXPECT_EQ(nn4_small2().parameter_count(), 3733968);
}
