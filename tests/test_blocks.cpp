// Blocks: finite-difference checks in double on reduced-width variants of every block (train and
// eval mode), parameter names, shapes, and the inference path (BN folded, fused residual) against
// the eval-mode forward.
#include <algorithm>
#include <gtest/gtest.h>

#include "facenet/blocks/basic_conv.hpp"
#include "facenet/blocks/inception.hpp"
#include "facenet/blocks/inception_resnet.hpp"
#include "facenet/layers/sequential.hpp"
#include "model_testing.hpp"

using namespace facenet;
using facenet::testing::check_module_gradients;
using facenet::testing::names_of;
using facenet::testing::randomize_parameters;

namespace {

// infer() after prepare_inference() must equal forward(eval).
template <class T>
void expect_infer_matches_eval(layers::module<T>& m, const shape& in, double tol) {
  Tensor<T> x = facenet::testing::random_tensor<T>(in, 99), y_eval, y_inf;
  m.forward(x, y_eval, false);
  m.prepare_inference();
  layers::workspace<T> ws;
  m.infer(x, y_inf, ws);
  EXPECT_LE(facenet::testing::max_abs_diff(y_inf, y_eval), tol);
  // A second call reuses the workspace and gives the same answer.
  Tensor<T> again;
  m.infer(x, again, ws);
  EXPECT_EQ(facenet::testing::max_abs_diff(again, y_inf), 0.0);
}

// A tiny NN4 module: 3x3/5x5 branches, a pool branch, and a 1x1 branch, padded to `size`.
blocks::inception_spec tiny_inception(layers::pool_kind pool, std::int64_t pool_stride, std::int64_t stride,
                                      bool reduction) {
  blocks::inception_spec s;
  s.name = "inception_t";
  s.in = 4;
  s.reduce_3x3 = 3, s.out_3x3 = 5;
  s.reduce_5x5 = 2, s.out_5x5 = 3;
  s.stride = stride;
  s.pool = pool;
  s.pool_stride = pool_stride;
  s.pool_out = reduction ? 0 : 2;
  s.out_1x1 = reduction ? 0 : 3;
  return s;
}

}  // namespace

TEST(BasicConv, GradientsTrainAndEval) {
  blocks::basic_conv<double> b(layers::conv2d_options{3, 4, 3, 2, 2, 1, 1, 0, true}, 1e-3);
  randomize_parameters(b, 1);
  check_module_gradients(b, shape{2, 3, 7, 6}, true, 10);
  check_module_gradients(b, shape{2, 3, 7, 6}, false, 11);
}

// backward_params (training's first layer) writes the same parameter gradients as backward,
// through a container whose first child is a basic_conv, and leaves no input gradient to compute.
TEST(BasicConv, BackwardParamsGivesBackwardsParameterGradients) {
  layers::sequential<double> seq;
  seq.add("a", std::make_unique<blocks::basic_conv<double>>(layers::conv_spec(3, 4, 3, 2, 1), 1e-3));
  seq.add("b", std::make_unique<blocks::basic_conv<double>>(layers::conv_spec(4, 5, 3, 1, 1), 1e-3));
  randomize_parameters(seq, 21);
  const Tensor<double> x = facenet::testing::random_tensor<double>(shape{2, 3, 9, 8}, 22);
  Tensor<double> y, dx;
  seq.forward(x, y, true);
  const Tensor<double> dy = facenet::testing::random_tensor<double>(y.shape(), 23);
  seq.backward(dy, dx);
  std::vector<layers::parameter<double>> params;
  seq.collect("", params);
  params.erase(std::remove_if(params.begin(), params.end(), [](const auto& p) { return !p.grad; }), params.end());
  std::vector<Tensor<double>> full;
  for (const auto& p : params) full.push_back(p.grad->clone());
  for (const auto& p : params) p.grad->fill(7.0);  // stale values must be overwritten
  seq.backward_params(dy);
  ASSERT_EQ(params.size(), full.size());
  ASSERT_FALSE(params.empty());
  for (std::size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(facenet::testing::max_abs_diff(*params[i].grad, full[i]), 0.0) << params[i].name;
}

TEST(BasicConv, NamesFollowTheReference) {
  blocks::basic_conv<float> a(layers::conv_spec(3, 4, 3), 1e-3);
  EXPECT_EQ(names_of(a), (std::vector<std::string>{"conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"}));
  blocks::basic_conv<float> b(layers::conv_spec(3, 4, 3, 1, 1, true), 1e-5, "conv1", "bn1");
  EXPECT_EQ(names_of(b), (std::vector<std::string>{"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                                   "bn1.running_mean", "bn1.running_var"}));
}

TEST(BasicConv, InferenceFoldsBatchNorm) {
  blocks::basic_conv<double> b(layers::conv_spec(3, 5, 3, 1, 1, true), 1e-5);
  randomize_parameters(b, 2);
  expect_infer_matches_eval(b, shape{2, 3, 6, 5}, 1e-12);
}

TEST(Block35, ReducedWidthGradients) {
  auto b = blocks::make_block35<double>(0.17, 6, 2);
  randomize_parameters(*b, 3);
  check_module_gradients(*b, shape{2, 6, 5, 5}, true, 20);
  check_module_gradients(*b, shape{2, 6, 5, 5}, false, 21);
}

TEST(Block17, ReducedWidthGradients) {
  auto b = blocks::make_block17<double>(0.1, 5, 2);
  randomize_parameters(*b, 4);
  check_module_gradients(*b, shape{2, 5, 8, 7}, true, 30);
}

TEST(Block8, ReducedWidthGradientsWithAndWithoutRelu) {
  auto relu = blocks::make_block8<double>(0.2, true, 5, 2);
  randomize_parameters(*relu, 5);
  check_module_gradients(*relu, shape{2, 5, 4, 3}, true, 40);
  auto linear = blocks::make_block8<double>(1.0, false, 5, 2);
  randomize_parameters(*linear, 6);
  check_module_gradients(*linear, shape{2, 5, 4, 3}, true, 41);
}

TEST(InceptionResnet, NamesAndShapes) {
  auto b = blocks::make_block35<float>(0.17);
  const auto n = names_of(*b);
  ASSERT_EQ(n.size(), 6u * 5 + 2);
  EXPECT_EQ(n.front(), "branch0.conv.weight");
  EXPECT_EQ(n[5], "branch1.0.conv.weight");
  EXPECT_EQ(n[n.size() - 2], "conv2d.weight");
  EXPECT_EQ(n.back(), "conv2d.bias");
  auto m6 = blocks::make_mixed_6a<float>();
  Tensor<float> x(shape{1, 256, 17, 17}), y;
  randomize_parameters(*m6, 7);
  m6->forward(x, y, false);
  EXPECT_EQ(y.shape(), (shape{1, 896, 8, 8}));
  auto m7 = blocks::make_mixed_7a<float>();
  Tensor<float> x7(shape{1, 896, 8, 8}), y7;
  m7->forward(x7, y7, false);
  EXPECT_EQ(y7.shape(), (shape{1, 1792, 3, 3}));
}

TEST(InceptionResnet, InferenceMatchesEvalForward) {
  auto b35 = blocks::make_block35<double>(0.17, 6, 2);
  randomize_parameters(*b35, 8);
  expect_infer_matches_eval(*b35, shape{3, 6, 5, 5}, 1e-12);
  auto b8 = blocks::make_block8<double>(1.0, false, 5, 2);
  randomize_parameters(*b8, 9);
  expect_infer_matches_eval(*b8, shape{1, 5, 3, 3}, 1e-12);
  auto m7 = blocks::make_mixed_7a<double>(6, 3, 4, 2);
  randomize_parameters(*m7, 10);
  expect_infer_matches_eval(*m7, shape{2, 6, 9, 9}, 1e-12);
}

TEST(Mixed, ReducedWidthGradients) {
  auto m6 = blocks::make_mixed_6a<double>(4, 3, 2, 3);
  randomize_parameters(*m6, 11);
  check_module_gradients(*m6, shape{2, 4, 7, 7}, true, 50);
  auto m7 = blocks::make_mixed_7a<double>(4, 2, 3, 2);
  randomize_parameters(*m7, 12);
  check_module_gradients(*m7, shape{2, 4, 7, 7}, true, 51);
}

TEST(Inception, MaxPoolBranchGradients) {
  auto b = blocks::make_inception<double>(tiny_inception(layers::pool_kind::max, 2, 1, false));
  randomize_parameters(*b, 13);
  check_module_gradients(*b, shape{2, 4, 7, 7}, true, 60);
}

TEST(Inception, L2PoolBranchGradients) {
  auto b = blocks::make_inception<double>(tiny_inception(layers::pool_kind::l2, 3, 1, false));
  randomize_parameters(*b, 14);
  check_module_gradients(*b, shape{2, 4, 7, 7}, true, 70);
  check_module_gradients(*b, shape{2, 4, 7, 7}, false, 71);
}

TEST(Inception, ReductionVariantGradients) {
  auto b = blocks::make_inception<double>(tiny_inception(layers::pool_kind::max, 2, 2, true));
  randomize_parameters(*b, 15);
  check_module_gradients(*b, shape{2, 4, 8, 8}, true, 80);
}

TEST(Inception, DepthConcatCentresSmallBranches) {
  // 3a of nn4.small2.v1: the 5x5 max-pool branch sits at rows/cols 3..7 of the 12x12 output.
  blocks::inception_spec s{"inception_3a", 192, 96, 128, 16, 32, 1, layers::pool_kind::max, 3, 2, 32, 64};
  auto b = blocks::make_inception<float>(s);
  randomize_parameters(*b, 16);
  Tensor<float> x = facenet::testing::random_tensor<float>(shape{1, 192, 12, 12}, 17), y;
  b->forward(x, y, false);
  ASSERT_EQ(y.shape(), (shape{1, 256, 12, 12}));
  const std::int64_t pool_c = 128 + 32;
  for (std::int64_t c = pool_c; c < pool_c + 32; ++c)
    for (std::int64_t i = 0; i < 12; ++i)
      for (std::int64_t j = 0; j < 12; ++j) {
        const bool inside = i >= 3 && i < 8 && j >= 3 && j < 8;
        if (!inside) {
          ASSERT_EQ(y(0, c, i, j), 0.0f) << c << " " << i << " " << j;
        }
      }
  EXPECT_EQ(names_of(*b).front(), "inception_3a_3x3_conv1.weight");
  EXPECT_EQ(names_of(*b).back(), "inception_3a_1x1_bn.running_var");
}

TEST(Inception, InferenceMatchesEvalForward) {
  auto b = blocks::make_inception<double>(tiny_inception(layers::pool_kind::l2, 3, 1, false));
  randomize_parameters(*b, 18);
  expect_infer_matches_eval(*b, shape{2, 4, 7, 7}, 1e-12);
}

// Inference runs the branches' leading 1x1 convolutions stacked as one: at batch 1 the branches read
// channel slices of its output in place, at batch 3 they read them made dense. convert_to_inference()
// frees the heads' own packed weights, so only the stacked ones can give these outputs.
TEST(Concat, StackedPointwiseHeadsMatchEvalForward) {
  for (const std::int64_t n : {1, 3}) {
    auto inception = blocks::make_inception<double>(tiny_inception(layers::pool_kind::max, 2, 1, false));
    randomize_parameters(*inception, 19);
    expect_infer_matches_eval(*inception, shape{n, 4, 7, 7}, 1e-12);
    auto b17 = blocks::make_block17<double>(0.1, 5, 2);
    randomize_parameters(*b17, 20);
    const Tensor<double> x = facenet::testing::random_tensor<double>(shape{n, 5, 6, 5}, 21);
    Tensor<double> y_eval, y_inf;
    b17->forward(x, y_eval, false);
    b17->convert_to_inference();
    layers::workspace<double> ws;
    b17->infer(x, y_inf, ws);
    EXPECT_LE(facenet::testing::max_abs_diff(y_inf, y_eval), 1e-12) << "batch " << n;
  }
}

TEST(Blocks, BackwardBeforeForwardIsAnError) {
  auto b = blocks::make_block17<double>(0.1, 5, 2);
  Tensor<double> dy(shape{1, 5, 3, 3}), dx;
  EXPECT_THROW(b->backward(dy, dx), facenet::error);
}
