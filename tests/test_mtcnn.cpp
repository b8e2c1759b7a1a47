// MTCNN: NMS and box logic against hand-computed cases, the three networks against PyTorch
// (fixtures from make_mtcnn_fixtures.py), and the whole detector against facenet-pytorch's own
// output on the shared images (../shared/reference/mtcnn/mtcnn_reference.json).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "facenet/core/parallel.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/detect/align.hpp"
#include "facenet/detect/mtcnn.hpp"
#include "facenet/io/json.hpp"
#include "facenet/io/torch_file.hpp"
#include "fixtures/mtcnn/read_fixture.hpp"
#include "testing.hpp"

namespace dt = facenet::detect;
namespace fd = facenet::data;
using facenet::Tensor;

namespace {

std::vector<std::size_t> ids(std::initializer_list<std::size_t> l) { return l; }

Tensor<float> fixture_tensor(const facenet::testing::fixture_tensor& f) {
  Tensor<float> t{facenet::shape(f.dims.begin(), f.dims.end())};
  for (std::size_t i = 0; i < f.values.size(); ++i) t.data()[i] = static_cast<float>(f.values[i]);
  return t;
}

std::filesystem::path mtcnn_weights(const std::string& net) {
  return facenet::testing::shared_dir() / "weights/mtcnn/facenet-pytorch" / (net + ".pt");
}

}  // namespace

// ---- NMS ------------------------------------------------------------------------------------------

TEST(nms, torchvision_semantics) {
  // b overlaps a with IoU (90*100)/(100*100 + 100*100 - 9000) = 9000/11000 = 0.818; c is apart.
  const std::vector<dt::box> boxes = {{0, 0, 100, 100}, {10, 0, 110, 100}, {200, 200, 250, 260}, {0, 0, 100, 100}};
  const std::vector<float> scores = {0.8f, 0.9f, 0.5f, 0.8f};
  EXPECT_EQ(dt::nms(boxes, scores, 0.5f), ids({1, 2}));
  EXPECT_EQ(dt::nms(boxes, scores, 0.85f), ids({1, 0, 2}));  // equal scores: stable, first index wins
  // IoU exactly at the threshold survives (suppression needs IoU > threshold).
  const std::vector<dt::box> half = {{0, 0, 2, 1}, {1, 0, 3, 1}};  // IoU 1/3
  EXPECT_EQ(dt::nms(half, {0.9f, 0.8f}, 1.0f / 3.0f), ids({0, 1}));
  EXPECT_EQ(dt::nms(half, {0.9f, 0.8f}, 0.33f), ids({0}));
  EXPECT_TRUE(dt::nms({}, {}, 0.5f).empty());
  EXPECT_THROW(dt::nms(boxes, {0.1f}, 0.5f), facenet::argument_error);
}

TEST(nms, batched_groups_never_suppress_each_other) {
  const std::vector<dt::box> boxes = {{0, 0, 10, 10}, {0, 0, 10, 10}, {1, 1, 10, 10}, {0, 0, 10, 10}};
  const std::vector<float> scores = {0.5f, 0.9f, 0.7f, 0.6f};
  // Group 1: box 2 overlaps box 1 (IoU 0.81) and goes; group 0: box 3 (0.6) beats its twin 0.
  EXPECT_EQ(dt::nms_batched(boxes, scores, {0, 1, 1, 0}, 0.5f), ids({1, 3}));
  EXPECT_EQ(dt::nms_batched(boxes, scores, {0, 1, 2, 3}, 0.5f), ids({1, 2, 3, 0}));
}

TEST(nms, inclusive_min_overlap) {
  // A small box inside a big one: IoU is small, but the "Min" overlap is 1.
  const std::vector<dt::box> boxes = {{0, 0, 99, 99}, {10, 10, 29, 29}};
  const std::vector<float> scores = {0.95f, 0.99f};
  EXPECT_EQ(dt::nms_inclusive(boxes, scores, 0.7f, dt::overlap::iou), ids({1, 0}));
  EXPECT_EQ(dt::nms_inclusive(boxes, scores, 0.7f, dt::overlap::min), ids({1}));
  // Inclusive areas: [0,1]x[0,0] is 2x1 pixels; [1,2]x[0,0] shares one: overlap 1/2 under "Min".
  const std::vector<dt::box> px = {{0, 0, 1, 0}, {1, 0, 2, 0}};
  EXPECT_EQ(dt::nms_inclusive(px, {0.9f, 0.8f}, 0.5f, dt::overlap::min), ids({0, 1}));
  EXPECT_EQ(dt::nms_inclusive(px, {0.9f, 0.8f}, 0.49f, dt::overlap::min), ids({0}));
  EXPECT_FLOAT_EQ(dt::iou(px[0], px[1], true), 1.0f / 3.0f);
  EXPECT_FLOAT_EQ(dt::iou({0, 0, 2, 1}, {1, 0, 3, 1}, false), 1.0f / 3.0f);
}

// ---- box arithmetic -------------------------------------------------------------------------------

TEST(boxes, proposals_regression_and_squaring) {
  // 2x3 probability map, threshold 0.6: cells (x=2, y=0) and (x=1, y=1) pass (>= is inclusive).
  const float prob[] = {0.1f, 0.5f, 0.6f, 0.2f, 0.95f, 0.3f};
  std::vector<float> reg(4 * 6);
  for (int k = 0; k < 4; ++k) reg[k * 6 + 4] = 0.1f * (k + 1);
  std::vector<dt::candidate> out;
  dt::generate_proposals(prob, reg.data(), 2, 3, 0.5, 0.6f, 3, out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FLOAT_EQ(out[0].b.x1, 10);  // floor((2*2 + 1) / 0.5)
  EXPECT_FLOAT_EQ(out[0].b.y1, 2);
  EXPECT_FLOAT_EQ(out[0].b.x2, 32);  // floor((2*2 + 12) / 0.5)
  EXPECT_FLOAT_EQ(out[0].b.y2, 24);
  EXPECT_FLOAT_EQ(out[1].score, 0.95f);
  EXPECT_FLOAT_EQ(out[1].reg[2], 0.3f);
  EXPECT_EQ(out[1].image, 3);
  const dt::box r = dt::regress_proposal({10, 20, 30, 60}, {0.1f, -0.1f, 0.2f, 0.5f});
  EXPECT_FLOAT_EQ(r.x1, 12);
  EXPECT_FLOAT_EQ(r.y1, 16);
  EXPECT_FLOAT_EQ(r.x2, 34);
  EXPECT_FLOAT_EQ(r.y2, 80);
  const dt::box b = dt::bbreg({10, 20, 29, 59}, {0.1f, 0, 0, 0.5f});  // +1 widths: 20 x 40
  EXPECT_FLOAT_EQ(b.x1, 12);
  EXPECT_FLOAT_EQ(b.y2, 79);
  const dt::box sq = dt::rerec({10, 20, 30, 60});
  EXPECT_FLOAT_EQ(sq.x1, 0);
  EXPECT_FLOAT_EQ(sq.x2, 40);
  EXPECT_FLOAT_EQ(sq.y1, 20);
  EXPECT_FLOAT_EQ(sq.y2, 60);
}

TEST(boxes, crop_window_follows_pad_and_python_slicing) {
  const fd::rect r = dt::crop_window({-5.7f, 3.9f, 20.2f, 150.0f}, 100, 120);
  EXPECT_EQ(r.x0, 0);  // x = max(trunc(-5.7), 1) = 1 -> slice from x - 1
  EXPECT_EQ(r.x1, 20);
  EXPECT_EQ(r.y0, 2);  // y = 3 -> slice from 2
  EXPECT_EQ(r.y1, 120);
  const fd::rect outside = dt::crop_window({150, 10, 190, 50}, 100, 120);
  EXPECT_LE(outside.width(), 0);
}

TEST(pyramid, scales_match_facenet_pytorch) {
  const auto s = dt::pyramid_scales(250, 250, {});
  // 250 * 0.6 = 150 >= 12, then times 0.709 until below 12: 150, 106.4, ..., 13.4 -> 8 scales.
  ASSERT_EQ(s.size(), 8u);
  EXPECT_DOUBLE_EQ(s[0], 0.6);
  EXPECT_NEAR(s[7], 0.6 * std::pow(0.709, 7), 1e-12);
  EXPECT_TRUE(dt::pyramid_scales(19, 500, {}).empty());
  dt::mtcnn_options bad;
  bad.factor = 1.2;
  EXPECT_THROW(bad.validate(), facenet::argument_error);
}

TEST(selection, methods_order_like_select_boxes) {
  std::vector<dt::face> faces(3);
  faces[0].b = {0, 0, 10, 10}, faces[0].prob = 0.99f;     // small, top-left
  faces[1].b = {40, 40, 60, 60}, faces[1].prob = 0.80f;   // medium, centred
  faces[2].b = {70, 0, 100, 40}, faces[2].prob = 0.95f;   // largest, off-centre
  auto order = [&](dt::selection_method m) {
    dt::selection_options o;
    o.method = m;
    return dt::order_faces(faces, 100, 100, o);
  };
  EXPECT_EQ(order(dt::selection_method::largest), ids({2, 1, 0}));
  EXPECT_EQ(order(dt::selection_method::probability), ids({0, 2, 1}));
  EXPECT_EQ(order(dt::selection_method::largest_over_threshold), ids({2, 0}));
  // size - 2 * squared centre offset: 0 -> 100-2*4050, 1 -> 400, 2 -> 1200-2*(1225+900)
  EXPECT_EQ(order(dt::selection_method::center_weighted_size), ids({1, 2, 0}));
  EXPECT_EQ(dt::select_faces(faces, 100, 100, false).size(), 1u);
  EXPECT_EQ(dt::select_faces(faces, 100, 100, true).size(), 3u);
  EXPECT_TRUE(dt::select_faces({}, 100, 100, false).empty());
}

// ---- networks vs PyTorch --------------------------------------------------------------------------

class mtcnn_nets : public ::testing::Test {
 protected:
  void SetUp() override {
    FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/onet.pt");
    const auto path = facenet::testing::source_dir() / "tests/fixtures/mtcnn/nets.txt";
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "SKIPPED: " << path << " missing (run make_mtcnn_fixtures.py)";
    fx_ = facenet::testing::read_fixture(path.string());
  }
  Tensor<float> get(const std::string& n) { return fixture_tensor(fx_.at(n)); }
  std::map<std::string, facenet::testing::fixture_tensor> fx_;
};

TEST_F(mtcnn_nets, pnet_matches_pytorch) {
  facenet::models::mtcnn_pnet net(facenet::io::load_torch(mtcnn_weights("pnet").string()));
  Tensor<float> reg, prob;
  net.forward(get("pnet_input"), reg, prob);
  EXPECT_LT(facenet::testing::max_abs_diff(reg, get("pnet_reg")), 1e-5);
  EXPECT_LT(facenet::testing::max_abs_diff(prob, get("pnet_prob")), 1e-5);
  net.forward(get("pnet_input").batch(1).clone(), reg, prob);  // batch 1, buffers reused
  EXPECT_LT(facenet::testing::max_abs_diff(prob, get("pnet_prob").batch(1).clone()), 1e-5);
}

TEST_F(mtcnn_nets, rnet_matches_pytorch) {
  facenet::models::mtcnn_rnet net(facenet::io::load_torch(mtcnn_weights("rnet").string()));
  Tensor<float> reg, prob;
  net.forward(get("rnet_input"), reg, prob);
  EXPECT_LT(facenet::testing::max_abs_diff(reg, get("rnet_reg")), 1e-5);
  EXPECT_LT(facenet::testing::max_abs_diff(prob, get("rnet_prob")), 1e-5);
}

TEST_F(mtcnn_nets, onet_matches_pytorch) {
  facenet::models::mtcnn_onet net(facenet::io::load_torch(mtcnn_weights("onet").string()));
  Tensor<float> reg, marks, prob;
  net.forward(get("onet_input"), reg, marks, prob);
  EXPECT_LT(facenet::testing::max_abs_diff(reg, get("onet_reg")), 1e-5);
  EXPECT_LT(facenet::testing::max_abs_diff(marks, get("onet_landmarks")), 1e-5);
  EXPECT_LT(facenet::testing::max_abs_diff(prob, get("onet_prob")), 1e-5);
  Tensor<float> wrong({1, 3, 24, 24});
  EXPECT_THROW(net.forward(wrong, reg, marks, prob), facenet::shape_error);
}

TEST_F(mtcnn_nets, bad_weights_are_named) {
  auto w = facenet::io::load_torch(mtcnn_weights("rnet").string());
  facenet::io::tensor_map missing;
  for (const auto& e : w.entries())
    if (e.name != "dense4.weight") missing.add(e.name, e.value);
  try {
    facenet::models::mtcnn_rnet net(missing);
    ADD_FAILURE() << "missing weight accepted";
  } catch (const facenet::format_error& e) {
    EXPECT_NE(std::string(e.what()).find("dense4.weight"), std::string::npos) << e.what();
  }
  // P-Net weights handed to O-Net: the first mismatching shape is reported.
  auto p = facenet::io::load_torch(mtcnn_weights("pnet").string());
  try {
    facenet::models::mtcnn_onet net(p);
    ADD_FAILURE() << "P-Net weights accepted as O-Net";
  } catch (const facenet::format_error& e) {
    EXPECT_NE(std::string(e.what()).find("conv1.weight"), std::string::npos) << e.what();
  }
}

// ---- the whole detector vs facenet-pytorch --------------------------------------------------------

TEST(mtcnn_detect, batch_equals_single_images_and_degenerate_inputs_are_handled) {
  FACENET_REQUIRE_SHARED("data/lfw/images_deepfunneled/Aaron_Eckhart/Aaron_Eckhart_0001.jpg");
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/onet.pt");
  dt::mtcnn det = dt::mtcnn::from_weights(facenet::io::load_torch(mtcnn_weights("pnet").string()),
                                          facenet::io::load_torch(mtcnn_weights("rnet").string()),
                                          facenet::io::load_torch(mtcnn_weights("onet").string()));
  const auto lfw = facenet::testing::shared_dir() / "data/lfw/images_deepfunneled";
  const fd::image a = fd::load_image((lfw / "Aaron_Eckhart/Aaron_Eckhart_0001.jpg").string());
  const fd::image grey = fd::load_image((facenet::testing::shared_dir() / "data/orl/s1/1.pgm").string());
  const fd::image tiny(11, 30, 3, 128);  // below the 12-pixel P-Net window at every scale
  const auto batch = det.detect(std::vector<fd::image>{a, grey, tiny, a});
  ASSERT_EQ(batch.size(), 4u);
  const auto single = det.detect(a);
  ASSERT_GE(single.size(), 1u);  // an LFW image is centred on a face
  ASSERT_EQ(batch[0].size(), single.size());
  for (std::size_t i = 0; i < single.size(); ++i) {
    EXPECT_EQ(batch[0][i].prob, single[i].prob);
    EXPECT_EQ(batch[3][i].b.x1, single[i].b.x1);
  }
  EXPECT_GE(batch[1].size(), 1u);  // grey 92x112 ORL face, expanded to RGB
  EXPECT_TRUE(batch[2].empty());
  const auto best = dt::select_faces(single, a.width, a.height, false);
  ASSERT_EQ(best.size(), 1u);
  EXPECT_NEAR((best[0].b.x1 + best[0].b.x2) / 2, 125, 30);  // the centred face is the largest
  EXPECT_THROW(det.detect(fd::image(20, 20, 1)), facenet::argument_error);
  dt::mtcnn_options bad;
  bad.thresholds[1] = 1.5f;
  EXPECT_THROW(det.set_options(bad), facenet::argument_error);
}

// One test per reference image so a failure names the image and each stays short. Runs on one
// thread: detections do not depend on the thread count (the threaded network paths are covered by
// mtcnn_nets above), and on the shared 2-core machine OpenMP barriers under oversubscription made
// these ~5 s of CPU work take minutes.
class mtcnn_reference : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    saved_threads_ = facenet::parallel::max_threads();
    facenet::parallel::set_num_threads(1);
  }
  static void TearDownTestSuite() { facenet::parallel::set_num_threads(saved_threads_); }
  static inline int saved_threads_ = 1;

  static dt::mtcnn& detector() {
    static dt::mtcnn d = dt::mtcnn::from_weights(facenet::io::load_torch(mtcnn_weights("pnet").string()),
                                                 facenet::io::load_torch(mtcnn_weights("rnet").string()),
                                                 facenet::io::load_torch(mtcnn_weights("onet").string()));
    return d;
  }
  static const facenet::io::json_value& reference() {
    static const facenet::io::json_value ref = [] {
      const auto bytes = fd::read_file_bytes(
          (facenet::testing::shared_dir() / "reference/mtcnn/mtcnn_reference.json").string());
      return facenet::io::parse_json(std::string(bytes.begin(), bytes.end()));
    }();
    return ref;
  }
};

TEST_P(mtcnn_reference, matches_facenet_pytorch) {
  FACENET_REQUIRE_SHARED("reference/mtcnn/mtcnn_reference.json");
  FACENET_REQUIRE_SHARED("weights/mtcnn/facenet-pytorch/onet.pt");
  const auto shared = facenet::testing::shared_dir();
  const std::string key = GetParam();
  const facenet::io::json_value* entry = reference().find("images")->find(key);
  ASSERT_NE(entry, nullptr) << key << " missing from mtcnn_reference.json";
  std::string rel = key;  // keys are the image path with '/' replaced by "__"
  for (std::size_t p; (p = rel.find("__")) != std::string::npos;) rel.replace(p, 2, "/");
  const fd::image img = fd::load_image((shared / "images" / rel).string());
  ASSERT_EQ(img.width, entry->find("width")->as_int("width"));
  ASSERT_EQ(img.height, entry->find("height")->as_int("height"));
  // The reference ran with select_largest=True, keep_all=True: every face, largest first.
  const std::vector<dt::face> faces = dt::select_faces(detector().detect(img), img.width, img.height, true);
  const auto& ref_faces = entry->find("faces")->as_array("faces");
  ASSERT_EQ(faces.size(), ref_faces.size());
  for (std::size_t i = 0; i < faces.size(); ++i) {
    SCOPED_TRACE("face " + std::to_string(i));
    const auto& rf = ref_faces[i];
    const auto& rb = rf.find("box")->as_array("box");
    const dt::box want{static_cast<float>(rb[0].as_number("x1")), static_cast<float>(rb[1].as_number("y1")),
                       static_cast<float>(rb[2].as_number("x2")), static_cast<float>(rb[3].as_number("y2"))};
    EXPECT_GE(dt::iou(faces[i].b, want), 0.95f);
    EXPECT_NEAR(faces[i].prob, rf.find("prob")->as_number("prob"), 1e-3);
    const auto& rl = rf.find("landmarks")->as_array("landmarks");
    for (int k = 0; k < 5; ++k) {
      const auto& pt = rl[k].as_array("point");
      EXPECT_LE(std::hypot(faces[i].points[k][0] - pt[0].as_number("x"), faces[i].points[k][1] - pt[1].as_number("y")), 2.0)
          << "landmark " << k;
    }
    // Crop with margin 0 at 160x160, compared with facenet-pytorch's saved crop.
    const fd::image crop = dt::extract_face(img, faces[i].b);
    const fd::image want_crop = fd::load_image((shared / "reference/mtcnn" / rf.find("crop")->as_string("crop")).string());
    ASSERT_EQ(crop.pixels.size(), want_crop.pixels.size());
    double diff = 0;
    for (std::size_t k = 0; k < crop.pixels.size(); ++k) diff += std::abs(crop.pixels[k] - want_crop.pixels[k]);
    EXPECT_LE(diff / crop.pixels.size(), 2.0);
  }
}

INSTANTIATE_TEST_SUITE_P(shared_images, mtcnn_reference,
                         ::testing::Values("multiface.jpg", "test_images__angelina_jolie__1.jpg",
                                           "test_images__kate_siegel__1.jpg", "test_images__paul_rudd__1.jpg",
                                           "test_images__shea_whigham__1.jpg"));
