#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "facenet/kernels/conv2d.hpp"
#include "facenet/kernels/reference/conv2d.hpp"
#include "testing.hpp"

namespace fk = facenet::kernels;
namespace ref = facenet::kernels::reference;
using facenet::shape;
using facenet::Tensor;
using facenet::testing::max_abs_diff;
using facenet::testing::random_tensor;

namespace {

struct conv_case {
  std::int64_t n, c, h, w, o, kh, kw;
  fk::conv2d_params p;
  std::string what() const {
    return "x[" + std::to_string(n) + "," + std::to_string(c) + "," + std::to_string(h) + "," + std::to_string(w) + "] w[" +
           std::to_string(o) + "," + std::to_string(c) + "," + std::to_string(kh) + "," + std::to_string(kw) + "] " + p.str();
  }
};

fk::conv2d_params pads(int t, int b, int l, int r, int sh = 1, int sw = 1) { return fk::conv2d_params{sh, sw, t, b, l, r}; }

// Odd sizes (not multiples of the SIMD width); each line exercises one lowering path or edge.
const conv_case kCases[] = {
    {1, 5, 9, 11, 17, 1, 1, pads(0, 0, 0, 0)},           // pointwise GEMM
    {3, 17, 7, 9, 33, 1, 1, pads(0, 0, 0, 0)},           // pointwise, batch: one GEMM over the batch
    {5, 37, 3, 3, 21, 1, 1, pads(0, 0, 0, 0)},           // Block8-like 3x3 pixels, batched
    {2, 6, 8, 8, 7, 1, 1, pads(0, 0, 0, 0)},             // 64 pixels: one GEMM per image
    {1, 41, 3, 3, 19, 1, 1, pads(0, 0, 0, 0)},           // 9 pixels, batch 1: dot products along k
    {2, 5, 9, 9, 7, 1, 1, pads(0, 0, 0, 0, 2, 2)},       // 1x1 stride 2 (im2col)
    {1, 3, 11, 13, 5, 3, 3, fk::conv2d_params::symmetric(1, 1)},  // implicit, padded copy + compaction
    {2, 33, 9, 21, 17, 3, 3, pads(0, 0, 0, 0)},          // implicit, K = 297 crosses a K block
    {2, 33, 9, 8, 17, 3, 3, pads(0, 0, 0, 0)},           // narrow: a third of the extended columns dropped
    {1, 7, 13, 11, 9, 5, 5, fk::conv2d_params::symmetric(2, 2)},
    {2, 3, 17, 15, 11, 7, 7, fk::conv2d_params::symmetric(3, 3, 2, 2)},  // NN4 conv1-like, im2col
    {1, 4, 64, 66, 8, 3, 3, fk::conv2d_params::symmetric(1, 1, 2, 2)},  // 32x33 outputs: lowered and multiplied by rows
    {1, 5, 35, 36, 7, 3, 3, pads(0, 0, 0, 0, 2, 2)},     // 17x17 outputs: by rows, each lowered through the offset table
    {1, 15, 13, 13, 6, 5, 5, fk::conv2d_params::symmetric(2, 2, 2, 2)},  // 7x7 outputs gathered while packing; a K block starts mid-channel
    {1, 6, 40, 36, 70, 3, 3, fk::conv2d_params::symmetric(1, 1)},       // implicit GEMM and compaction by rows
    {1, 29, 17, 17, 32, 3, 3, fk::conv2d_params::symmetric(1, 1)},      // Block35-like: few channels, split by channels
    {1, 3, 9, 41, 5, 3, 3, fk::conv2d_params::symmetric(1, 1, 2, 2)},  // stride 2, 21 outputs: full vectors and a tail
    {1, 6, 9, 10, 5, 3, 3, pads(0, 0, 0, 0, 2, 2)},      // stride 2, no padding
    {1, 5, 20, 23, 6, 5, 4, pads(2, 1, 3, 0, 3, 3)},     // stride 3, asymmetric padding, 4-wide kernel
    {1, 4, 13, 15, 5, 3, 3, pads(0, 0, 1, 0, 2, 2)},     // stride 2, odd width, left padding only
    {1, 3, 19, 17, 4, 2, 2, pads(0, 0, 0, 0, 3, 3)},     // kernel narrower than the stride: rows skipped
    {1, 3, 18, 18, 4, 1, 3, pads(0, 0, 1, 1, 2, 2)},     // 1x3 at stride 2: not the transposed 1xk path
    {2, 5, 10, 11, 7, 3, 3, fk::conv2d_params::same(10, 11, 3, 3, 2, 2)},  // TF SAME, asymmetric
    {1, 4, 9, 7, 6, 3, 3, pads(1, 2, 0, 3)},             // arbitrary asymmetric, stride 1
    {1, 4, 9, 7, 6, 3, 2, pads(2, 0, 1, 0, 2, 1)},       // mixed strides and padding
    {2, 9, 8, 8, 13, 1, 7, fk::conv2d_params::symmetric(0, 3)},  // Block17 1x7
    {1, 9, 8, 8, 13, 7, 1, fk::conv2d_params::symmetric(3, 0)},  // Block17 7x1
    {2, 11, 5, 5, 9, 1, 3, fk::conv2d_params::symmetric(0, 1)},  // Block8 1x3
    {1, 11, 5, 5, 9, 3, 1, fk::conv2d_params::symmetric(1, 0)},  // Block8 3x1
    {2, 5, 6, 9, 7, 1, 4, pads(1, 2, 2, 0)},             // 1xk on the transposed image, padded all round
    {1, 3, 4, 7, 5, 1, 3, pads(0, 0, 0, 0)},             // 1xk unpadded: still a transposed copy
    {1, 5, 9, 6, 3, 3, 1, pads(0, 0, 0, 0)},             // implicit straight from the input (no copy)
    {5, 3, 15, 15, 4, 3, 3, fk::conv2d_params::symmetric(1, 1)},     // 225 pixels: groups of 3 images, then 2
    {5, 6, 12, 12, 5, 1, 1, pads(0, 0, 0, 0)},           // 1x1, 144 pixels: backward in groups of 4, then 1
    {7, 5, 7, 7, 6, 3, 3, fk::conv2d_params::symmetric(1, 1, 2, 2)},  // strided, all 7 images in one group
    {3, 3, 35, 33, 5, 5, 5, fk::conv2d_params::symmetric(2, 2, 2, 2)},  // 306 pixels, small dw: images split over threads
    // Stride 2 over 64+ outputs (output rows split over the threads, each lowering its own).
    {2, 5, 17, 18, 6, 3, 3, fk::conv2d_params::symmetric(1, 1, 2, 2)},  // 9x9 outputs
    {1, 4, 20, 21, 5, 3, 3, pads(0, 1, 0, 1, 2, 2)},                   // TF "SAME", odd padding pixel at the end
    {1, 3, 23, 22, 4, 7, 7, fk::conv2d_params::symmetric(3, 3, 2, 2)},  // NN4 conv1-like, 12x11 outputs
    {2, 6, 19, 17, 3, 3, 3, pads(0, 0, 0, 0, 2, 2)},                   // no padding, odd input: 9x8
    {1, 5, 18, 16, 4, 3, 3, pads(1, 0, 2, 1, 2, 2)},                   // every side different
    // Lowered in chunks of rows (detail::lowered_rows; 10 rows of 33 outputs here), the last short.
    {1, 3, 70, 66, 5, 7, 7, fk::conv2d_params::symmetric(3, 3, 2, 2)},  // 35x33: each thread's rows in chunks
    {8, 3, 61, 66, 5, 7, 7, fk::conv2d_params::symmetric(3, 3, 2, 2)},  // 31x33: images over threads, chunks of each
};

template <class T>
double tol(std::int64_t k) {
  return (std::is_same<T, float>::value ? 4e-6 : 1e-13) * static_cast<double>(k + 8);
}

// F(4x4, 3x3)'s transforms scale values by up to 10 (input) and 18 (output) per dimension before
// they cancel, so it rounds more than the direct sum or F(2x2).
template <class T>
double tol(std::int64_t k, fk::conv2d_algo algo) {
  return tol<T>(k) * (algo == fk::conv2d_algo::winograd_4x4 || algo == fk::conv2d_algo::winograd_5x5 ? 2 : 1);
}

template <class T>
void check_against_reference(const conv_case& cc, std::uint32_t seed) {
  const Tensor<T> x = random_tensor<T>({cc.n, cc.c, cc.h, cc.w}, seed);
  const Tensor<T> w = random_tensor<T>({cc.o, cc.c, cc.kh, cc.kw}, seed + 1);
  const Tensor<T> b = random_tensor<T>({cc.o}, seed + 2);
  const std::int64_t k = cc.c * cc.kh * cc.kw;

  Tensor<T> y, y_ref;
  fk::conv2d_forward(x, w, b, y, cc.p);
  ref::conv2d_forward(x, w, b, y_ref, cc.p);
  ASSERT_EQ(y.shape(), fk::conv2d_output_shape(x.shape(), w.shape(), cc.p)) << cc.what();
  EXPECT_LE(max_abs_diff(y, y_ref), tol<T>(k)) << "forward " << cc.what();

  Tensor<T> y_nobias, y_nobias_ref;
  fk::conv2d_forward(x, w, Tensor<T>(), y_nobias, cc.p);
  ref::conv2d_forward(x, w, Tensor<T>(), y_nobias_ref, cc.p);
  EXPECT_LE(max_abs_diff(y_nobias, y_nobias_ref), tol<T>(k)) << "forward without bias " << cc.what();

  const Tensor<T> dy = random_tensor<T>(y.shape(), seed + 3);
  Tensor<T> dx, dx_ref;
  fk::conv2d_backward_data(dy, w, x.shape(), dx, cc.p);
  ref::conv2d_backward_data(dy, w, x.shape(), dx_ref, cc.p);
  EXPECT_LE(max_abs_diff(dx, dx_ref), tol<T>(cc.o * cc.kh * cc.kw)) << "backward_data " << cc.what();

  Tensor<T> dw(w.shape()), dw_ref(w.shape()), db, db_ref;
  dw.fill(T(7));  // stale contents must be overwritten
  fk::conv2d_backward_weight(x, dy, dw, &db, cc.p);
  ref::conv2d_backward_weight(x, dy, dw_ref, &db_ref, cc.p);
  const std::int64_t taps = cc.n * y.h() * y.w();
  EXPECT_LE(max_abs_diff(dw, dw_ref), tol<T>(taps)) << "backward_weight " << cc.what();
  EXPECT_LE(max_abs_diff(db, db_ref), tol<T>(taps)) << "backward bias " << cc.what();
}

}  // namespace

TEST(Conv2d, FloatMatchesReference) {
  std::uint32_t seed = 1;
  for (const auto& cc : kCases) check_against_reference<float>(cc, seed += 10);
}

TEST(Conv2d, DoubleMatchesReference) {
  std::uint32_t seed = 500;
  for (const auto& cc : kCases) check_against_reference<double>(cc, seed += 10);
}

// Batches of 4 images per thread and more: backward data and weights split over the threads in
// uneven shares (partial weight gradients summed), grouped small maps, per-image products, 1x1.
TEST(Conv2d, BatchesSplitOverThreadsMatchReference) {
  const conv_case cases[] = {
      {9, 5, 12, 12, 7, 3, 3, fk::conv2d_params::symmetric(1, 1)},
      {11, 6, 6, 6, 5, 3, 3, fk::conv2d_params::symmetric(1, 1)},
      {9, 17, 3, 3, 33, 1, 1, pads(0, 0, 0, 0)},
      {10, 3, 13, 11, 4, 5, 5, fk::conv2d_params::symmetric(2, 2, 2, 2)},
      {8, 40, 9, 9, 130, 3, 3, fk::conv2d_params::symmetric(1, 1)},  // dw of 46,800: split only as a batch
  };
  std::uint32_t seed = 3400;
  for (const auto& cc : cases) {
    check_against_reference<float>(cc, seed += 10);
    check_against_reference<double>(cc, seed += 10);
  }
}

TEST(Conv2d, SameHelperMatchesTensorFlow) {
  const auto p = fk::conv2d_params::same(160, 160, 3, 3, 2, 2);  // out 80: total pad 1, extra at the bottom
  EXPECT_EQ(p.pad_top, 0);
  EXPECT_EQ(p.pad_bottom, 1);
  EXPECT_EQ(fk::conv2d_output_shape({1, 3, 160, 160}, {8, 3, 3, 3}, p), (shape{1, 8, 80, 80}));
  const auto q = fk::conv2d_params::same(17, 17, 1, 7);
  EXPECT_EQ(q.pad_left, 3);
  EXPECT_EQ(q.pad_right, 3);
  EXPECT_EQ(q.pad_top, 0);
  EXPECT_EQ(fk::conv2d_output_shape({2, 4, 17, 17}, {5, 4, 1, 7}, q), (shape{2, 5, 17, 17}));
  EXPECT_EQ(fk::conv2d_output_shape({1, 3, 96, 96}, {64, 3, 7, 7}, fk::conv2d_params::symmetric(3, 3, 2, 2)),
            (shape{1, 64, 48, 48}));
}

// Finite differences in double through loss = <conv(x, w, b), g>.
TEST(Conv2d, GradientCheck) {
  const conv_case cases[] = {
      {2, 3, 6, 7, 4, 3, 3, pads(1, 0, 2, 1, 2, 2)},
      {2, 3, 5, 6, 4, 1, 3, fk::conv2d_params::symmetric(0, 1)},
      {1, 4, 5, 5, 3, 1, 1, pads(0, 0, 0, 0)},
  };
  std::uint32_t seed = 900;
  for (const auto& cc : cases) {
    Tensor<double> x = random_tensor<double>({cc.n, cc.c, cc.h, cc.w}, seed++);
    Tensor<double> w = random_tensor<double>({cc.o, cc.c, cc.kh, cc.kw}, seed++);
    Tensor<double> b = random_tensor<double>({cc.o}, seed++);
    const Tensor<double> g = random_tensor<double>(fk::conv2d_output_shape(x.shape(), w.shape(), cc.p), seed++);
    Tensor<double> y;
    const auto loss = [&] {
      fk::conv2d_forward(x, w, b, y, cc.p);
      return facenet::testing::dot(y, g);
    };
    Tensor<double> dx, dw(w.shape()), db;
    fk::conv2d_backward_data(g, w, x.shape(), dx, cc.p);
    fk::conv2d_backward_weight(x, g, dw, &db, cc.p);
    facenet::testing::check_gradient(x, dx, loss, "dx " + cc.what());
    facenet::testing::check_gradient(w, dw, loss, "dw " + cc.what());
    facenet::testing::check_gradient(b, db, loss, "db " + cc.what());
  }
}

namespace {

template <class T>
void check_plan(const conv_case& cc, std::uint32_t seed, fk::conv2d_algo algo = fk::conv2d_algo::automatic) {
  const Tensor<T> x = random_tensor<T>({cc.n, cc.c, cc.h, cc.w}, seed);
  const Tensor<T> w = random_tensor<T>({cc.o, cc.c, cc.kh, cc.kw}, seed + 1);
  const Tensor<T> b = random_tensor<T>({cc.o}, seed + 2);
  Tensor<T> expect;
  fk::conv2d_forward(x, w, b, expect, cc.p);
  const Tensor<T> residual = random_tensor<T>(expect.shape(), seed + 3);
  const T scale = T(0.17);
  const double tolerance = tol<T>(cc.c * cc.kh * cc.kw, algo);

  Tensor<T> y, ws;
  const fk::conv2d_plan<T> plain(w, b, cc.p, fk::activation::none, algo);
  EXPECT_EQ(plain.output_shape(x.shape()), expect.shape());
  plain.forward(x, y, ws);
  EXPECT_LE(max_abs_diff(y, expect), tolerance) << "plan " << cc.what();

  const fk::conv2d_plan<T> relu(w, b, cc.p, fk::activation::relu, algo);
  Tensor<T> want = expect.clone();
  for (auto& v : want) v = std::max(v, T(0));
  relu.forward(x, y, ws);
  EXPECT_LE(max_abs_diff(y, want), tolerance) << "plan relu " << cc.what();

  for (std::int64_t i = 0; i < want.numel(); ++i)
    want.data()[i] = std::max(residual.data()[i] + scale * expect.data()[i], T(0));
  const std::int64_t capacity = ws.capacity();
  relu.forward(x, y, ws, &residual, scale);
  EXPECT_LE(max_abs_diff(y, want), tolerance) << "plan relu+residual " << cc.what();
  EXPECT_EQ(ws.capacity(), capacity) << "workspace must not grow on reuse";

  const fk::conv2d_plan<T> linear_nobias(w, Tensor<T>(), cc.p, fk::activation::none, algo);
  Tensor<T> expect_nobias;
  fk::conv2d_forward(x, w, Tensor<T>(), expect_nobias, cc.p);
  for (std::int64_t i = 0; i < want.numel(); ++i) want.data()[i] = residual.data()[i] + scale * expect_nobias.data()[i];
  linear_nobias.forward(x, y, ws, &residual, scale);
  EXPECT_LE(max_abs_diff(y, want), tolerance) << "plan residual without bias " << cc.what();
}

}  // namespace

TEST(Conv2dPlan, MatchesForwardWithFusedEpilogue) {
  std::uint32_t seed = 1500;
  for (const auto& cc : kCases) {
    check_plan<float>(cc, seed += 10);
    check_plan<double>(cc, seed += 10);
    check_plan<float>(cc, seed += 10, fk::conv2d_algo::gemm);
    if (cc.kh == 3 && cc.kw == 3 && cc.p.stride_h == 1 && cc.p.stride_w == 1)
      for (const auto algo : {fk::conv2d_algo::winograd, fk::conv2d_algo::winograd_4x4}) {
        check_plan<float>(cc, seed += 10, algo);
        check_plan<double>(cc, seed += 10, algo);
      }
    if (cc.kh == 5 && cc.kw == 5 && cc.p.stride_h == 1 && cc.p.stride_w == 1) {
      check_plan<float>(cc, seed += 10, fk::conv2d_algo::winograd_5x5);
      check_plan<double>(cc, seed += 10, fk::conv2d_algo::winograd_5x5);
    }
  }
  // Bigger than one K block and one N block, threaded, batch 2.
  check_plan<float>({2, 40, 23, 29, 37, 3, 3, fk::conv2d_params::symmetric(1, 1)}, 77);
  check_plan<float>({1, 300, 9, 9, 20, 1, 1, pads(0, 0, 0, 0)}, 78);
  // Batched 1x1 (one GEMM over 7 images of 3x3), K over one block, residual per image.
  check_plan<float>({7, 300, 3, 3, 50, 1, 1, pads(0, 0, 0, 0)}, 79);
  check_plan<double>({3, 19, 5, 5, 11, 1, 1, pads(0, 0, 0, 0)}, 80);
}

// Batches of 4 images per thread and more are split over the threads (uneven shares here): every
// path - implicit GEMM, Winograd, images grouped per GEMM, 1x1 batched over images - with bias, relu
// and a residual.
TEST(Conv2dPlan, BatchesSplitOverThreadsMatchTheForward) {
  const conv_case cases[] = {
      {9, 5, 12, 12, 7, 3, 3, fk::conv2d_params::symmetric(1, 1)},   // implicit GEMM
      {11, 6, 6, 6, 5, 3, 3, fk::conv2d_params::symmetric(1, 1)},    // 6x6 maps: images grouped per GEMM
      {9, 17, 3, 3, 33, 1, 1, pads(0, 0, 0, 0)},                     // 1x1 over 3x3 maps: one GEMM per share
      {10, 3, 13, 11, 4, 5, 5, fk::conv2d_params::symmetric(2, 2, 2, 2)},  // strided im2col
      {9, 6, 12, 12, 5, 5, 5, fk::conv2d_params::symmetric(2, 2)},         // 5x5, NN4 inception_3b-like
  };
  std::uint32_t seed = 3300;
  for (const auto& cc : cases) {
    check_plan<float>(cc, seed += 10);
    check_plan<double>(cc, seed += 10);
    if (cc.kh == 3 && cc.kw == 3 && cc.p.stride_h == 1) {
      check_plan<float>(cc, seed += 10, fk::conv2d_algo::winograd);
      check_plan<float>(cc, seed += 10, fk::conv2d_algo::winograd_4x4);
    }
    if (cc.kh == 5 && cc.p.stride_h == 1) check_plan<float>(cc, seed += 10, fk::conv2d_algo::winograd_5x5);
  }
}

namespace {

// A Winograd form forced on cc (relu, bias and a residual in float; plain in double) against the
// scalar reference; takes four seeds from `seed`.
void check_winograd(const conv_case& cc, fk::conv2d_algo algo, std::uint32_t& seed) {
  const Tensor<float> x = random_tensor<float>({cc.n, cc.c, cc.h, cc.w}, seed++);
  const Tensor<float> w = random_tensor<float>({cc.o, cc.c, cc.kh, cc.kw}, seed++);
  const Tensor<float> b = random_tensor<float>({cc.o}, seed++);
  const std::int64_t k = cc.c * cc.kh * cc.kw;
  Tensor<float> want, y, ws;
  ref::conv2d_forward(x, w, b, want, cc.p);
  const Tensor<float> residual = random_tensor<float>(want.shape(), seed++);
  const float scale = 0.3f;
  for (std::int64_t i = 0; i < want.numel(); ++i)
    want.data()[i] = std::max(residual.data()[i] + scale * want.data()[i], 0.f);
  const fk::conv2d_plan<float> plan(w, b, cc.p, fk::activation::relu, algo);
  EXPECT_EQ(plan.algo_for(x.shape()), algo);
  plan.forward(x, y, ws, &residual, scale);
  ASSERT_EQ(y.shape(), want.shape()) << cc.what();
  EXPECT_LE(max_abs_diff(y, want), tol<float>(k, algo)) << "winograd " << int(algo) << " " << cc.what();

  Tensor<double> xd(x.shape()), wd(w.shape()), yd, want_d, wsd;
  for (std::int64_t i = 0; i < x.numel(); ++i) xd.data()[i] = x.data()[i];
  for (std::int64_t i = 0; i < w.numel(); ++i) wd.data()[i] = w.data()[i];
  ref::conv2d_forward(xd, wd, Tensor<double>(), want_d, cc.p);
  fk::conv2d_plan<double>(wd, Tensor<double>(), cc.p, fk::activation::none, algo).forward(xd, yd, wsd);
  EXPECT_LE(max_abs_diff(yd, want_d), tol<double>(k, algo)) << "winograd double " << int(algo) << " " << cc.what();
}

}  // namespace

// Winograd F(2x2, 3x3) and F(4x4, 3x3) forced, against the scalar reference: output sizes of every
// remainder by 2 and 4 (a ragged last tile row/column), every padding side alone and together, one
// channel, batch > 1, bias, relu and a residual, and maps big enough for several chunks per thread.
TEST(Conv2dPlan, WinogradMatchesReference) {
  const conv_case cases[] = {
      {1, 3, 5, 5, 2, 3, 3, pads(0, 0, 0, 0)},            // 3x3 output: one full and one ragged tile per side
      {1, 1, 3, 3, 1, 3, 3, pads(0, 0, 0, 0)},            // a single output pixel
      {2, 5, 8, 9, 7, 3, 3, fk::conv2d_params::symmetric(1, 1)},
      {1, 4, 9, 7, 6, 3, 3, pads(1, 2, 0, 3)},            // asymmetric padding
      {1, 4, 6, 10, 3, 3, 3, pads(2, 0, 1, 0)},
      {1, 4, 6, 10, 3, 3, 3, pads(0, 2, 0, 1)},
      {3, 17, 17, 17, 33, 3, 3, fk::conv2d_params::symmetric(1, 1)},  // Block35-like, batch 3
      {1, 37, 45, 47, 65, 3, 3, fk::conv2d_params::symmetric(1, 1)},  // several chunks, threaded
      {1, 21, 2, 40, 9, 3, 3, pads(1, 0, 0, 0)},          // one tile row, wide
      {2, 6, 7, 8, 5, 3, 3, pads(0, 0, 0, 0)},            // 5x6 output
      {1, 9, 15, 13, 4, 3, 3, fk::conv2d_params::symmetric(1, 1)},  // 15x13 output
      // Chunks run on from one image into the next: chunks holding parts of two or three images, images
      // over several chunks (padded copies kept in a ring), and a batch split over the threads whose
      // shares each run serially through one call.
      {5, 40, 30, 30, 48, 3, 3, fk::conv2d_params::symmetric(1, 1)},
      {9, 33, 12, 12, 40, 3, 3, fk::conv2d_params::symmetric(1, 1)},
      {4, 35, 6, 7, 33, 3, 3, pads(1, 0, 1, 0)},
  };
  std::uint32_t seed = 2100;
  for (const auto algo : {fk::conv2d_algo::winograd, fk::conv2d_algo::winograd_4x4})
    for (const auto& cc : cases) check_winograd(cc, algo, seed);
}

// Winograd F(2x2, 5x5) forced, against the scalar reference: every output remainder by 2, each
// padding side, one output pixel, batches with several images per chunk and split over the threads,
// maps of several chunks, NN4's 12x12 and 6x6 inception maps, bias, relu and a residual, float and
// double. The automatic choice takes it on NN4's layers and not on strided or small ones.
TEST(Conv2dPlan, Winograd5x5MatchesReference) {
  const conv_case cases[] = {
      {1, 3, 7, 7, 2, 5, 5, pads(0, 0, 0, 0)},             // 3x3 output: a ragged tile per side
      {1, 1, 5, 5, 1, 5, 5, pads(0, 0, 0, 0)},             // a single output pixel
      {2, 5, 8, 9, 7, 5, 5, fk::conv2d_params::symmetric(2, 2)},
      {1, 4, 9, 7, 6, 5, 5, pads(1, 3, 0, 4)},             // asymmetric padding
      {1, 4, 6, 10, 3, 5, 5, pads(2, 0, 1, 0)},
      {1, 4, 6, 10, 3, 5, 5, pads(0, 2, 0, 3)},
      {3, 32, 12, 12, 64, 5, 5, fk::conv2d_params::symmetric(2, 2)},  // NN4 inception_3b, batch 3
      {8, 32, 6, 6, 64, 5, 5, fk::conv2d_params::symmetric(2, 2)},    // NN4 inception_4a, 8 images
      {1, 37, 45, 47, 65, 5, 5, fk::conv2d_params::symmetric(2, 2)},  // several chunks, threaded
      {1, 21, 2, 40, 9, 5, 5, pads(2, 1, 0, 0)},           // one tile row, wide
      {9, 33, 13, 11, 40, 5, 5, fk::conv2d_params::symmetric(2, 2)},  // odd maps, images over threads
  };
  std::uint32_t seed = 2400;
  const auto algo = fk::conv2d_algo::winograd_5x5;
  for (const auto& cc : cases) check_winograd(cc, algo, seed);
  const auto automatic = [](std::int64_t c, std::int64_t o, std::int64_t stride) {
    const Tensor<float> w = random_tensor<float>({o, c, 5, 5}, 9);
    return fk::conv2d_plan<float>(w, Tensor<float>(), fk::conv2d_params::symmetric(2, 2, stride, stride));
  };
  EXPECT_EQ(automatic(32, 64, 1).algo_for({8, 32, 12, 12}), algo);  // NN4 inception_3b
  EXPECT_EQ(automatic(32, 64, 1).algo_for({8, 32, 6, 6}), algo);    // NN4 inception_4a
  EXPECT_EQ(automatic(32, 64, 2).algo_for({8, 32, 12, 12}), fk::conv2d_algo::gemm);  // inception_3c: strided
  EXPECT_EQ(automatic(16, 32, 1).algo_for({1, 16, 12, 12}), algo);  // NN4 inception_3a
  EXPECT_EQ(automatic(32, 64, 1).algo_for({8, 32, 3, 3}), fk::conv2d_algo::gemm);    // too few outputs
  EXPECT_EQ(automatic(8, 64, 1).algo_for({1, 8, 12, 12}), fk::conv2d_algo::gemm);    // too few channels
  EXPECT_THROW(fk::conv2d_plan<float>(random_tensor<float>({4, 4, 3, 3}, 1), Tensor<float>(), fk::conv2d_params{},
                                      fk::activation::none, algo),
               facenet::unsupported_error);
  Tensor<float> dw({4, 4, 5, 5});
  EXPECT_THROW(fk::conv2d_backward_weight(random_tensor<float>({1, 4, 9, 9}, 2), random_tensor<float>({1, 4, 5, 5}, 3), dw,
                                          static_cast<Tensor<float>*>(nullptr), fk::conv2d_params{}, algo),
               facenet::unsupported_error);
}

// The weight gradient by Winograd (A and G exchanged), both tile sizes forced, against the scalar
// reference: output sizes of every remainder by 2 and 4, asymmetric padding, one tile, batches split
// over the threads, and the automatic choice on a map and channels that take it.
template <class T>
void check_weight_grad(const conv_case& cc, std::uint32_t seed, fk::conv2d_algo algo) {
  const Tensor<T> x = random_tensor<T>({cc.n, cc.c, cc.h, cc.w}, seed);
  const shape ws{cc.o, cc.c, 3, 3};
  const Tensor<T> dy = random_tensor<T>(fk::conv2d_output_shape(x.shape(), ws, cc.p), seed + 1);
  Tensor<T> want(ws), got(ws), db_want, db;
  ref::conv2d_backward_weight(x, dy, want, &db_want, cc.p);
  fk::conv2d_backward_weight(x, dy, got, &db, cc.p, algo);
  EXPECT_LE(max_abs_diff(got, want), tol<T>(cc.n * dy.h() * dy.w(), algo)) << "dw " << int(algo) << " " << cc.what();
  EXPECT_LE(max_abs_diff(db, db_want), tol<T>(cc.n * dy.h() * dy.w())) << "db " << cc.what();
}

TEST(Conv2d, WinogradWeightGradientMatchesReference) {
  const conv_case cases[] = {
      {1, 3, 5, 5, 2, 3, 3, pads(0, 0, 0, 0)},
      {2, 5, 8, 9, 7, 3, 3, fk::conv2d_params::symmetric(1, 1)},
      {1, 4, 9, 7, 6, 3, 3, pads(1, 2, 0, 3)},
      {3, 6, 7, 8, 5, 3, 3, pads(0, 0, 0, 0)},
      {5, 9, 15, 13, 4, 3, 3, fk::conv2d_params::symmetric(1, 1)},
      {3, 64, 16, 16, 64, 3, 3, fk::conv2d_params::symmetric(1, 1)},  // automatic takes F(4x4) here
  };
  std::uint32_t seed = 2600;
  for (const auto& cc : cases)
    for (const auto algo : {fk::conv2d_algo::winograd, fk::conv2d_algo::winograd_4x4}) {
      check_weight_grad<float>(cc, seed += 10, algo);
      check_weight_grad<double>(cc, seed += 10, algo);
    }
  const conv_case& big = cases[std::size(cases) - 1];
  EXPECT_EQ(fk::conv2d_weight_grad_algo(shape{big.o, big.c, 3, 3}, big.p, 16, 16), fk::conv2d_algo::winograd_4x4);
  check_weight_grad<float>(big, seed += 10, fk::conv2d_algo::automatic);
  EXPECT_EQ(fk::conv2d_weight_grad_algo(shape{64, 64, 3, 3}, big.p, 12, 12), fk::conv2d_algo::winograd);
  EXPECT_EQ(fk::conv2d_weight_grad_algo(shape{32, 40, 3, 3}, big.p, 17, 17), fk::conv2d_algo::winograd);
  EXPECT_EQ(fk::conv2d_weight_grad_algo(shape{64, 64, 3, 3}, big.p, 6, 6), fk::conv2d_algo::gemm);
  EXPECT_EQ(fk::conv2d_weight_grad_algo(shape{16, 40, 3, 3}, big.p, 12, 12), fk::conv2d_algo::gemm);
  EXPECT_EQ(fk::conv2d_weight_grad_algo(shape{64, 64, 3, 3}, fk::conv2d_params::symmetric(1, 1, 2, 2), 12, 12),
            fk::conv2d_algo::gemm);
  Tensor<float> dw({4, 3, 3, 3});
  EXPECT_THROW(fk::conv2d_backward_weight(random_tensor<float>({1, 3, 9, 9}, 1), random_tensor<float>({1, 4, 4, 4}, 2), dw,
                                          static_cast<Tensor<float>*>(nullptr), fk::conv2d_params::symmetric(0, 0, 2, 2),
                                          fk::conv2d_algo::winograd),
               facenet::unsupported_error);
}

// The data gradient as a convolution of dy (what the conv2d layer trains with): flipped weights and
// padding k - 1 - pad through a plan, by GEMM and (3x3) by Winograd, against the scalar reference's
// backward_data, for every stride-1 case whose padding stays below the kernel.
template <class T>
void check_data_grad_as_conv(const conv_case& cc, std::uint32_t seed, fk::conv2d_algo algo) {
  const Tensor<T> w = random_tensor<T>({cc.o, cc.c, cc.kh, cc.kw}, seed);
  const shape x_shape{cc.n, cc.c, cc.h, cc.w};
  const Tensor<T> dy = random_tensor<T>(fk::conv2d_output_shape(x_shape, w.shape(), cc.p), seed + 1);
  Tensor<T> want, flipped, dx, ws;
  ref::conv2d_backward_data(dy, w, x_shape, want, cc.p);
  fk::conv2d_flip_weights(w, flipped);
  fk::conv2d_plan<T>(flipped, Tensor<T>(), fk::conv2d_data_grad_params(w.shape(), cc.p), fk::activation::none, algo)
      .forward(dy, dx, ws);
  ASSERT_EQ(dx.shape(), x_shape) << cc.what();
  EXPECT_LE(max_abs_diff(dx, want), tol<T>(cc.o * cc.kh * cc.kw, algo)) << "data gradient as a convolution " << cc.what();
}

TEST(Conv2d, DataGradientIsAConvolutionOfDy) {
  std::uint32_t seed = 3100;
  int checked = 0;
  for (const auto& cc : kCases) {
    if (!fk::conv2d_data_grad_is_conv(shape{cc.o, cc.c, cc.kh, cc.kw}, cc.p)) continue;
    check_data_grad_as_conv<float>(cc, seed += 10, fk::conv2d_algo::automatic);
    check_data_grad_as_conv<double>(cc, seed += 10, fk::conv2d_algo::gemm);
    if (cc.kh == 3 && cc.kw == 3)
      for (const auto algo : {fk::conv2d_algo::winograd, fk::conv2d_algo::winograd_4x4}) {
        check_data_grad_as_conv<float>(cc, seed += 10, algo);
        check_data_grad_as_conv<double>(cc, seed += 10, algo);
      }
    ++checked;
  }
  EXPECT_GE(checked, 15);
  // Strided, or padded as far as the kernel: no convolution form.
  EXPECT_FALSE(fk::conv2d_data_grad_is_conv(shape{4, 3, 3, 3}, fk::conv2d_params::symmetric(1, 1, 2, 2)));
  EXPECT_FALSE(fk::conv2d_data_grad_is_conv(shape{4, 3, 1, 1}, fk::conv2d_params::symmetric(1, 1)));
  EXPECT_THROW(fk::conv2d_data_grad_params(shape{4, 3, 1, 1}, fk::conv2d_params::symmetric(1, 1)), facenet::argument_error);
}

// repack() gives what a new plan of the same weights gives, and refuses other shapes.
TEST(Conv2dPlan, RepackMatchesANewPlan) {
  const fk::conv2d_params p = fk::conv2d_params::symmetric(1, 1);
  const Tensor<float> x = random_tensor<float>({2, 40, 14, 14}, 3200);
  for (const auto algo : {fk::conv2d_algo::automatic, fk::conv2d_algo::gemm, fk::conv2d_algo::winograd,
                          fk::conv2d_algo::winograd_4x4}) {
    fk::conv2d_plan<float> plan(random_tensor<float>({48, 40, 3, 3}, 3201), random_tensor<float>({48}, 3202), p,
                                fk::activation::relu, algo);
    const Tensor<float> w = random_tensor<float>({48, 40, 3, 3}, 3203), b = random_tensor<float>({48}, 3204);
    plan.repack(w, b);
    Tensor<float> y, want, ws;
    plan.forward(x, y, ws);
    fk::conv2d_plan<float>(w, b, p, fk::activation::relu, algo).forward(x, want, ws);
    EXPECT_EQ(max_abs_diff(y, want), 0.0);
    EXPECT_THROW(plan.repack(random_tensor<float>({48, 40, 1, 1}, 1), b), facenet::shape_error);
    EXPECT_THROW(plan.repack(w, Tensor<float>()), facenet::argument_error);
  }
}

// An automatic plan packs each algorithm's form on the first call that needs it - here from several
// threads at once, at three map sizes (F(4x4), F(2x2), GEMM) - and repack() updates every form packed.
TEST(Conv2dPlan, PacksEachFormOnFirstUseAndRepacksThemAll) {
  const fk::conv2d_params p = fk::conv2d_params::symmetric(1, 1);
  fk::conv2d_plan<float> plan(random_tensor<float>({64, 64, 3, 3}, 3300), random_tensor<float>({64}, 3301), p,
                              fk::activation::relu);
  std::vector<Tensor<float>> xs;
  for (std::int64_t size : {24, 12, 5}) xs.push_back(random_tensor<float>({1, 64, size, size}, 3302 + size));
  const auto check = [&](const Tensor<float>& w, const Tensor<float>& b, const std::vector<Tensor<float>>& ys) {
    for (std::size_t i = 0; i < ys.size(); ++i) {
      const Tensor<float>& x = xs[i % xs.size()];
      Tensor<float> want;
      ref::conv2d_forward(x, w, b, want, p);
      for (auto& v : want) v = std::max(v, 0.f);
      EXPECT_LE(max_abs_diff(ys[i], want), tol<float>(64 * 9, plan.algo_for(x.shape()))) << "output " << i;
    }
  };
  EXPECT_EQ(plan.algo_for(xs[0].shape()), fk::conv2d_algo::winograd_4x4);
  EXPECT_EQ(plan.algo_for(xs[1].shape()), fk::conv2d_algo::winograd);
  EXPECT_EQ(plan.algo_for(xs[2].shape()), fk::conv2d_algo::gemm);
  std::vector<Tensor<float>> ys(6);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < ys.size(); ++t)
    threads.emplace_back([&, t] {
      Tensor<float> ws;
      plan.forward(xs[t % xs.size()], ys[t], ws);
    });
  for (auto& t : threads) t.join();
  check(random_tensor<float>({64, 64, 3, 3}, 3300), random_tensor<float>({64}, 3301), ys);

  const Tensor<float> w = random_tensor<float>({64, 64, 3, 3}, 3310), b = random_tensor<float>({64}, 3311);
  plan.repack(w, b);
  ys.assign(3, Tensor<float>());
  Tensor<float> ws;
  for (std::size_t i = 0; i < ys.size(); ++i) plan.forward(xs[i], ys[i], ws);
  check(w, b, ys);
}

TEST(Conv2dPlan, AutomaticSelection) {
  const auto plan = [](std::int64_t c, std::int64_t o, std::int64_t k, fk::conv2d_params p) {
    return fk::conv2d_plan<float>(Tensor<float>({o, c, k, k}), Tensor<float>(), p);
  };
  const auto same = fk::conv2d_params::symmetric(1, 1);
  // One plan picks by map size.
  const auto wide = plan(64, 64, 3, same);
  EXPECT_EQ(wide.algo_for({1, 64, 24, 24}), fk::conv2d_algo::winograd_4x4);
  EXPECT_EQ(wide.algo_for({1, 64, 12, 12}), fk::conv2d_algo::winograd);
  EXPECT_EQ(wide.algo_for({1, 64, 8, 8}), fk::conv2d_algo::winograd);
  EXPECT_EQ(wide.algo_for({1, 64, 6, 6}), fk::conv2d_algo::gemm);  // too few tiles
  EXPECT_EQ(plan(80, 192, 3, {}).algo_for({1, 80, 38, 38}), fk::conv2d_algo::winograd_4x4);  // IRv1 conv2d_4a
  EXPECT_EQ(plan(32, 64, 3, same).algo_for({1, 32, 77, 77}), fk::conv2d_algo::winograd_4x4);  // IRv1 conv2d_2b
  EXPECT_EQ(plan(32, 32, 3, same).algo_for({1, 32, 17, 17}), fk::conv2d_algo::gemm);  // IRv1 Block35: too few channels
  EXPECT_EQ(plan(16, 64, 3, same).algo_for({1, 16, 77, 77}), fk::conv2d_algo::gemm);     // too few channels
  EXPECT_EQ(plan(64, 64, 3, fk::conv2d_params::symmetric(1, 1, 2, 2)).algo_for({1, 64, 24, 24}), fk::conv2d_algo::gemm);
  EXPECT_EQ(plan(64, 64, 1, {}).algo_for({1, 64, 24, 24}), fk::conv2d_algo::gemm);
  // Winograd cannot be forced where it does not apply.
  EXPECT_THROW(fk::conv2d_plan<float>(Tensor<float>({4, 3, 1, 1}), Tensor<float>(), {}, fk::activation::none,
                                      fk::conv2d_algo::winograd),
               facenet::unsupported_error);
  EXPECT_THROW(fk::conv2d_plan<float>(Tensor<float>({4, 3, 3, 3}), Tensor<float>(), pads(0, 0, 0, 0, 2, 2),
                                      fk::activation::none, fk::conv2d_algo::winograd),
               facenet::unsupported_error);
}

TEST(Conv2d, BadInputThrows) {
  const Tensor<float> x({1, 3, 8, 8}), w({4, 3, 3, 3}), w_bad({4, 2, 3, 3});
  Tensor<float> y;
  EXPECT_THROW(fk::conv2d_forward(x, w_bad, Tensor<float>(), y, {}), facenet::shape_error);
  EXPECT_THROW(fk::conv2d_forward(x, w, Tensor<float>({5}), y, {}), facenet::shape_error);
  EXPECT_THROW(fk::conv2d_forward(x, w, Tensor<float>(), y, pads(0, 0, 0, 0, 0, 1)), facenet::argument_error);
  EXPECT_THROW(fk::conv2d_forward(x, w, Tensor<float>(), y, pads(-1, 0, 0, 0)), facenet::argument_error);
  EXPECT_THROW(fk::conv2d_forward(Tensor<float>({1, 3, 2, 2}), w, Tensor<float>(), y, {}), facenet::shape_error);
  EXPECT_THROW(fk::conv2d_forward(Tensor<float>({3, 8, 8}), w, Tensor<float>(), y, {}), facenet::shape_error);
  Tensor<float> dx, dw({4, 3, 3, 3});
  EXPECT_THROW(fk::conv2d_backward_data(Tensor<float>({1, 4, 5, 5}), w, x.shape(), dx, {}), facenet::shape_error);
  EXPECT_THROW(fk::conv2d_backward_weight(x, Tensor<float>({1, 4, 5, 5}), dw, static_cast<Tensor<float>*>(nullptr), {}), facenet::shape_error);
  Tensor<float> dw_unshaped;
  EXPECT_THROW(fk::conv2d_backward_weight(x, Tensor<float>({1, 4, 6, 6}), dw_unshaped, static_cast<Tensor<float>*>(nullptr), {}), facenet::shape_error);
  const fk::conv2d_plan<float> plan(w, Tensor<float>(), {});
  Tensor<float> ws;
  const Tensor<float> residual_bad({1, 4, 5, 5});
  EXPECT_THROW(plan.forward(x, y, ws, &residual_bad), facenet::shape_error);
  try {
    fk::conv2d_forward(x, w_bad, Tensor<float>(), y, {});
  } catch (const facenet::shape_error& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 2, 3, 3]"), std::string::npos) << e.what();
  }
}
