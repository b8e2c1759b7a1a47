// The high-level pipeline (facenet/pipeline.hpp) as the README shows it: weights file + MTCNN
// directory -> face_embedder -> embeddings of real photos.
#include "facenet/pipeline.hpp"

#include <cmath>
#include <fstream>
#include <iterator>
#include <random>

#include "facenet/io/json.hpp"
#include "facenet/io/safetensors.hpp"
#include "testing.hpp"

namespace {

// A NN4-small2 weights file with seeded random weights (no trained weights are shipped to tests).
std::string random_nn4_file() {
  facenet::models::nn4_small2<float> m;
  std::mt19937 rng(3);
  for (auto& p : m.parameters()) {
    // He-uniform weights, identity batch norm, zero biases: the output depends on the input.
    facenet::Tensor<float>& t = *p.value;
    if (t.rank() >= 2) {
      const float bound = std::sqrt(6.0f / static_cast<float>(t.numel() / t.size(0)));
      std::uniform_real_distribution<float> d(-bound, bound);
      for (float& v : t) v = d(rng);
    } else {
      const bool one = p.name.find("running_var") != std::string::npos ||
                       (p.name.find("bn") != std::string::npos && p.name.find(".weight") != std::string::npos);
      t.fill(one ? 1.0f : 0.0f);
    }
  }
  // One file per test: ctest runs the tests of this file as parallel processes, and a shared name let
  // one test read the file while another was rewriting it.
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const auto path = std::filesystem::temp_directory_path() / ("facenet_test_pipeline_nn4_" + test + ".safetensors");
  facenet::io::save_safetensors(path.string(), m.export_weights());
  return path.string();
}

}  // namespace

TEST(pipeline, embeds_real_photos_through_the_readme_path) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/pnet.pt");
  const auto shared = facenet::testing::shared_dir();
  facenet::face_embedder fe(random_nn4_file(), (shared / "weights/mtcnn/facenet-pytorch").string());
  EXPECT_EQ(fe.model().arch, "nn4_small2");
  EXPECT_EQ(fe.model().standardization, facenet::data::standardization::unit);

  const auto a = fe.embed_file((shared / "images/test_images/angelina_jolie/1.jpg").string());
  const auto a2 = fe.embed_file((shared / "images/test_images/angelina_jolie/1.jpg").string());
  const auto b = fe.embed_file((shared / "images/test_images/paul_rudd/1.jpg").string());
  ASSERT_EQ(a.numel(), 128);
  double norm = 0;
  for (float v : a) norm += static_cast<double>(v) * v;
  EXPECT_NEAR(norm, 1.0, 1e-5);
  EXPECT_EQ(facenet::embedding_distance(a, a2), 0.0);  // deterministic
  EXPECT_GT(facenet::embedding_distance(a, b), 1e-3);  // different faces, different embeddings
}

TEST(pipeline, image_without_a_face_is_a_clear_error) {
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/pnet.pt");
  const auto shared = facenet::testing::shared_dir();
  facenet::face_embedder fe(random_nn4_file(), (shared / "weights/mtcnn/facenet-pytorch").string());
  const facenet::data::image blank(120, 120, 3, 128);
  try {
    (void)fe.embed(blank, "blank.png");
    FAIL() << "a blank image has no face";
  } catch (const facenet::argument_error& e) {
    EXPECT_NE(std::string(e.what()).find("no face found in blank.png"), std::string::npos) << e.what();
  }
}

TEST(pipeline, wrong_files_are_named) {
  EXPECT_THROW(facenet::load_embedding_model("/nonexistent/w.safetensors"), facenet::io_error);
  EXPECT_THROW(facenet::load_mtcnn("/nonexistent/mtcnn"), facenet::io_error);
  EXPECT_THROW(facenet::make_embedding_model("resnet50"), facenet::argument_error);
}

// Issue 4's acceptance with the real published weights, which are not in the repository: runs when
// the user points FACENET_VGGFACE2_PT (or FACENET_CASIA_PT) at facenet-pytorch's file.
namespace {

const facenet::io::json_value& field(const facenet::io::json_value& obj, const std::string& key) {
  const auto* v = obj.find(key);
  if (!v) throw facenet::format_error("reference JSON has no \"" + key + "\"");
  return *v;
}

void expect_reference_distances(const char* env, const char* key) {
  const char* weights = std::getenv(env);
  if (!weights || !*weights) GTEST_SKIP() << "SKIPPED: set " << env << " to the published facenet-pytorch weights";
  FACENET_REQUIRE_SHARED("reference/facenet-pytorch-expected-distances.json");
  const auto shared = facenet::testing::shared_dir();
  const auto ref = facenet::io::parse_json(
      [&] {
        std::ifstream in(shared / "reference/facenet-pytorch-expected-distances.json");
        return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      }(),
      "facenet-pytorch-expected-distances.json");
  const auto m = facenet::load_embedding_model(weights, "inception_resnet_v1");
  const facenet::models::embedder<float> e(*m.net);
  std::vector<facenet::Tensor<float>> emb;
  for (const auto& name : field(ref, "names").as_array("names")) {
    const auto img = facenet::data::load_image(
        (shared / "images/test_images_aligned" / name.as_string("names[i]") / "1.png").string());
    facenet::Tensor<float> x = facenet::data::to_tensor(img);
    facenet::data::standardize(x, facenet::data::standardization::fixed);
    emb.push_back(e.embed(x));
  }
  const auto& expected = field(ref, key).as_array(key);
  double frobenius = 0;
  for (std::size_t i = 0; i < emb.size(); ++i)
    for (std::size_t j = 0; j < emb.size(); ++j) {
      const double d = facenet::embedding_distance(emb[i], emb[j]) - expected[i].as_array(key)[j].as_number(key);
      frobenius += d * d;
    }
  EXPECT_LT(std::sqrt(frobenius), field(ref, "tolerance_frobenius").as_number("tolerance_frobenius"));
}

}  // namespace

TEST(pipeline, published_vggface2_weights_reproduce_facenet_pytorch_distances) {
  expect_reference_distances("FACENET_VGGFACE2_PT", "vggface2");
}
TEST(pipeline, published_casia_weights_reproduce_facenet_pytorch_distances) {
  expect_reference_distances("FACENET_CASIA_PT", "casia-webface");
}
