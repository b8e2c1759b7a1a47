// The `facenet` command-line tool, run as a subprocess on real inputs: exit codes per error kind,
// detect JSON against facenet-pytorch's reference face counts, embeddings identical to the library's,
// convert / verify / identify / align / bench / demo outputs. Shared images and weights are used when
// present (../shared); tests needing them skip visibly otherwise.
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "facenet/data/image_io.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/io/json.hpp"
#include "facenet/io/npy.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/models/nn4_small2.hpp"
#include "facenet/pipeline.hpp"
#include "cli_testing.hpp"
#include "model_testing.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;

namespace {

using namespace cli_testing;

facenet::Tensor<float> library_embedding(const fs::path& weights, const facenet::Tensor<float>& x) {
  facenet::models::nn4_small2<float> m;
  m.load(facenet::io::load_safetensors(weights.string()));
  return facenet::models::embedder<float>(m).embed(x);
}

// Whole image resized to 96x96 and scaled to [0, 1]: what `embed --no-detect` feeds NN4-small2.
facenet::Tensor<float> no_detect_input(const fs::path& image) {
  const auto img = facenet::data::load_image(image.string());
  const auto small = facenet::data::resize_bilinear_pil(img, facenet::data::full_rect(img), 96, 96);
  facenet::Tensor<float> x = facenet::data::to_tensor(small);
  facenet::data::standardize(x, facenet::data::standardization::unit);
  return x;
}

}  // namespace

TEST(cli, usage_errors_and_help) {
  EXPECT_EQ(run("").code, 2);
  const run_result unknown = run("frobnicate");
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos) << unknown.err;
  EXPECT_EQ(run("--help").code, 0);
  for (const char* c : {"demo", "detect", "align", "embed", "verify", "identify", "convert", "bench"}) {
    const run_result r = run(std::string(c) + " --help");
    EXPECT_EQ(r.code, 0) << c;
    EXPECT_NE(r.out.find("usage: facenet " + std::string(c)), std::string::npos) << c << ": " << r.out;
  }
  const run_result bad = run("detect --bogus x.jpg");
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("unknown option --bogus"), std::string::npos) << bad.err;
  EXPECT_EQ(run("bench --batch many").code, 2);
  EXPECT_EQ(run("bench --threads 0").code, 2);
  EXPECT_EQ(run("embed --weights w.safetensors").code, 2);  // neither images nor --input-npy
}

TEST(cli, missing_files_are_io_errors) {
  const run_result r = run("embed --weights /nonexistent/w.safetensors --no-detect x.png");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/w.safetensors"), std::string::npos) << r.err;
  EXPECT_EQ(run("convert /nonexistent/src.pt " + q(scratch_dir() / "x.safetensors")).code, 3);
  EXPECT_EQ(run("detect --mtcnn /nonexistent/mtcnn /nonexistent/a.jpg").code, 3);
  EXPECT_EQ(run("detect --mtcnn " + q(scratch_dir()) + " /nonexistent/a.jpg").code, 3);
}

TEST(cli, detect_matches_reference_face_counts) {
  const fs::path ref_path = shared() / "reference/mtcnn/mtcnn_reference.json";
  REQUIRE_SHARED_PATH(ref_path);
  REQUIRE_SHARED_PATH(shared() / "weights/mtcnn/facenet-pytorch");
  const auto ref = facenet::io::parse_json(slurp(ref_path));
  std::string images;
  std::vector<std::pair<std::string, const facenet::io::json_value*>> expected;
  for (const auto& [key, value] : ref.find("images")->members("images")) {
    std::string rel = key;
    for (std::size_t at; (at = rel.find("__")) != std::string::npos;) rel.replace(at, 2, "/");
    const fs::path p = shared() / "images" / rel;
    REQUIRE_SHARED_PATH(p);
    images += " " + q(p);
    expected.emplace_back(p.string(), &value);
  }
  const fs::path drawn = scratch_dir() / "drawn.png";
  const run_result r = run("detect --mtcnn " + q(shared() / "weights/mtcnn/facenet-pytorch") + " --draw " + q(drawn) + images);
  ASSERT_EQ(r.code, 0) << r.err;
  const auto got = facenet::io::parse_json(r.out);
  const auto& list = got.as_array("detect output");
  ASSERT_EQ(list.size(), expected.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& want = *expected[i].second;
    EXPECT_EQ(list[i].find("image")->as_string("image"), expected[i].first);
    EXPECT_EQ(list[i].find("width")->as_int("width"), want.find("width")->as_int("width"));
    const auto& faces = list[i].find("faces")->as_array("faces");
    const auto& want_faces = want.find("faces")->as_array("faces");
    ASSERT_EQ(faces.size(), want_faces.size()) << expected[i].first;
    // The reference lists faces largest first (select_largest); detect lists them most probable
    // first: pair each reference face with the output face whose box is nearest.
    for (const auto& want_face : want_faces) {
      const auto& want_box = want_face.find("box")->as_array("box");
      double best = 1e30;
      const facenet::io::json_value* match = nullptr;
      for (const auto& face : faces) {
        const auto& box = face.find("box")->as_array("box");
        double worst = 0;
        for (std::size_t k = 0; k < 4; ++k) worst = std::max(worst, std::abs(box[k].as_number("x") - want_box[k].as_number("x")));
        if (worst < best) best = worst, match = &face;
      }
      EXPECT_LT(best, 3.0) << expected[i].first;
      EXPECT_NEAR(match->find("prob")->as_number("prob"), want_face.find("prob")->as_number("prob"), 1e-3);
      EXPECT_EQ(match->find("landmarks")->as_array("landmarks").size(), 5u);
    }
    EXPECT_TRUE(fs::exists(scratch_dir() / ("drawn_" + std::to_string(i) + ".png")));
  }
}

TEST(cli, detect_with_davidsandberg_npy_weights_and_flags) {
  const fs::path image = shared() / "images/multiface.jpg";
  REQUIRE_SHARED_PATH(image);
  REQUIRE_SHARED_PATH(shared() / "weights/mtcnn/davidsandberg/det1.npy");
  const run_result r = run("detect --mtcnn " + q(shared() / "weights/mtcnn/davidsandberg") + " " + q(image));
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(facenet::io::parse_json(r.out).find("faces")->as_array("faces").size(), 6u);
  // A minimum face size larger than the image finds nothing (and is fast).
  const run_result none = run("detect --min-face 1000 --mtcnn " + q(shared() / "weights/mtcnn/davidsandberg") + " " + q(image));
  ASSERT_EQ(none.code, 0) << none.err;
  EXPECT_EQ(facenet::io::parse_json(none.out).find("faces")->as_array("faces").size(), 0u);
  EXPECT_EQ(run("detect --thresholds 0.6,0.7 " + q(image)).code, 2);
  EXPECT_EQ(run("detect --factor 1.5 " + q(image)).code, 2);
}

TEST(cli, embed_matches_the_library_for_images_and_npy) {
  const fs::path face = shared() / "images/test_images_aligned/angelina_jolie/1.png";
  REQUIRE_SHARED_PATH(face);
  const fs::path w = nn4_weights(), out = scratch_dir() / "emb.npy";
  const facenet::Tensor<float> want = library_embedding(w, no_detect_input(face));

  const run_result r = run("embed --weights " + q(w) + " --no-detect " + q(face) + " " + q(face) + " --output " + q(out));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto got = facenet::io::load_npy(out.string()).entries().at(0).value;
  ASSERT_EQ(got.shape(), facenet::shape({2, 128}));
  for (std::int64_t k = 0; k < 128; ++k) {
    EXPECT_EQ(got.data()[k], want.data()[k]) << k;
    EXPECT_EQ(got.data()[128 + k], want.data()[k]) << k;
  }

  // --input-npy is fed as is: a random tensor, not an image.
  const facenet::Tensor<float> x = facenet::testing::random_tensor<float>({3, 3, 96, 96}, 5);
  write_npy(scratch_dir() / "x.npy", x);
  const fs::path csv = scratch_dir() / "emb.csv";
  const run_result n = run("embed --weights " + q(w) + " --input-npy " + q(scratch_dir() / "x.npy") + " --output " + q(csv));
  ASSERT_EQ(n.code, 0) << n.err;
  const facenet::Tensor<float> want_x = library_embedding(w, x);
  std::ifstream in(csv);
  std::string line;
  for (std::int64_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(std::getline(in, line));
    std::stringstream ss(line);
    std::string cell;
    for (std::int64_t k = 0; k < 128; ++k) {
      ASSERT_TRUE(std::getline(ss, cell, ','));
      EXPECT_FLOAT_EQ(std::stof(cell), want_x.data()[i * 128 + k]);
    }
  }
  // A 160x160 input for the 96x96 network is a shape error.
  write_npy(scratch_dir() / "wrong.npy", facenet::testing::random_tensor<float>({1, 3, 160, 160}, 6));
  EXPECT_EQ(run("embed --weights " + q(w) + " --input-npy " + q(scratch_dir() / "wrong.npy")).code, 5);
  EXPECT_EQ(run("embed --weights " + q(w) + " --input-npy " + q(scratch_dir() / "x.npy") + " --output e.txt").code, 2);
}

// --input-npy holds aligned crops: no detector is loaded, so missing MTCNN weights do not matter.
TEST(cli, input_npy_needs_no_mtcnn_weights) {
  const fs::path w = nn4_weights(), out = scratch_dir() / "npy_only.npy";
  const facenet::Tensor<float> x = facenet::testing::random_tensor<float>({2, 3, 96, 96}, 7);
  write_npy(scratch_dir() / "npy_only_x.npy", x);
  const std::string no_mtcnn = " --mtcnn " + q(scratch_dir() / "no_such_mtcnn_dir");
  const run_result r = run("embed --weights " + q(w) + no_mtcnn + " --input-npy " + q(scratch_dir() / "npy_only_x.npy") +
                           " --output " + q(out));
  ASSERT_EQ(r.code, 0) << r.err;
  const auto got = facenet::io::load_npy(out.string()).entries().at(0).value;
  const facenet::Tensor<float> want = library_embedding(w, x);
  ASSERT_EQ(got.shape(), want.shape());
  for (std::int64_t i = 0; i < want.numel(); ++i) EXPECT_EQ(got.data()[i], want.data()[i]) << i;
  // Images still need the detector: the missing directory is reported.
  const run_result img = run("embed --weights " + q(w) + no_mtcnn + " " + q(scratch_dir() / "npy_only_x.npy"));
  EXPECT_NE(img.code, 0);
  EXPECT_NE(img.err.find("no_such_mtcnn_dir"), std::string::npos) << img.err;
}

TEST(cli, wrong_architecture_and_no_face) {
  REQUIRE_SHARED_PATH(shared() / "weights/mtcnn/facenet-pytorch/pnet.pt");
  const fs::path face = shared() / "images/test_images_aligned/angelina_jolie/1.png";
  REQUIRE_SHARED_PATH(face);
  const run_result wrong = run("embed --no-detect --weights " + q(shared() / "weights/mtcnn/facenet-pytorch/pnet.pt") + " " + q(face));
  EXPECT_EQ(wrong.code, 4) << wrong.err;
  EXPECT_NE(wrong.err.find("not an embedding network"), std::string::npos) << wrong.err;
  // Weights of one network loaded as the other.
  EXPECT_EQ(run("embed --no-detect --arch inception_resnet_v1 --weights " + q(nn4_weights()) + " " + q(face)).code, 4);
  // A flat grey picture holds no face.
  const fs::path grey = scratch_dir() / "grey.png";
  facenet::data::save_png(facenet::data::image(200, 200, 3, 128), grey.string());
  const run_result none = run("embed --weights " + q(nn4_weights()) + " " + q(grey));
  EXPECT_EQ(none.code, 8) << none.err;
  EXPECT_NE(none.err.find("no face found"), std::string::npos) << none.err;
}

TEST(cli, verify_and_identify) {
  const fs::path gallery = shared() / "images/test_images_aligned";
  REQUIRE_SHARED_PATH(gallery / "kate_siegel/1.png");
  const fs::path w = nn4_weights();
  const fs::path a = gallery / "kate_siegel/1.png", b = gallery / "paul_rudd/1.png";
  const run_result same = run("verify --no-detect --weights " + q(w) + " " + q(a) + " " + q(a));
  ASSERT_EQ(same.code, 0) << same.err;
  EXPECT_NE(same.out.find("distance 0.0000"), std::string::npos) << same.out;
  EXPECT_NE(same.out.find("\nsame\n"), std::string::npos) << same.out;
  const run_result diff = run("verify --no-detect --threshold 0 --weights " + q(w) + " " + q(a) + " " + q(b));
  ASSERT_EQ(diff.code, 0) << diff.err;
  EXPECT_NE(diff.out.find("\ndifferent\n"), std::string::npos) << diff.out;
  EXPECT_EQ(run("verify --no-detect --weights " + q(w) + " " + q(a)).code, 2);

  // Gallery images queried again match themselves at distance 0; threshold < 0 makes everything unknown.
  const run_result id = run("identify --no-detect --weights " + q(w) + " --gallery " + q(gallery) + " " + q(a) + " " + q(b));
  ASSERT_EQ(id.code, 0) << id.err;
  EXPECT_EQ(id.out, a.string() + "\tkate_siegel\t0.0000\n" + b.string() + "\tpaul_rudd\t0.0000\n");
  const run_result unknown = run("identify --no-detect --threshold -1 --weights " + q(w) + " --gallery " + q(gallery) + " " + q(a));
  ASSERT_EQ(unknown.code, 0) << unknown.err;
  EXPECT_NE(unknown.out.find("\tunknown\t"), std::string::npos) << unknown.out;
}

TEST(cli, convert_reports_and_verifies) {
  const fs::path npy = shared() / "weights/mtcnn/davidsandberg/det1.npy";
  REQUIRE_SHARED_PATH(npy);
  const fs::path dst = scratch_dir() / "pnet.safetensors";
  const run_result r = run("convert " + q(npy) + " " + q(dst) + " --arch mtcnn_pnet --verify");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("architecture: mtcnn_pnet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("0 missing"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("verify: probability"), std::string::npos) << r.out;
  // The converted file is what the .pt holds, tensor for tensor.
  const auto pt = facenet::io::load_safetensors(dst.string());
  EXPECT_EQ(pt.at("conv1.weight").shape(), facenet::shape({10, 3, 3, 3}));

  // An NN4 file round-trips and --verify runs it.
  const run_result nn4 = run("convert " + q(nn4_weights()) + " " + q(scratch_dir() / "nn4.safetensors") + " --verify");
  ASSERT_EQ(nn4.code, 0) << nn4.err;
  EXPECT_NE(nn4.out.find("verify: embedding (nn4_small2) [1, 128] norm 1.0"), std::string::npos) << nn4.out;

  const fs::path csv = shared() / "weights/openface-nn4.small2.v1-csv-partial";
  if (fs::exists(csv)) {
    const run_result partial = run("convert " + q(csv) + " " + q(scratch_dir() / "partial.safetensors"));
    EXPECT_EQ(partial.code, 4) << partial.err;
    EXPECT_NE(partial.out.find("5 missing"), std::string::npos) << partial.out;
    EXPECT_FALSE(fs::exists(scratch_dir() / "partial.safetensors"));
  }
  EXPECT_EQ(run("convert " + q(npy) + " " + q(dst) + " --format jpeg").code, 2);
  EXPECT_EQ(run("convert " + q(npy) + " " + q(dst) + " --arch resnet50").code, 2);
}

TEST(cli, align_writes_every_face) {
  const fs::path image = shared() / "images/multiface.jpg";
  REQUIRE_SHARED_PATH(image);
  const fs::path out = scratch_dir() / "aligned";
  const run_result r = run("align --method similarity --size 96 " + q(image) + " --out " + q(out));
  ASSERT_EQ(r.code, 0) << r.err;
  for (int k = 0; k < 6; ++k) {
    const auto img = facenet::data::load_image((out / ("multiface_face" + std::to_string(k) + ".png")).string());
    EXPECT_EQ(img.width, 96);
    EXPECT_EQ(img.height, 96);
  }
  EXPECT_FALSE(fs::exists(out / "multiface_face6.png"));
  EXPECT_EQ(run("align --method warp " + q(image) + " --out " + q(out)).code, 2);
}

TEST(cli, bench_json) {
  const run_result r = run("bench --arch nn4_small2 --batch 2 --iters 2 --threads 2 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  const auto j = facenet::io::parse_json(r.out);
  for (const char* key : {"ms_median", "ms_min", "img_per_s", "gflops"}) {
    ASSERT_NE(j.find(key), nullptr) << key;
    EXPECT_GT(j.find(key)->as_number(key), 0.0) << key;
  }
  EXPECT_LE(j.find("ms_min")->as_number("ms_min"), j.find("ms_median")->as_number("ms_median"));
  const run_result t = run("bench --arch nn4_small2 --batch 2 --iters 1 --train --json");
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_TRUE(facenet::io::parse_json(t.out).find("train")->as_bool("train"));
  EXPECT_EQ(run("bench --arch resnet50").code, 2);
}

TEST(cli, demo_runs_the_pipeline) {
  const fs::path a = shared() / "images/test_images/kate_siegel/1.jpg", b = shared() / "images/multiface.jpg";
  REQUIRE_SHARED_PATH(a);
  REQUIRE_SHARED_PATH(shared() / "weights/mtcnn/facenet-pytorch");
  const fs::path out = scratch_dir() / "demo";
  const run_result r = run("demo " + q(a) + " " + q(b) + " --out " + q(out) + " --mtcnn " + q(shared() / "weights/mtcnn/facenet-pytorch"));
  ASSERT_EQ(r.code, 0) << r.err;
  // With the shipped model the demo names it; without one it must say loudly that its verdicts mean nothing.
  const std::string model = facenet::default_model_path();
  if (model.empty()) {
    EXPECT_NE(r.out.find("MEANINGLESS"), std::string::npos) << r.out;
  } else {
    EXPECT_EQ(r.out.find("MEANINGLESS"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("weights " + model), std::string::npos) << r.out;
  }
  EXPECT_NE(r.out.find("distance matrix"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kate_siegel      multiface"), std::string::npos) << r.out;
  for (const char* f : {"kate_siegel_faces.png", "kate_siegel_face.png", "multiface_faces.png", "multiface_face.png"})
    EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_EQ(facenet::data::load_image((out / "kate_siegel_face.png").string()).width, 96);
}

// The augmentation flags reach the trainer (its start-up line reports what it will use) and bad
// magnitudes are usage errors naming the flag.
TEST(cli, train_augmentation_flags) {
  const fs::path data = scratch_dir() / "train_faces";
  for (int p = 0; p < 3; ++p)
    for (int i = 0; i < 2; ++i) {
      fs::create_directories(data / ("p" + std::to_string(p)));
      std::ofstream out(data / ("p" + std::to_string(p)) / (std::to_string(i) + ".pgm"), std::ios::binary);
      out << "P5\n20 20\n255\n";
      for (int k = 0; k < 400; ++k) out.put(static_cast<char>((k * (p + 3) + i * 17) % 256));
    }
  const std::string base = "train --data " + q(data) + " --out " + q(scratch_dir() / "aug.safetensors") +
                           " --steps 1 --batch-people 2 --batch-images 2 --threads 1 --workers 1";
  const run_result defaults = run(base);
  ASSERT_EQ(defaults.code, 0) << defaults.err;
  EXPECT_NE(defaults.err.find("augmentation: crop 0 (whole image), flip, rotation 30 deg, shift 0.1, zoom 0.2, brightness 0.8-1.2\n"),
            std::string::npos)
      << defaults.err;
  const run_result custom =
      run(base + " --crop 16 --rotation 5 --shift 0 --zoom 0.05 --brightness 0.9,1.1 --no-flip --equalize");
  ASSERT_EQ(custom.code, 0) << custom.err;
  EXPECT_NE(custom.err.find("augmentation: crop 16, no flip, rotation 5 deg, shift 0, zoom 0.05, brightness 0.9-1.1, "
                            "histogram equalization\n"),
            std::string::npos)
      << custom.err;
  const run_result regularised = run(base + " --dropout 0.3 --loss softmax");
  EXPECT_EQ(regularised.code, 0) << regularised.err;
  for (const char* bad : {"--brightness 0.8", "--brightness 1.2,0.8", "--brightness 0.8,x", "--zoom 1", "--rotation -3",
                          "--shift abc", "--dropout 1", "--dropout -0.5"}) {
    const run_result r = run(base + " " + bad);
    EXPECT_EQ(r.code, 2) << bad << ": " << r.err;
    const std::string flag = std::string(bad).substr(2, std::string(bad).find(' ') - 2);
    const bool names_it = r.err.find(flag) != std::string::npos;
    EXPECT_TRUE(names_it) << bad << ": " << r.err;
  }
}
