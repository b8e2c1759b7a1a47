#include "facenet/kernels/dropout.hpp"

#include "facenet/kernels/reference/dropout.hpp"
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
class dropout : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(dropout, scalar_types);

TYPED_TEST(dropout, matches_reference) {
  using T = TypeParam;
  // The large shape takes the threaded path: the mask must not depend on the split.
  for (const shape& s : {shape{1, 3, 7, 5}, shape{3, 17}, shape{3, 37, 21, 23}})
    for (T p : {T(0), T(0.2), T(0.5), T(1)})
      for (bool training : {true, false}) {
        const auto x = random_tensor<T>(s, 1), dy = random_tensor<T>(s, 2);
        Tensor<T> y, y_ref, m, m_ref, dx, dx_ref;
        k::dropout_forward(x, p, 42, training, y, m);
        ref::dropout_forward(x, p, 42, training, y_ref, m_ref);
        EXPECT_EQ(max_abs_diff(m, m_ref), 0.0) << s.str() << " p " << p;
        EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str() << " p " << p;
        k::dropout_backward(dy, m, dx);
        ref::dropout_backward(dy, m_ref, dx_ref);
        EXPECT_EQ(max_abs_diff(dx, dx_ref), 0.0);
      }
}

TEST(dropout_values, keeps_one_minus_p_and_preserves_the_mean) {
  const auto x = Tensor<double>::full(shape{200, 500}, 1.0);
  Tensor<double> y, m;
  k::dropout_forward(x, 0.3, 7, true, y, m);
  std::int64_t kept = 0;
  double sum = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) {
    kept += y.data()[i] != 0;
    sum += y.data()[i];
    if (y.data()[i] != 0) {
      EXPECT_DOUBLE_EQ(y.data()[i], 1 / 0.7);
    }
  }
  const double n = static_cast<double>(y.numel());
  EXPECT_NEAR(static_cast<double>(kept) / n, 0.7, 0.005);  // ~5 sigma for 1e5 draws
  EXPECT_NEAR(sum / n, 1.0, 0.01);
  Tensor<double> y2, m2;
  k::dropout_forward(x, 0.3, 8, true, y2, m2);
  EXPECT_GT(max_abs_diff(m, m2), 0.0) << "a different seed must give a different mask";
  k::dropout_forward(x, 1.0, 7, true, y2, m2);
  EXPECT_EQ(max_abs_diff(y2, Tensor<double>(x.shape())), 0.0) << "p = 1 drops everything";
}

TEST(dropout_grad, finite_differences) {
  auto x = random_tensor<double>(shape{3, 5, 4, 3}, 3);
  const auto r = random_tensor<double>(x.shape(), 4);
  Tensor<double> y, m, dx;
  k::dropout_forward(x, 0.4, 9, true, y, m);
  k::dropout_backward(r, m, dx);
  check_gradient(x, dx, [&] { Tensor<double> t, mm; k::dropout_forward(x, 0.4, 9, true, t, mm); return dot(t, r); },
                 "dropout dx");
}

TEST(dropout_errors, bad_input_throws) {
  Tensor<float> x({2, 3}), y, m, dx;
  EXPECT_THROW(k::dropout_forward(x, 1.5f, 1, true, y, m), facenet::argument_error);
  EXPECT_THROW(k::dropout_forward(x, -0.1f, 1, true, y, m), facenet::argument_error);
  EXPECT_THROW(k::dropout_backward(x, Tensor<float>({3, 2}), dx), facenet::shape_error);
}

}  // namespace
