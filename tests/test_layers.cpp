// Layers: finite-difference checks in double of every layer's backward (training and eval), the
// state_dict names they expose, the inference forms (folded BN, packed plans) against forward, and
// errors for misuse.
#include <cmath>
#include <limits>
#include <gtest/gtest.h>

#include "facenet/layers/activation.hpp"
#include "facenet/layers/batch_norm.hpp"
#include "facenet/layers/conv2d.hpp"
#include "facenet/layers/dropout.hpp"
#include "facenet/layers/linear.hpp"
#include "facenet/layers/lrn.hpp"
#include "facenet/layers/normalize.hpp"
#include "facenet/layers/pool.hpp"
#include "facenet/layers/sequential.hpp"
#include "model_testing.hpp"

using namespace facenet;
using facenet::testing::check_module_gradients;
using facenet::testing::max_abs_diff;
using facenet::testing::names_of;
using facenet::testing::random_tensor;
using facenet::testing::randomize_parameters;

TEST(Conv2dLayer, GradientsWithAndWithoutBias) {
  layers::conv2d<double> with_bias(layers::conv2d_options{3, 4, 3, 2, 2, 1, 1, 0, true});
  randomize_parameters(with_bias, 1);
  check_module_gradients(with_bias, shape{2, 3, 7, 5}, true, 2);
  layers::conv2d<double> no_bias(layers::conv_spec(2, 3, 5, 2, 2));
  randomize_parameters(no_bias, 3);
  check_module_gradients(no_bias, shape{1, 2, 9, 8}, true, 4);
  EXPECT_EQ(names_of(with_bias), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_EQ(names_of(no_bias), (std::vector<std::string>{"weight"}));
}

TEST(Conv2dLayer, PlanMatchesForwardAndFusesBatchNorm) {
  layers::conv2d<double> conv(layers::conv_spec(3, 5, 3, 1, 1, true));
  layers::batch_norm<double> bn(5, 1e-3);
  randomize_parameters(conv, 5);
  randomize_parameters(bn, 6);
  const Tensor<double> x = random_tensor<double>(shape{2, 3, 6, 7}, 7);
  Tensor<double> c, expected, got;
  conv.forward(x, c, false);
  bn.forward(c, expected, false);
  conv.prepare_fused(&bn, false);
  layers::workspace<double> ws;
  conv.infer(x, got, ws);
  EXPECT_LE(max_abs_diff(got, expected), 1e-12);
  // Scaled residual + ReLU in the epilogue: relu(r + s * conv(x)).
  const Tensor<double> r = random_tensor<double>(expected.shape(), 8);
  conv.prepare_fused(nullptr, true);
  conv.infer_residual(x, got, ws, &r, 0.25);
  for (std::int64_t i = 0; i < c.numel(); ++i)
    EXPECT_NEAR(got.data()[i], std::max(0.0, r.data()[i] + 0.25 * c.data()[i]), 1e-12);
}

TEST(Conv2dLayer, InferBeforePrepareAndBadInputAreErrors) {
  layers::conv2d<float> conv(layers::conv_spec(3, 4, 3));
  layers::workspace<float> ws;
  Tensor<float> x(shape{1, 3, 5, 5}), y;
  EXPECT_THROW(conv.infer(x, y, ws), argument_error);
  Tensor<float> wrong(shape{1, 2, 5, 5});
  EXPECT_THROW(conv.forward(wrong, y, false), shape_error);
  EXPECT_THROW(layers::conv2d<float>(layers::conv_spec(0, 4, 3)), argument_error);
  Tensor<float> dy(shape{1, 4, 3, 3}), dx;
  layers::conv2d<float> fresh(layers::conv_spec(3, 4, 3));
  EXPECT_THROW(fresh.backward(dy, dx), argument_error);
}

TEST(BatchNormLayer, GradientsTrainingAndEval2dAnd1d) {
  layers::batch_norm<double> bn(3, 1e-3);
  randomize_parameters(bn, 9);
  check_module_gradients(bn, shape{2, 3, 4, 5}, true, 10);
  check_module_gradients(bn, shape{2, 3, 4, 5}, false, 11);
  layers::batch_norm<double> bn1d(6, 1e-5);
  randomize_parameters(bn1d, 12);
  check_module_gradients(bn1d, shape{5, 6}, true, 13);
  EXPECT_EQ(names_of(bn), (std::vector<std::string>{"weight", "bias", "running_mean", "running_var"}));
}

TEST(BatchNormLayer, TrainingUpdatesRunningStatistics) {
  layers::batch_norm<double> bn(2, 1e-3, 0.1);
  Tensor<double> x = random_tensor<double>(shape{4, 2, 3, 3}, 14, 1.0, 3.0), y;
  bn.forward(x, y, true);
  double mean0 = 0;
  for (std::int64_t n = 0; n < 4; ++n)
    for (std::int64_t i = 0; i < 9; ++i) mean0 += x.data()[(n * 2) * 9 + i];
  EXPECT_NEAR(bn.running_mean.data()[0], 0.1 * mean0 / 36, 1e-12);
  Tensor<double> y_eval;
  bn.forward(x, y_eval, false);
  EXPECT_GT(max_abs_diff(y, y_eval), 1e-3);  // eval uses running, not batch, statistics
}

TEST(LinearLayer, GradientsAndFlattening) {
  layers::linear<double> fc(12, 5, true);
  randomize_parameters(fc, 15);
  check_module_gradients(fc, shape{3, 3, 2, 2}, true, 16);  // [N, C, H, W] read as [N, 12]
  layers::linear<double> no_bias(7, 4, false);
  randomize_parameters(no_bias, 17);
  check_module_gradients(no_bias, shape{2, 7}, true, 18);
  EXPECT_EQ(names_of(no_bias), (std::vector<std::string>{"weight"}));
  Tensor<double> bad(shape{2, 8}), y;
  EXPECT_THROW(no_bias.forward(bad, y, false), shape_error);
}

TEST(LinearLayer, LinearBnFoldsForInference) {
  layers::linear_bn<double> m(10, 4, false, 1e-3, "last_linear", "last_bn");
  randomize_parameters(m, 19);
  check_module_gradients(m, shape{5, 10, 1, 1}, true, 20);
  const Tensor<double> x = random_tensor<double>(shape{3, 10, 1, 1}, 21);
  Tensor<double> expected, got;
  m.forward(x, expected, false);
  m.prepare_inference();
  layers::workspace<double> ws;
  m.infer(x, got, ws);
  EXPECT_LE(max_abs_diff(got, expected), 1e-12);
  EXPECT_EQ(names_of(m), (std::vector<std::string>{"last_linear.weight", "last_bn.weight", "last_bn.bias",
                                                    "last_bn.running_mean", "last_bn.running_var"}));
}

TEST(PoolLayer, MaxAvgL2AndGlobalGradients) {
  layers::pool2d<double> max_pad(layers::pool_kind::max, 3, 2, 1);
  check_module_gradients(max_pad, shape{2, 3, 7, 6}, true, 22);
  layers::pool2d<double> avg(layers::pool_kind::avg, 3, 1);
  check_module_gradients(avg, shape{1, 2, 5, 5}, true, 23);
  layers::pool2d<double> l2(layers::pool_kind::l2, 3, 3);
  check_module_gradients(l2, shape{2, 2, 7, 7}, true, 24);
  layers::pool2d<double> global(layers::pool_kind::avg, 0, 1);
  check_module_gradients(global, shape{2, 3, 3, 4}, true, 25);
  Tensor<double> y;
  global.forward(random_tensor<double>(shape{2, 3, 3, 4}, 26), y, false);
  EXPECT_EQ(y.shape(), (shape{2, 3, 1, 1}));
  EXPECT_THROW(layers::pool2d<double>(layers::pool_kind::max, 0, 1), argument_error);
}

// infer() takes the SIMD max pool without indices, forward() the indexed one backward needs: same
// values, NaN propagation and ceil-mode edge windows included.
TEST(PoolLayer, MaxInferMatchesForward) {
  layers::pool2d<float> pool(layers::pool_kind::max, 3, 2, 1, true);
  Tensor<float> x = random_tensor<float>(shape{2, 5, 19, 18}, 40);
  x.data()[7 * 18 + 4] = std::numeric_limits<float>::quiet_NaN();
  Tensor<float> trained, inferred;
  pool.forward(x, trained, true);
  layers::workspace<float> ws;
  pool.infer(x, inferred, ws);
  ASSERT_EQ(inferred.shape(), trained.shape());
  for (std::int64_t i = 0; i < trained.numel(); ++i) {
    const float a = trained.data()[i], b = inferred.data()[i];
    EXPECT_TRUE(a == b || (std::isnan(a) && std::isnan(b))) << "element " << i << ": " << a << " vs " << b;
  }
  EXPECT_TRUE(std::isnan(inferred.data()[3 * inferred.size(3) + 2]));  // output (3, 2)'s window holds the NaN
}

TEST(LrnLayer, Gradients) {
  layers::lrn<double> lrn(5, 1e-2, 0.75, 1.0);  // a larger alpha than NN4's so the check sees the coupling
  check_module_gradients(lrn, shape{2, 7, 3, 3}, true, 27);
}

TEST(NormalizeLayer, GradientsAndUnitRows) {
  layers::l2_normalize<double> norm;
  check_module_gradients(norm, shape{3, 8}, true, 28);
  Tensor<double> y;
  norm.forward(random_tensor<double>(shape{2, 5}, 29), y, false);
  for (std::int64_t n = 0; n < 2; ++n) {
    double s = 0;
    for (std::int64_t i = 0; i < 5; ++i) s += y(n, i) * y(n, i);
    EXPECT_NEAR(s, 1.0, 1e-12);
  }
}

TEST(DropoutLayer, TrainingMasksEvalIsIdentity) {
  layers::dropout<double> d(0.5, 7);
  const Tensor<double> x = random_tensor<double>(shape{4, 64}, 30);
  Tensor<double> y, dx;
  d.forward(x, y, false);
  EXPECT_EQ(max_abs_diff(y, x), 0.0);
  d.forward(x, y, true);
  std::int64_t zeros = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    if (y.data()[i] == 0)
      ++zeros;
    else
      EXPECT_NEAR(y.data()[i], 2 * x.data()[i], 1e-12);
  }
  EXPECT_GT(zeros, 64);
  EXPECT_LT(zeros, 192);
  const Tensor<double> dy = random_tensor<double>(y.shape(), 31);
  d.backward(dy, dx);
  for (std::int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(dx.data()[i] == 0, y.data()[i] == 0);
  Tensor<double> y2;
  d.forward(x, y2, true);
  EXPECT_GT(max_abs_diff(y2, y), 0.0);  // a fresh mask each step
  EXPECT_THROW(layers::dropout<double>(1.0), argument_error);
}

TEST(Sequential, ChainsNamesAndGradients) {
  layers::sequential<double> seq;
  seq.add("0", std::make_unique<layers::conv2d<double>>(layers::conv_spec(2, 3, 3, 1, 1, true)));
  seq.add("", std::make_unique<layers::relu<double>>());
  seq.add("2", std::make_unique<layers::pool2d<double>>(layers::pool_kind::max, 2, 2));
  randomize_parameters(seq, 32);
  check_module_gradients(seq, shape{2, 2, 6, 6}, true, 33);
  EXPECT_EQ(names_of(seq), (std::vector<std::string>{"0.weight", "0.bias"}));
  layers::sequential<double> empty;
  Tensor<double> x(shape{1, 1, 1, 1}), y;
  EXPECT_THROW(empty.forward(x, y, false), argument_error);
}

TEST(Workspace, SlotsAreReusedInOrder) {
  layers::workspace<float> ws;
  const std::size_t m = ws.mark();
  Tensor<float>& a = ws.take();
  a.resize(shape{100});
  const float* data = a.data();
  ws.release(m);
  Tensor<float>& again = ws.take();
  EXPECT_EQ(&again, &a);
  again.resize(shape{50});
  EXPECT_EQ(again.data(), data);  // smaller requests reuse the buffer
}
