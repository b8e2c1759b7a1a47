// The tool's weights resolution and the weights file's own operating point: `convert --metadata`
// writes a "threshold", re-conversion keeps it (and the standardization), verify/identify/demo use
// it unless --threshold is given, and without --weights the shipped default model is found through
// FACENET_MODELS_DIR.
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "facenet/data/image.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/pipeline.hpp"
#include "facenet/train/trainer.hpp"
#include "cli_testing.hpp"

namespace fs = std::filesystem;
using namespace cli_testing;

namespace {

// Two small synthetic photos (no detection needed with --no-detect).
std::pair<fs::path, fs::path> two_images() {
  const fs::path a = scratch_dir() / "a.png", b = scratch_dir() / "b.png";
  facenet::data::image ia(40, 40, 3, 30), ib(40, 40, 3, 200);
  for (int i = 0; i < 40 * 40 * 3; i += 7) ia.pixels[static_cast<std::size_t>(i)] = 250;
  facenet::data::save_png(ia, a.string());
  facenet::data::save_png(ib, b.string());
  return {a, b};
}

// Restores an environment variable when the test ends.
struct scoped_env {
  std::string name;
  std::string old;
  bool had;
  scoped_env(const char* n, const std::string& value) : name(n), had(std::getenv(n) != nullptr) {
    if (had) old = std::getenv(n);
    ::setenv(n, value.c_str(), 1);
  }
  ~scoped_env() { had ? ::setenv(name.c_str(), old.c_str(), 1) : ::unsetenv(name.c_str()); }
};

// A number of the JSON object eval-lfw --json prints.
double json_number(const std::string& json, const std::string& key) {
  const std::size_t at = json.find("\"" + key + "\": ");
  if (at == std::string::npos) {
    ADD_FAILURE() << "no " << key << " in " << json;
    return 0;
  }
  return std::strtod(json.c_str() + at + key.size() + 4, nullptr);
}

}  // namespace

TEST(cli_default_model, convert_metadata_survives_reconversion) {
  const fs::path first = scratch_dir() / "with_threshold.safetensors", second = scratch_dir() / "again.safetensors";
  const run_result r = run("convert " + q(nn4_weights()) + " " + q(first) + " --metadata threshold=0.75 --metadata standardization=fixed");
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(run("convert " + q(first) + " " + q(second) + " --dtype F16").code, 0);
  const auto m = facenet::io::load_safetensors(second.string()).metadata;
  EXPECT_EQ(m.at("threshold"), "0.75");
  EXPECT_EQ(m.at("standardization"), "fixed");
  EXPECT_EQ(m.at("architecture"), "nn4_small2");
  const facenet::loaded_model loaded = facenet::load_embedding_model(second.string());
  EXPECT_DOUBLE_EQ(loaded.threshold, 0.75);
  EXPECT_EQ(loaded.standardization, facenet::data::standardization::fixed);

  EXPECT_EQ(run("convert " + q(nn4_weights()) + " " + q(first) + " --metadata threshold=-1").code, 2);
  EXPECT_EQ(run("convert " + q(nn4_weights()) + " " + q(first) + " --metadata threshold").code, 2);
}

TEST(cli_default_model, verify_uses_the_files_threshold_unless_given) {
  const fs::path w = scratch_dir() / "thr.safetensors";
  ASSERT_EQ(run("convert " + q(nn4_weights()) + " " + q(w) + " --metadata threshold=0.5").code, 0);
  const auto [a, b] = two_images();
  const run_result r = run("verify --no-detect --weights " + q(w) + " " + q(a) + " " + q(b));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("threshold 0.5000"), std::string::npos) << r.out;
  const run_result given = run("verify --no-detect --threshold 1.3 --weights " + q(w) + " " + q(a) + " " + q(b));
  EXPECT_NE(given.out.find("threshold 1.3000"), std::string::npos) << given.out;
}

TEST(cli_default_model, found_through_facenet_models_dir) {
  const fs::path dir = scratch_dir() / "models";
  fs::create_directories(dir);
  ASSERT_EQ(run("convert " + q(nn4_weights()) + " " + q(dir / facenet::default_model_file) + " --metadata threshold=0.625").code, 0);
  const auto [a, b] = two_images();
  {
    const scoped_env env("FACENET_MODELS_DIR", dir.string());
    EXPECT_EQ(facenet::default_model_path(), (dir / facenet::default_model_file).string());
    const run_result r = run("verify --no-detect " + q(a) + " " + q(b));
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("threshold 0.6250"), std::string::npos) << r.out;
  }
  // Elsewhere the build tree's models/ is the fallback: verify works exactly when the model is there.
  const fs::path empty = scratch_dir() / "no_models";
  fs::create_directories(empty);
  const scoped_env env("FACENET_MODELS_DIR", empty.string());
  const bool shipped = !facenet::default_model_path().empty();
  const run_result r = run("verify --no-detect " + q(a) + " " + q(b));
  EXPECT_EQ(r.code, shipped ? 0 : 2) << r.err;
  if (!shipped) {
    EXPECT_NE(r.err.find(facenet::default_model_file), std::string::npos) << r.err;
  }
}

TEST(cli_default_model, align_template_metadata) {
  const fs::path w = scratch_dir() / "tmpl.safetensors";
  const std::string tmpl = "0.35 0.41 0.67 0.40 0.51 0.60 0.37 0.76 0.66 0.76";
  ASSERT_EQ(run("convert " + q(nn4_weights()) + " " + q(w) + " --metadata " + q("align_template=" + tmpl)).code, 0);
  const facenet::loaded_model m = facenet::load_embedding_model(w.string());
  ASSERT_TRUE(m.align_template.has_value());
  EXPECT_FLOAT_EQ((*m.align_template)[0][0], 0.35f);
  EXPECT_FLOAT_EQ((*m.align_template)[4][1], 0.76f);
  EXPECT_EQ(run("convert " + q(nn4_weights()) + " " + q(w) + " --metadata " + q("align_template=0.3 0.4")).code, 2);

  // A file whose template is malformed is refused at load, naming the key.
  facenet::io::tensor_map bad = facenet::io::load_safetensors(w.string());
  bad.metadata["align_template"] = "0.35 0.41 nan 0.40 0.51 0.60 0.37 0.76 0.66 0.76";
  const fs::path b = scratch_dir() / "bad_tmpl.safetensors";
  facenet::io::save_safetensors(b.string(), bad);
  try {
    facenet::load_embedding_model(b.string());
    ADD_FAILURE() << "a NaN in align_template was accepted";
  } catch (const facenet::format_error& e) {
    EXPECT_NE(std::string(e.what()).find("align_template"), std::string::npos) << e.what();
  }
}

// eval-lfw --no-detect --crop gives what the trainer's evaluation gives for the same model and pairs
// (the numbers of the model card), with and without --flip; --crop needs --no-detect.
TEST(cli_default_model, eval_lfw_centred_crops_match_the_trainers_evaluation) {
  const fs::path lfw = shared() / "data/lfw";
  REQUIRE_SHARED_PATH(lfw / "pairsDevTest.txt");
  if (facenet::default_model_path().empty()) GTEST_SKIP() << "no default model under models/";
  // The first 60 same and 60 different pairs of View 1's test file, as a View 1 file of its own.
  std::ifstream in((lfw / "pairsDevTest.txt").string());
  std::string line, same, different;
  int n = 0;
  std::getline(in, line);
  const int total = std::stoi(line);
  for (int i = 0; i < 2 * total && std::getline(in, line); ++i)
    if (i < 60) same += line + "\n";
    else if (i >= total && i < total + 60) different += line + "\n", ++n;
  ASSERT_EQ(n, 60);
  const fs::path pairs = scratch_dir() / "pairs_120.txt";
  std::ofstream(pairs.string()) << "60\n" << same << different;
  const fs::path images = lfw / "images_deepfunneled";
  const std::string base = "eval-lfw --json --no-detect --pairs " + q(pairs) + " --images " + q(images);

  const facenet::loaded_model model = facenet::load_default_model();
  const facenet::models::embedder<float> emb(*model.net);
  const facenet::eval::lfw_pairs p = facenet::eval::read_lfw_pairs(pairs.string());
  const facenet::eval::lfw_paths paths = facenet::eval::resolve_lfw_paths(images.string(), p, "jpg");
  ASSERT_EQ(paths.same.size(), 120u);
  facenet::data::loader_options lo;
  lo.augment.out_size = 96, lo.augment.crop_size = 128, lo.standardize = model.standardization;
  for (const char* flip : {"none", "sum"}) {
    const run_result r = run(base + " --crop 128 --flip " + flip);
    ASSERT_EQ(r.code, 0) << r.err;
    const facenet::train::verification_set v{paths.paths, paths.same, p.folds, facenet::eval::parse_flip_mode(flip)};
    const facenet::eval::lfw_metrics m = facenet::train::evaluate_verification(emb, v, lo);
    EXPECT_NEAR(json_number(r.out, "accuracy"), m.accuracy, 1e-12) << flip;
    EXPECT_NEAR(json_number(r.out, "auc"), m.auc, 1e-12) << flip;
    EXPECT_GT(m.accuracy, 0.75) << flip;  // a trained model on people it has not seen
  }
  const run_result detect = run("eval-lfw --crop 128 --pairs " + q(pairs) + " --images " + q(images));
  EXPECT_EQ(detect.code, 2);
  EXPECT_NE(detect.err.find("--no-detect"), std::string::npos) << detect.err;
  EXPECT_EQ(run(base + " --crop 128 --flip mirror").code, 2);
  EXPECT_EQ(run(base + " --crop 0").code, 2);
}
