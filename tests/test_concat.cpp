#include "facenet/kernels/concat.hpp"

#include "facenet/kernels/reference/concat.hpp"
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
class concat : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(concat, scalar_types);

template <class T>
std::vector<const Tensor<T>*> pointers(const std::vector<Tensor<T>>& v) {
  std::vector<const Tensor<T>*> p;
  for (const auto& t : v) p.push_back(&t);
  return p;
}

TYPED_TEST(concat, channels_match_reference) {
  using T = TypeParam;
  for (std::int64_t n : {1, 3})
    for (const shape& plane : {shape{7, 5}, shape{1, 1}}) {
      std::vector<Tensor<T>> parts;
      std::vector<std::int64_t> channels = {3, 17, 1, 5};
      for (std::size_t i = 0; i < channels.size(); ++i)
        parts.push_back(random_tensor<T>(shape{n, channels[i], plane[0], plane[1]}, static_cast<std::uint32_t>(i)));
      Tensor<T> y, y_ref;
      k::concat_channels(pointers(parts), y);
      ref::concat_channels(pointers(parts), y_ref);
      ASSERT_EQ(y.shape(), (shape{n, 26, plane[0], plane[1]}));
      EXPECT_EQ(max_abs_diff(y, y_ref), 0.0);
      std::vector<Tensor<T>> dx(4), dx_ref(4);
      k::split_channels(y, channels, {&dx[0], &dx[1], &dx[2], &dx[3]});
      ref::split_channels(y, channels, {&dx_ref[0], &dx_ref[1], &dx_ref[2], &dx_ref[3]});
      for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(max_abs_diff(dx[i], parts[i]), 0.0) << "split must invert concat, part " << i;
        EXPECT_EQ(max_abs_diff(dx[i], dx_ref[i]), 0.0);
      }
    }
}

// Channel slices of a batch (each image dense, the images apart) concatenate as their dense copies.
TYPED_TEST(concat, channel_slices_of_a_batch) {
  using T = TypeParam;
  const auto whole = random_tensor<T>(shape{3, 9, 4, 5}, 6), other = random_tensor<T>(shape{3, 2, 4, 5}, 7);
  const Tensor<T> slice = whole.slice(1, 2, 4), dense = slice.clone();
  ASSERT_FALSE(slice.is_contiguous());
  Tensor<T> y, y_ref;
  k::depth_concat_forward<T>({&other, &slice}, y);
  ref::depth_concat_forward<T>({&other, &dense}, y_ref);
  EXPECT_EQ(max_abs_diff(y, y_ref), 0.0);
  const Tensor<T> columns = whole.slice(3, 1, 3), dense_columns = columns.clone();  // rows apart in an image
  EXPECT_THROW(k::concat_channels<T>({&dense_columns, &columns}, y), facenet::shape_error);
}

TYPED_TEST(concat, rank2_features) {
  using T = TypeParam;
  const auto a = random_tensor<T>(shape{3, 5}, 1), b = random_tensor<T>(shape{3, 2}, 2);
  Tensor<T> y;
  k::concat_channels<T>({&a, &b}, y);
  ASSERT_EQ(y.shape(), (shape{3, 7}));
  EXPECT_EQ(y(2, 4), a(2, 4));
  EXPECT_EQ(y(2, 6), b(2, 1));
}

TYPED_TEST(concat, depth_concat_matches_reference) {
  using T = TypeParam;
  for (std::int64_t n : {1, 3}) {
    // OpenFace inception 3c: 3x3 stride-2 branches (smaller) beside a pooled branch.
    std::vector<Tensor<T>> parts = {random_tensor<T>(shape{n, 3, 7, 9}, 1), random_tensor<T>(shape{n, 5, 4, 4}, 2),
                                    random_tensor<T>(shape{n, 2, 7, 6}, 3), random_tensor<T>(shape{n, 1, 1, 9}, 4)};
    Tensor<T> y, y_ref;
    k::depth_concat_forward(pointers(parts), y);
    ref::depth_concat_forward(pointers(parts), y_ref);
    ASSERT_EQ(y.shape(), (shape{n, 11, 7, 9}));
    EXPECT_EQ(max_abs_diff(y, y_ref), 0.0);
    // The 4x4 part of image 0 starts at row floor(3/2) = 1, column floor(5/2) = 2.
    EXPECT_EQ(y(0, 3, 1, 2), parts[1](0, 0, 0, 0));
    EXPECT_EQ(y(0, 3, 0, 2), T(0));
    EXPECT_EQ(y(0, 3, 1, 1), T(0));
    const auto dy = random_tensor<T>(y.shape(), 5);
    std::vector<shape> shapes;
    for (const auto& p : parts) shapes.push_back(p.shape());
    std::vector<Tensor<T>> dx(4), dx_ref(4);
    k::depth_concat_backward(dy, shapes, {&dx[0], &dx[1], &dx[2], &dx[3]});
    ref::depth_concat_backward(dy, shapes, {&dx_ref[0], &dx_ref[1], &dx_ref[2], &dx_ref[3]});
    for (std::size_t i = 0; i < 4; ++i) EXPECT_EQ(max_abs_diff(dx[i], dx_ref[i]), 0.0) << i;
  }
}

TEST(concat_grad, depth_concat) {
  std::vector<Tensor<double>> parts = {random_tensor<double>(shape{2, 2, 5, 5}, 1),
                                       random_tensor<double>(shape{2, 3, 2, 3}, 2)};
  const auto r = random_tensor<double>(shape{2, 5, 5, 5}, 3);
  std::vector<Tensor<double>> dx(2);
  k::depth_concat_backward(r, {parts[0].shape(), parts[1].shape()}, {&dx[0], &dx[1]});
  auto loss = [&] {
    Tensor<double> t;
    k::depth_concat_forward(pointers(parts), t);
    return dot(t, r);
  };
  check_gradient(parts[0], dx[0], loss, "depth concat part 0");
  check_gradient(parts[1], dx[1], loss, "depth concat part 1");
}

TEST(concat_errors, bad_input_throws) {
  Tensor<float> a({2, 3, 4, 4}), b({2, 3, 4, 5}), c({3, 3, 4, 4}), y, d0, d1;
  EXPECT_THROW(k::concat_channels<float>({&a, &b}, y), facenet::shape_error);
  EXPECT_THROW(k::concat_channels<float>({&a, &c}, y), facenet::shape_error);
  EXPECT_THROW(k::depth_concat_forward<float>({&a, &c}, y), facenet::shape_error);
  EXPECT_THROW(k::concat_channels<float>({}, y), facenet::argument_error);
  EXPECT_THROW(k::concat_channels<float>({&a, nullptr}, y), facenet::argument_error);
  EXPECT_THROW(k::split_channels(a, {1, 1}, {&d0, &d1}), facenet::shape_error);
  EXPECT_THROW(k::split_channels(a, {1, 2}, {&d0}), facenet::argument_error);
}

}  // namespace
