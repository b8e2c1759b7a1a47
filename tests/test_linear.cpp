#include "facenet/kernels/linear.hpp"

#include "facenet/kernels/reference/linear.hpp"
#include "testing.hpp"

namespace k = facenet::kernels;
namespace ref = facenet::kernels::reference;
using facenet::shape;
using facenet::Tensor;
using facenet::testing::check_gradient;
using facenet::testing::dot;
using facenet::testing::max_rel_diff;
using facenet::testing::random_tensor;

namespace {

template <class T>
class linear : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(linear, scalar_types);

struct dims {
  std::int64_t batch, in, out;
};
// Odd sizes around the SIMD widths and GEMM tiles, plus a 128-wide embedding layer.
const dims cases[] = {{1, 3, 5}, {3, 17, 9}, {5, 129, 33}, {1, 257, 128}, {1, 1031, 37}, {7, 1, 1}};

TYPED_TEST(linear, matches_reference) {
  using T = TypeParam;
  const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-13;
  for (const auto& c : cases)
    for (bool with_bias : {true, false}) {
      const auto x = random_tensor<T>(shape{c.batch, c.in}, 1), w = random_tensor<T>(shape{c.out, c.in}, 2);
      const auto b = with_bias ? random_tensor<T>(shape{c.out}, 3) : Tensor<T>();
      const auto dy = random_tensor<T>(shape{c.batch, c.out}, 4);
      Tensor<T> y, y_ref, dx, dx_ref, dw, dw_ref, db, db_ref;
      k::linear_forward(x, w, b, y);
      ref::linear_forward(x, w, b, y_ref);
      EXPECT_LE(max_rel_diff(y, y_ref), tol) << c.batch << "x" << c.in << "->" << c.out;
      k::linear_backward_data(dy, x, w, dx);
      ref::linear_backward_data(dy, x, w, dx_ref);
      EXPECT_LE(max_rel_diff(dx, dx_ref), tol);
      k::linear_backward_weight(dy, x, dw, db);
      ref::linear_backward_weight(dy, x, dw_ref, db_ref);
      EXPECT_LE(max_rel_diff(dw, dw_ref), tol);
      EXPECT_LE(max_rel_diff(db, db_ref), tol);
    }
}

TEST(linear_values, flattens_trailing_dims) {
  const auto x4 = random_tensor<float>(shape{2, 6, 1, 1}, 5), w = random_tensor<float>(shape{3, 6}, 6);
  Tensor<float> y4, y2, dx;
  k::linear_forward(x4, w, Tensor<float>(), y4);
  k::linear_forward(x4.reshape(shape{2, 6}), w, Tensor<float>(), y2);
  EXPECT_EQ(facenet::testing::max_abs_diff(y4, y2), 0.0);
  k::linear_backward_data(y4, x4, w, dx);
  EXPECT_EQ(dx.shape(), x4.shape());
}

// The inference plan: same values as linear_forward to the bit (the layer's training and inference
// paths agree) and each sample's output independent of the batch it came in.
TYPED_TEST(linear, plan_matches_forward_bit_for_bit) {
  using T = TypeParam;
  const dims plan_cases[] = {{1, 3, 5}, {3, 17, 9}, {5, 129, 33}, {1, 257, 128}, {2, 1031, 37}, {16, 1792, 512}, {7, 1, 1}};
  for (const auto& c : plan_cases)
    for (bool with_bias : {true, false}) {
      const auto x = random_tensor<T>(shape{c.batch, c.in}, 11), w = random_tensor<T>(shape{c.out, c.in}, 12);
      const auto b = with_bias ? random_tensor<T>(shape{c.out}, 13) : Tensor<T>();
      const k::linear_plan<T> plan(w, b);
      Tensor<T> y, y_ref, y_forward, ws;
      plan.forward(x, y, ws);
      ref::linear_forward(x, w, b, y_ref);
      const double tol = std::is_same<T, float>::value ? 1e-5 : 1e-13;
      EXPECT_LE(max_rel_diff(y, y_ref), tol) << c.batch << "x" << c.in << "->" << c.out;
      // linear_forward takes GEMM's dot-product path (another summation order) for <= 12 outputs.
      if (c.out > 12) {
        k::linear_forward(x, w, b, y_forward);
        EXPECT_EQ(facenet::testing::max_abs_diff(y, y_forward), 0.0) << c.batch << "x" << c.in << "->" << c.out;
      }
      for (std::int64_t i = 0; i < c.batch; ++i) {
        Tensor<T> one = Tensor<T>::uninitialized(shape{1, c.in}), y1;
        std::copy(x.data() + i * c.in, x.data() + (i + 1) * c.in, one.data());
        plan.forward(one, y1, ws);
        for (std::int64_t o = 0; o < c.out; ++o) ASSERT_EQ(y1.data()[o], y.data()[i * c.out + o]) << "sample " << i << ", output " << o;
      }
    }
}

TEST(linear_plan, flattens_trailing_dims_and_checks_shapes) {
  const auto x4 = random_tensor<float>(shape{2, 6, 1, 1}, 14), w = random_tensor<float>(shape{3, 6}, 15);
  const k::linear_plan<float> plan(w, Tensor<float>());
  Tensor<float> y4, y2, ws;
  plan.forward(x4, y4, ws);
  k::linear_forward(x4.reshape(shape{2, 6}), w, Tensor<float>(), y2);
  EXPECT_EQ(y4.shape(), (shape{2, 3}));
  EXPECT_EQ(facenet::testing::max_abs_diff(y4, y2), 0.0);
  EXPECT_THROW(plan.forward(Tensor<float>({2, 5}), y2, ws), facenet::shape_error);
  EXPECT_THROW(plan.forward(Tensor<float>({6}), y2, ws), facenet::shape_error);
  EXPECT_THROW(k::linear_plan<float>(w, Tensor<float>({4})), facenet::shape_error);
  EXPECT_THROW(k::linear_plan<float>(Tensor<float>({3, 6, 1}), Tensor<float>()), facenet::shape_error);
  EXPECT_THROW(k::linear_plan<float>().forward(x4, y2, ws), facenet::argument_error);
}

TEST(linear_grad, finite_differences) {
  auto x = random_tensor<double>(shape{3, 7}, 7), w = random_tensor<double>(shape{5, 7}, 8),
       b = random_tensor<double>(shape{5}, 9);
  const auto r = random_tensor<double>(shape{3, 5}, 10);
  Tensor<double> dx, dw, db;
  k::linear_backward_data(r, x, w, dx);
  k::linear_backward_weight(r, x, dw, db);
  auto loss = [&] { Tensor<double> t; k::linear_forward(x, w, b, t); return dot(t, r); };
  check_gradient(x, dx, loss, "linear dx");
  check_gradient(w, dw, loss, "linear dw");
  check_gradient(b, db, loss, "linear db");
}

TEST(linear_errors, bad_shapes_throw) {
  Tensor<float> x({2, 6}), w({3, 5}), y;
  EXPECT_THROW(k::linear_forward(x, w, Tensor<float>(), y), facenet::shape_error);
  EXPECT_THROW(k::linear_forward(x, Tensor<float>({3, 6}), Tensor<float>({4}), y), facenet::shape_error);
  EXPECT_THROW(k::linear_backward_data(Tensor<float>({2, 4}), x, Tensor<float>({3, 6}), y), facenet::shape_error);
  Tensor<float> dw, db;
  EXPECT_THROW(k::linear_backward_weight(Tensor<float>({3, 3}), x, dw, db), facenet::shape_error);
}

}  // namespace
