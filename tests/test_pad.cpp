#include "facenet/kernels/pad.hpp"

#include "facenet/kernels/reference/pad.hpp"
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
class pad : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(pad, scalar_types);

struct pad_set {
  std::int64_t top, bottom, left, right;
};
const pad_set pad_sets[] = {{0, 0, 0, 0}, {1, 1, 1, 1}, {0, 1, 0, 1}, {2, 0, 3, 1}, {3, 3, 0, 0}};
const shape pad_shapes[] = {{1, 3, 7, 5}, {3, 17, 5, 9}, {2, 1, 1, 1}};

TYPED_TEST(pad, matches_reference) {
  using T = TypeParam;
  for (const auto& s : pad_shapes)
    for (const auto& p : pad_sets) {
      const auto x = random_tensor<T>(s, 1);
      Tensor<T> y = random_tensor<T>(s, 9), y_ref, dx, dx_ref;  // stale contents must be overwritten
      k::pad2d_forward(x, p.top, p.bottom, p.left, p.right, y);
      ref::pad2d_forward(x, p.top, p.bottom, p.left, p.right, y_ref);
      EXPECT_EQ(max_abs_diff(y, y_ref), 0.0) << s.str();
      const auto dy = random_tensor<T>(y.shape(), 2);
      k::pad2d_backward(dy, p.top, p.bottom, p.left, p.right, dx);
      ref::pad2d_backward(dy, p.top, p.bottom, p.left, p.right, dx_ref);
      EXPECT_EQ(max_abs_diff(dx, dx_ref), 0.0) << s.str();
    }
}

TEST(pad_values, same_padding_layout) {
  Tensor<float> x = Tensor<float>::full(shape{1, 1, 2, 2}, 1.0f), y;
  k::pad2d_forward(x, 0, 1, 0, 1, y);  // TF "SAME" for an even kernel pads bottom/right
  ASSERT_EQ(y.shape(), (shape{1, 1, 3, 3}));
  EXPECT_EQ(y(0, 0, 0, 0), 1.0f);
  EXPECT_EQ(y(0, 0, 1, 1), 1.0f);
  EXPECT_EQ(y(0, 0, 2, 2), 0.0f);
  EXPECT_EQ(y(0, 0, 0, 2), 0.0f);
}

TEST(pad_grad, finite_differences) {
  auto x = random_tensor<double>(shape{2, 3, 5, 4}, 3);
  const auto r = random_tensor<double>(shape{2, 3, 8, 6}, 4);
  Tensor<double> dx;
  k::pad2d_backward(r, 2, 1, 0, 2, dx);
  check_gradient(x, dx, [&] { Tensor<double> t; k::pad2d_forward(x, 2, 1, 0, 2, t); return dot(t, r); }, "pad dx");
}

TEST(pad_errors, bad_input_throws) {
  Tensor<float> x({1, 2, 3, 3}), y;
  EXPECT_THROW(k::pad2d_forward(x, -1, 0, 0, 0, y), facenet::argument_error);
  EXPECT_THROW(k::pad2d_forward(Tensor<float>({2, 3}), 1, 1, 1, 1, y), facenet::shape_error);
  EXPECT_THROW(k::pad2d_backward(x, 2, 2, 0, 0, y), facenet::shape_error);
}

}  // namespace
