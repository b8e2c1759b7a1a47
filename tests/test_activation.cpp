#include "facenet/kernels/activation.hpp"

#include "facenet/kernels/reference/activation.hpp"
#include "testing.hpp"

namespace k = facenet::kernels;
namespace ref = facenet::kernels::reference;
using facenet::shape;
using facenet::Tensor;
using facenet::testing::check_gradient;
using facenet::testing::dot;
using facenet::testing::max_abs_diff;
using facenet::testing::random_tensor;

namespace {

template <class T>
class activation : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(activation, scalar_types);

// The last shapes are large enough to take the threaded paths.
const shape activation_shapes[] = {{1, 3, 7, 5}, {3, 17, 5, 9}, {3, 5}, {1, 33}, {2, 19, 1, 1}, {2, 9, 63, 65}, {5, 40001}};

TYPED_TEST(activation, relu_matches_reference) {
  using T = TypeParam;
  for (const auto& s : activation_shapes) {
    const auto x = random_tensor<T>(s, 1), dy = random_tensor<T>(s, 2);
    Tensor<T> y, y_ref, dx, dx_ref;
    k::relu_forward(x, y);
    ref::relu_forward(x, y_ref);
    EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str();
    k::relu_backward(dy, y, dx);
    ref::relu_backward(dy, y_ref, dx_ref);
    EXPECT_EQ(max_abs_diff(dx, dx_ref), 0.0) << s.str();
  }
}

TYPED_TEST(activation, prelu_matches_reference) {
  using T = TypeParam;
  for (const auto& s : activation_shapes) {
    for (bool shared : {false, true}) {
      const auto x = random_tensor<T>(s, 3), dy = random_tensor<T>(s, 4);
      const auto alpha = random_tensor<T>(shape{shared ? 1 : s[1]}, 5, 0.0, 0.5);
      Tensor<T> y, y_ref, dx, dx_ref, da, da_ref;
      k::prelu_forward(x, alpha, y);
      ref::prelu_forward(x, alpha, y_ref);
      EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str();
      k::prelu_backward(dy, x, alpha, dx, da);
      ref::prelu_backward(dy, x, alpha, dx_ref, da_ref);
      EXPECT_EQ(max_abs_diff(dx, dx_ref), 0.0) << s.str();
      EXPECT_LE(facenet::testing::max_rel_diff(da, da_ref), (std::is_same<T, float>::value ? 1e-5 : 1e-13)) << s.str();
    }
  }
}

TEST(activation_grad, relu) {
  auto x = random_tensor<double>(shape{3, 5, 7, 3}, 6);
  const auto r = random_tensor<double>(x.shape(), 7);
  Tensor<double> y, dx;
  k::relu_forward(x, y);
  k::relu_backward(r, y, dx);
  check_gradient(x, dx, [&] { Tensor<double> t; k::relu_forward(x, t); return dot(t, r); }, "relu dx");
}

TEST(activation_grad, prelu) {
  for (const shape& s : {shape{3, 5, 7, 3}, shape{4, 9}}) {
    auto x = random_tensor<double>(s, 8);
    auto alpha = random_tensor<double>(shape{s[1]}, 9, 0.05, 0.4);
    const auto r = random_tensor<double>(s, 10);
    Tensor<double> dx, da;
    k::prelu_backward(r, x, alpha, dx, da);
    auto loss = [&] { Tensor<double> t; k::prelu_forward(x, alpha, t); return dot(t, r); };
    check_gradient(x, dx, loss, "prelu dx " + s.str());
    check_gradient(alpha, da, loss, "prelu dalpha " + s.str());
  }
}

TEST(activation_errors, bad_shapes_throw) {
  Tensor<float> x({2, 3, 4, 4}), y, dx, da;
  EXPECT_THROW(k::prelu_forward(x, Tensor<float>({4}), y), facenet::shape_error);
  EXPECT_THROW(k::prelu_forward(Tensor<float>({5}), Tensor<float>({1}), y), facenet::shape_error);
  EXPECT_THROW(k::relu_backward(Tensor<float>({2, 3}), Tensor<float>({3, 2}), dx), facenet::shape_error);
  EXPECT_THROW(k::prelu_backward(Tensor<float>({2, 3, 4, 5}), x, Tensor<float>({3}), dx, da), facenet::shape_error);
}

TEST(activation_values, prelu_known_values) {
  Tensor<float> x({1, 2, 1, 2}), alpha({2}), y;
  x(0, 0, 0, 0) = -2;
  x(0, 0, 0, 1) = 3;
  x(0, 1, 0, 0) = -4;
  x(0, 1, 0, 1) = 0;
  alpha(0) = 0.25f;
  alpha(1) = 0.5f;
  k::prelu_forward(x, alpha, y);
  EXPECT_FLOAT_EQ(y(0, 0, 0, 0), -0.5f);
  EXPECT_FLOAT_EQ(y(0, 0, 0, 1), 3.0f);
  EXPECT_FLOAT_EQ(y(0, 1, 0, 0), -2.0f);
  EXPECT_FLOAT_EQ(y(0, 1, 0, 1), 0.0f);
}

}  // namespace
