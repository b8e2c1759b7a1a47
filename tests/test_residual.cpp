#include "facenet/kernels/residual.hpp"

#include "facenet/kernels/reference/residual.hpp"
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
class residual : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(residual, scalar_types);

TYPED_TEST(residual, matches_reference) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 1e-6 : 1e-15;  // fma vs multiply-add
  for (const shape& s : {shape{1, 3, 7, 5}, shape{3, 17, 5, 9}, shape{1, 257, 17, 17}})
    for (bool relu : {false, true})
      for (T scale : {T(0.17), T(1)}) {
        const auto x = random_tensor<T>(s, 1), b = random_tensor<T>(s, 2), dy = random_tensor<T>(s, 3);
        Tensor<T> y, y_ref, dx, dx_ref, db, db_ref;
        k::scale_add_forward(x, b, scale, y, relu);
        ref::scale_add_forward(x, b, scale, y_ref, relu);
        EXPECT_LE(max_abs_diff(y, y_ref), tol) << s.str() << " relu " << relu;
        k::scale_add_backward(dy, y, scale, dx, db, relu);
        ref::scale_add_backward(dy, y, scale, dx_ref, db_ref, relu);
        EXPECT_EQ(max_abs_diff(dx, dx_ref), 0.0) << s.str() << " relu " << relu;
        EXPECT_EQ(max_abs_diff(db, db_ref), 0.0) << s.str() << " relu " << relu;
      }
}

TEST(residual_grad, finite_differences) {
  for (bool relu : {false, true}) {
    auto x = random_tensor<double>(shape{2, 5, 3, 7}, 4), b = random_tensor<double>(shape{2, 5, 3, 7}, 5);
    const auto r = random_tensor<double>(x.shape(), 6);
    Tensor<double> y, dx, db;
    k::scale_add_forward(x, b, 0.2, y, relu);
    k::scale_add_backward(r, y, 0.2, dx, db, relu);
    auto loss = [&] { Tensor<double> t; k::scale_add_forward(x, b, 0.2, t, relu); return dot(t, r); };
    check_gradient(x, dx, loss, relu ? "scale_add+relu dx" : "scale_add dx");
    check_gradient(b, db, loss, relu ? "scale_add+relu dbranch" : "scale_add dbranch");
  }
}

TEST(residual_errors, bad_shapes_throw) {
  Tensor<float> x({1, 3, 4, 4}), b({1, 3, 4, 5}), y, dx, db;
  EXPECT_THROW(k::scale_add_forward(x, b, 0.1f, y), facenet::shape_error);
  EXPECT_THROW(k::scale_add_backward(x, b, 0.1f, dx, db, true), facenet::shape_error);
}

}  // namespace
