#include "facenet/kernels/l2_normalize.hpp"

#include "facenet/kernels/reference/l2_normalize.hpp"
#include "testing.hpp"

namespace k = facenet::kernels;
namespace ref = facenet::kernels::reference;
using facenet::shape;
using facenet::Tensor;
using facenet::testing::check_gradient;
using facenet::testing::dot;
using facenet::testing::max_abs_diff;
using facenet::testing::max_rel_diff;
using facenet::testing::random_tensor;

namespace {

template <class T>
class l2_normalize : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(l2_normalize, scalar_types);

TYPED_TEST(l2_normalize, matches_reference) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 1e-6 : 1e-15;
  for (const shape& s : {shape{1, 3}, shape{3, 17}, shape{5, 128}, shape{7, 513}}) {
    auto x = random_tensor<T>(s, 1), dy = random_tensor<T>(s, 2);
    for (std::int64_t d = 0; d < s[1]; ++d) x(0, d) = T(0);  // a clamped row
    Tensor<T> y, y_ref, dx, dx_ref;
    k::l2_normalize_forward(x, y);
    ref::l2_normalize_forward(x, y_ref);
    EXPECT_LE(max_abs_diff(y, y_ref), tol) << s.str();
    k::l2_normalize_backward(dy, x, dx);
    ref::l2_normalize_backward(dy, x, dx_ref);
    EXPECT_LE(max_rel_diff(dx, dx_ref), tol) << s.str();
  }
}

// Values and gradients of torch.nn.functional.normalize (PyTorch 1.13, float64), incl. clamped rows.
TEST(l2_normalize_pytorch, values_and_gradients) {
  Tensor<double> x({3, 3}), g({3, 3}), y, dx;
  const double xv[] = {3, -4, 12, 1e-13, -2e-13, 0, 0, 0, 0};
  const double gv[] = {0.5, 1, -2, 1, 2, 3, 1, -1, 0.5};
  std::copy(xv, xv + 9, x.begin());
  std::copy(gv, gv + 9, g.begin());
  k::l2_normalize_forward(x, y);
  k::l2_normalize_backward(g, x, dx);
  const double want_y[] = {0.23076923076923078, -0.3076923076923077, 0.9230769230769231, 0.1, -0.2, 0, 0, 0, 0};
  const double want_dx[] = {0.07464724624487938, 0.028675466545289033, -0.009103322712790185, 1e12, 2e12, 3e12,
                            1e12, -1e12, 5e11};
  for (int i = 0; i < 9; ++i) {
    EXPECT_NEAR(y.data()[i], want_y[i], 1e-15) << i;
    EXPECT_NEAR(dx.data()[i], want_dx[i], 1e-15 * std::max(1.0, std::abs(want_dx[i]))) << i;
  }
}

TEST(l2_normalize_grad, finite_differences) {
  auto x = random_tensor<double>(shape{4, 9}, 3);
  const auto r = random_tensor<double>(x.shape(), 4);
  Tensor<double> dx;
  k::l2_normalize_backward(r, x, dx);
  check_gradient(x, dx, [&] { Tensor<double> t; k::l2_normalize_forward(x, t); return dot(t, r); }, "l2_normalize dx");
}

TEST(l2_normalize_errors, bad_input_throws) {
  Tensor<float> y, dx;
  EXPECT_THROW(k::l2_normalize_forward(Tensor<float>({2, 3, 1, 1}), y), facenet::shape_error);
  EXPECT_THROW(k::l2_normalize_forward(Tensor<float>({2, 3}), y, 0.0f), facenet::argument_error);
  EXPECT_THROW(k::l2_normalize_backward(Tensor<float>({2, 4}), Tensor<float>({2, 3}), dx), facenet::shape_error);
}

}  // namespace
