// Per-layer profiler (layers/profile.hpp): the tree follows the networks' structure with readable
// labels, FLOPs add up to the PyTorch-counted totals (forward, backward = 2 x forward, inference),
// results are unchanged by profiling, nothing is recorded without a session or on another thread,
// and the report names the layers.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "facenet/layers/profile.hpp"
#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/nn4_small2.hpp"
#include "model_testing.hpp"

using namespace facenet;
using layers::profile_pass;

namespace {

// Forward FLOPs per image counted with PyTorch forward hooks on the twins in
// tests/fixtures/make_model_fixtures.py (2 x multiply-adds of every Conv2d and Linear).
constexpr double nn4_flops = 400236544.0;
constexpr double irv1_flops = 2835324608.0;

std::vector<std::string> children_labels(const layers::profiler& p, std::size_t parent, profile_pass pass) {
  std::vector<std::string> out;
  for (const auto& n : p.nodes())
    if (n.pass == pass && n.parent == parent) out.push_back(n.label);
  return out;
}

std::size_t find(const layers::profiler& p, std::size_t parent, profile_pass pass, const std::string& label) {
  for (std::size_t i = 0; i < p.nodes().size(); ++i) {
    const auto& n = p.nodes()[i];
    if (n.pass == pass && n.parent == parent && n.label == label) return i;
  }
  ADD_FAILURE() << "no node '" << label << "' under " << parent;
  return 0;
}

constexpr std::size_t top = layers::profile_node::npos;

// One embed() of a randomly initialised network on a random batch, unprofiled then profiled.
struct profiled_embed {
  layers::profiler prof;
  Tensor<float> plain, y;
};
template <class Model>
profiled_embed profile_embed(std::int64_t batch) {
  Model m;
  facenet::testing::randomize_parameters(m.root(), 3);
  models::embedder<float> e(m);
  Tensor<float> x({batch, 3, Model::input_size, Model::input_size});
  facenet::testing::fill_random(x, 5);
  profiled_embed r;
  r.plain = e.embed(x);
  layers::profile_session on(r.prof);
  e.embed(x, r.y);
  return r;
}

}  // namespace

TEST(Profile, Nn4InferenceTreeLabelsFlopsAndUnchangedOutput) {
  const profiled_embed r = profile_embed<models::nn4_small2<float>>(2);
  const layers::profiler& prof = r.prof;
  // Profiling does not change the computation beyond rounding: profiled, the two images run through one
  // call with the kernels parallel inside (unprofiled, one image per thread), and a 3x3 layer's
  // Winograd tile size depends on the images per call (conv2d_plan::automatic_map).
  EXPECT_LE(facenet::testing::max_abs_diff(r.plain, r.y), 1e-6);

  EXPECT_EQ(children_labels(prof, top, profile_pass::infer),
            (std::vector<std::string>{"conv1", "pool2d", "lrn", "conv2", "conv3", "lrn", "pool2d", "inception_3a",
                                      "inception_3b", "inception_3c", "inception_4a", "inception_4e", "inception_5a",
                                      "inception_5b", "pool2d", "dense", "l2_normalize"}));
  const std::size_t i3a = find(prof, top, profile_pass::infer, "inception_3a");
  // The 1x1 convolutions that open the 3x3, 5x5 and 1x1 branches run stacked, as one scope.
  EXPECT_EQ(children_labels(prof, i3a, profile_pass::infer),
            (std::vector<std::string>{"pointwise_heads", "3x3", "5x5", "pool", "1x1"}));
  const auto& heads = prof.nodes()[find(prof, i3a, profile_pass::infer, "pointwise_heads")];
  EXPECT_EQ(heads.detail, "1x1 192->176");  // 96 + 16 + 64 output channels
  EXPECT_EQ(heads.out, "[2, 176, 12, 12]");
  const std::size_t b3 = find(prof, i3a, profile_pass::infer, "3x3");
  EXPECT_EQ(children_labels(prof, b3, profile_pass::infer), (std::vector<std::string>{"conv2"}));
  const auto& conv2 = prof.nodes()[find(prof, b3, profile_pass::infer, "conv2")];
  EXPECT_EQ(conv2.kind, "basic_conv");
  EXPECT_EQ(conv2.detail, "3x3 96->128");
  EXPECT_EQ(conv2.out, "[2, 128, 12, 12]");
  EXPECT_EQ(prof.nodes()[find(prof, top, profile_pass::infer, "inception_3a")].kind, "concat");

  EXPECT_DOUBLE_EQ(prof.total_flops(profile_pass::infer), 2 * nn4_flops);
  EXPECT_EQ(prof.unattributed_flops(), 0.0);
  EXPECT_FALSE(prof.has(profile_pass::forward));
  // Scopes nest: a container's time covers its children's.
  const auto flops = prof.subtree_flops();
  for (std::size_t i = 0; i < prof.nodes().size(); ++i) {
    const auto& n = prof.nodes()[i];
    EXPECT_EQ(n.calls, 1) << n.label;
    if (n.parent != top) {
      EXPECT_LE(n.seconds, prof.nodes()[n.parent].seconds) << n.label;
      EXPECT_LE(flops[i], flops[n.parent]) << n.label;
    }
  }
}

TEST(Profile, TrainingStepCountsForwardAndTwiceItInBackward) {
  models::nn4_small2<float> m;
  facenet::testing::randomize_parameters(m.root(), 3);
  Tensor<float> x({3, 3, 96, 96}), y, dx;
  facenet::testing::fill_random(x, 5);
  layers::profiler prof;
  {
    layers::profile_session on(prof);
    for (int run = 0; run < 2; ++run) {
      m.forward(x, y, true);
      Tensor<float> dy(y.shape());
      facenet::testing::fill_random(dy, 9);
      m.backward(dy, dx);
    }
  }
  EXPECT_DOUBLE_EQ(prof.total_flops(profile_pass::forward), 2 * 3 * nn4_flops);
  EXPECT_DOUBLE_EQ(prof.total_flops(profile_pass::backward), 2 * 2 * 3 * nn4_flops);
  EXPECT_FALSE(prof.has(profile_pass::infer));
  // Backward runs the layers in reverse: the first scope seen is the last layer.
  const auto back = children_labels(prof, top, profile_pass::backward);
  ASSERT_EQ(back.size(), 17u);
  EXPECT_EQ(back.front(), "l2_normalize");
  EXPECT_EQ(back.back(), "conv1");
  for (const auto& n : prof.nodes()) EXPECT_EQ(n.calls, 2) << n.label;
  EXPECT_EQ(prof.nodes()[find(prof, top, profile_pass::backward, "conv1")].out, "[3, 3, 96, 96]");  // dx
  EXPECT_GT(prof.total_seconds(profile_pass::backward), 0.0);
}

TEST(Profile, InceptionResnetV1UsesStateDictNames) {
  const layers::profiler prof = profile_embed<models::inception_resnet_v1<float>>(1).prof;
  EXPECT_EQ(children_labels(prof, top, profile_pass::infer),
            (std::vector<std::string>{"conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
                                      "conv2d_4b", "repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8",
                                      "avgpool_1a", "dropout", "last", "l2_normalize"}));
  const std::size_t r1 = find(prof, top, profile_pass::infer, "repeat_1");
  EXPECT_EQ(children_labels(prof, r1, profile_pass::infer), (std::vector<std::string>{"0", "1", "2", "3", "4"}));
  const std::size_t block = find(prof, r1, profile_pass::infer, "0");
  EXPECT_EQ(prof.nodes()[block].kind, "residual_block");
  // The residual block's 1x1 up-projection is not a separate scope: its FLOPs are the block's own.
  EXPECT_DOUBLE_EQ(prof.nodes()[block].self_flops, 2.0 * 256 * 17 * 17 * 96);
  EXPECT_DOUBLE_EQ(prof.total_flops(profile_pass::infer), irv1_flops);
}

TEST(Profile, NothingRecordedWithoutSessionOrOnOtherThreads) {
  models::nn4_small2<float> m;
  facenet::testing::randomize_parameters(m.root(), 3);
  models::embedder<float> e(m);
  Tensor<float> x({1, 3, 96, 96}), y;
  facenet::testing::fill_random(x, 5);
  layers::profiler outer, inner;
  e.embed(x, y);  // no session: no profiler is touched
  EXPECT_EQ(layers::active_profiler(), nullptr);
  {
    layers::profile_session a(outer);
    std::thread other([&] {
      Tensor<float> y2;
      e.embed(x, y2);  // another thread: not observed
    });
    other.join();
    EXPECT_TRUE(outer.nodes().empty());
    {
      layers::profile_session b(inner);
      EXPECT_EQ(layers::active_profiler(), &inner);
    }
    EXPECT_EQ(layers::active_profiler(), &outer);  // sessions nest
  }
  EXPECT_EQ(layers::active_profiler(), nullptr);
  EXPECT_TRUE(outer.nodes().empty());
  EXPECT_TRUE(inner.nodes().empty());
  EXPECT_THROW(outer.leave(shape{1}), argument_error);
}

TEST(Profile, ReportNamesLayersHotspotsAndKinds) {
  const layers::profiler prof = profile_embed<models::nn4_small2<float>>(1).prof;
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  prof.print(f, 1);
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text += static_cast<char>(c);
  std::fclose(f);
  for (const char* s : {"inference:", "inception_3a", "  pointwise_heads ", "    conv2 ", "hottest", "by kind:", "basic_conv 3x3",
                        "concat (own)"})
    EXPECT_NE(text.find(s), std::string::npos) << s << "\n" << text;
  EXPECT_THROW(prof.print(stdout, 0), argument_error);
}
