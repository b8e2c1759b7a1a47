#include "facenet/kernels/softmax.hpp"

#include <cmath>

#include "facenet/kernels/reference/softmax.hpp"
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
class softmax : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(softmax, scalar_types);

// [N, C] rows and feature maps, including a map of more than one 256-pixel block.
// The last two are large enough to take the threaded paths.
const shape softmax_shapes[] = {{1, 3}, {3, 17}, {5, 1031}, {1, 2, 7, 5}, {3, 5, 19, 23}, {2, 1, 3, 3}, {2, 7, 61, 67}, {9, 4099}};

TYPED_TEST(softmax, matches_reference) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 2e-6 : 1e-14;
  for (const auto& s : softmax_shapes) {
    const auto x = random_tensor<T>(s, 1, -8, 8), dy = random_tensor<T>(s, 2);
    Tensor<T> y, y_ref, dx, dx_ref;
    k::softmax_forward(x, y);
    ref::softmax_forward(x, y_ref);
    EXPECT_LE(max_abs_diff(y, y_ref), tol) << s.str();
    k::softmax_backward(dy, y, dx);
    ref::softmax_backward(dy, y_ref, dx_ref);
    EXPECT_LE(max_abs_diff(dx, dx_ref), tol) << s.str();
    k::log_softmax_forward(x, y);
    ref::log_softmax_forward(x, y_ref);
    EXPECT_LE(max_abs_diff(y, y_ref), 10 * tol) << s.str();
    k::log_softmax_backward(dy, y, dx);
    ref::log_softmax_backward(dy, y_ref, dx_ref);
    EXPECT_LE(max_abs_diff(dx, dx_ref), 10 * tol) << s.str();
  }
}

TEST(softmax_values, stable_for_large_logits) {
  Tensor<float> x({1, 3}), y;
  x(0, 0) = 1000.0f;
  x(0, 1) = 1000.0f;
  x(0, 2) = -1000.0f;
  k::softmax_forward(x, y);
  EXPECT_FLOAT_EQ(y(0, 0), 0.5f);
  EXPECT_FLOAT_EQ(y(0, 2), 0.0f);
  k::log_softmax_forward(x, y);
  EXPECT_FLOAT_EQ(y(0, 0), -std::log(2.0f));
  EXPECT_FLOAT_EQ(y(0, 2), -2000.0f - std::log(2.0f));
}

TEST(softmax_values, channels_of_a_map_sum_to_one) {
  const auto x = random_tensor<double>(shape{2, 2, 9, 11}, 3, -5, 5);
  Tensor<double> y;
  k::softmax_forward(x, y);
  for (std::int64_t n = 0; n < 2; ++n)
    for (std::int64_t i = 0; i < 9; ++i)
      for (std::int64_t j = 0; j < 11; ++j) EXPECT_NEAR(y(n, 0, i, j) + y(n, 1, i, j), 1.0, 1e-15);
}

TEST(softmax_grad, finite_differences) {
  for (const shape& s : {shape{3, 7}, shape{2, 4, 3, 5}}) {
    auto x = random_tensor<double>(s, 4, -2, 2);
    const auto r = random_tensor<double>(s, 5);
    Tensor<double> y, dx;
    k::softmax_forward(x, y);
    k::softmax_backward(r, y, dx);
    check_gradient(x, dx, [&] { Tensor<double> t; k::softmax_forward(x, t); return dot(t, r); }, "softmax " + s.str());
    k::log_softmax_forward(x, y);
    k::log_softmax_backward(r, y, dx);
    check_gradient(x, dx, [&] { Tensor<double> t; k::log_softmax_forward(x, t); return dot(t, r); },
                   "log_softmax " + s.str());
  }
}

TEST(softmax_errors, bad_input_throws) {
  Tensor<float> y, dx;
  EXPECT_THROW(k::softmax_forward(Tensor<float>({5}), y), facenet::shape_error);
  EXPECT_THROW(k::softmax_backward(Tensor<float>({2, 3}), Tensor<float>({2, 4}), dx), facenet::shape_error);
}

}  // namespace
