#include "facenet/kernels/elementwise.hpp"

#include "facenet/kernels/reference/elementwise.hpp"
#include "testing.hpp"

namespace k = facenet::kernels;
namespace ref = facenet::kernels::reference;
using facenet::shape;
using facenet::Tensor;
using facenet::testing::max_abs_diff;
using facenet::testing::random_tensor;

namespace {

template <class T>
class elementwise : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(elementwise, scalar_types);

// Includes one tensor large enough to take the threaded path.
const shape elementwise_shapes[] = {{1, 3, 7, 5}, {3, 17, 5, 9}, {3, 5}, {1}, {3, 37, 21, 23}};

TYPED_TEST(elementwise, matches_reference) {
  using T = TypeParam;
  for (const auto& s : elementwise_shapes) {
    const auto a = random_tensor<T>(s, 1), b = random_tensor<T>(s, 2);
    Tensor<T> y, y_ref;
    k::add(a, b, y);
    ref::add(a, b, y_ref);
    EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str();
    k::multiply(a, b, y);
    ref::multiply(a, b, y_ref);
    EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str();
    k::scale(a, T(0.37), y);
    ref::scale(a, T(0.37), y_ref);
    EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str();
    k::add_inplace(y, b);
    ref::add_inplace(y_ref, b);
    EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str();
    k::axpy(T(-1.5), a, y);
    ref::axpy(T(-1.5), a, y_ref);
    EXPECT_LE(max_abs_diff(y, y_ref), 1e-6) << s.str();  // fma vs separate multiply-add
  }
}

TEST(elementwise_errors, mismatched_shapes_throw) {
  Tensor<float> a({2, 3}), b({3, 2}), y;
  EXPECT_THROW(k::add(a, b, y), facenet::shape_error);
  EXPECT_THROW(k::add_inplace(a, b), facenet::shape_error);
  EXPECT_THROW(k::axpy(1.0f, a, b), facenet::shape_error);
  Tensor<float> strided = Tensor<float>({2, 4}).slice(1, 0, 3);
  EXPECT_THROW(k::scale(strided, 2.0f, y), facenet::shape_error);
}

}  // namespace
