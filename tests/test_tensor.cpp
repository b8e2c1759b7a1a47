#include "facenet/core/tensor.hpp"

#include <algorithm>
#include <cstdint>

#include "testing.hpp"

using facenet::shape;
using facenet::Tensor;

TEST(tensor, default_is_empty) {
  Tensor<float> t;
  EXPECT_TRUE(t.empty());
  EXPECT_EQ(t.rank(), 0);
}

TEST(tensor, aligned_zeroed_contiguous) {
  Tensor<float> t({2, 3, 5, 7});
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % 64, 0u);
  EXPECT_EQ(t.numel(), 210);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.stride(0), 105);
  EXPECT_EQ(t.stride(3), 1);
  for (float v : t) EXPECT_EQ(v, 0.0f);
}

TEST(tensor, views_share_storage) {
  Tensor<double> t({4, 2, 3, 3});
  Tensor<double> b = t.batch(2);
  b(0, 1, 2, 2) = 5.0;
  EXPECT_EQ(t(2, 1, 2, 2), 5.0);
  EXPECT_TRUE(b.shares_storage_with(t));
  Tensor<double> c = t.slice(1, 1, 1);
  EXPECT_FALSE(c.is_contiguous());
  Tensor<double> dense = c.clone();
  EXPECT_TRUE(dense.is_contiguous());
  EXPECT_EQ(dense(2, 0, 2, 2), 5.0);
}

TEST(tensor, shape_errors_are_clear) {
  Tensor<float> t({2, 3});
  try {
    (void)t.reshape(shape{4, 2});
    FAIL() << "reshape to a different element count must throw";
  } catch (const facenet::shape_error& e) {
    EXPECT_NE(std::string(e.what()).find("[facenet.shape]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)t.slice(0, 1, 2), facenet::shape_error);
  EXPECT_THROW((void)t.size(2), facenet::shape_error);
  EXPECT_THROW(facenet::check_shape(t, shape{3, 2}, "test"), facenet::shape_error);
}

TEST(tensor, resize_reuses_buffer) {
  Tensor<float> t({1, 8, 16, 16});
  const float* p = t.data();
  t.resize(shape{1, 4, 16, 16});
  EXPECT_EQ(t.data(), p);
  t.resize(shape{1, 8, 16, 16});
  EXPECT_EQ(t.data(), p);
  t.resize(shape{2, 8, 16, 16});
  EXPECT_NE(t.capacity(), 0);
  EXPECT_EQ(t.numel(), 2 * 8 * 16 * 16);
}

TEST(tensor, strided_copy) {
  auto a = facenet::testing::random_tensor<float>(shape{2, 5, 3, 3}, 7);
  Tensor<float> part = a.slice(1, 2, 3);
  Tensor<float> dst({2, 3, 3, 3});
  dst.copy_from(part);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 3; ++x) EXPECT_EQ(dst(n, c, y, x), a(n, c + 2, y, x));
}

// Views whose dense tail is a row or a single element copy by smaller blocks, both directions.
TEST(tensor, strided_copy_of_row_and_column_views) {
  auto a = facenet::testing::random_tensor<float>(shape{2, 3, 4, 5}, 8);
  Tensor<float> rows({2, 3, 2, 5}), cols({2, 3, 4, 2});
  rows.copy_from(a.slice(2, 1, 2));
  cols.copy_from(a.slice(3, 3, 2));
  Tensor<float> back = a.clone();
  back.slice(3, 0, 2).copy_from(cols);  // into a strided destination
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 5; ++x) {
          if (y < 2) {
            EXPECT_EQ(rows(n, c, y, x), a(n, c, y + 1, x));
          }
          if (x < 2) {
            EXPECT_EQ(cols(n, c, y, x), a(n, c, y, x + 3));
          }
          EXPECT_EQ(back(n, c, y, x), x < 2 ? a(n, c, y, x + 3) : a(n, c, y, x));
        }
}

// Zeros on demand: large buffers are fresh anonymous pages, small ones cleared memory; both read as
// zero, are aligned and writable, including the rounded-up tail SIMD loads may touch.
TEST(tensor, zeros_on_demand_are_zero_aligned_and_writable) {
  for (const facenet::shape& s : {facenet::shape{3, 5}, facenet::shape{1024, 257}, facenet::shape{1024, 256}}) {
    Tensor<float> t = Tensor<float>::zeros_on_demand(s);
    ASSERT_EQ(t.shape(), s);
    EXPECT_TRUE(t.is_contiguous());
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data()) % facenet::tensor_alignment, 0u);
    EXPECT_TRUE(std::all_of(t.begin(), t.end(), [](float v) { return v == 0.0f; })) << s.str();
    t.fill(2.0f);
    EXPECT_EQ(t.data()[t.numel() - 1], 2.0f);
    const Tensor<float> view = t;  // the buffer lives as long as any handle
    t = Tensor<float>();
    EXPECT_EQ(view.data()[0], 2.0f);
  }
}
