// 2-D convolution (NCHW input, OIHW weights, groups = 1) forward and backward, lowered to the packed
// GEMM: 1x1/stride 1 is a plain GEMM per image, stride 1 runs as implicit GEMM over a padded copy of
// the image (no im2col) except on outputs of 16 pixels or less, other strides use im2col.
// Convolutions of many output pixels split one image by output rows between the threads, each
// lowering what it multiplies (detail::by_output_rows). conv2d_plan packs the weights once for inference
// and may run stride-1 3x3 layers as Winograd F(2x2, 3x3) or F(4x4, 3x3) (detail/conv2d_winograd.hpp).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/detail/conv2d_lowering.hpp"
#include "facenet/kernels/detail/conv2d_winograd.hpp"
#include "facenet/kernels/detail/gemm_core.hpp"
#include "facenet/kernels/gemm.hpp"

namespace facenet::kernels {

struct conv2d_params {
  int stride_h = 1, stride_w = 1;
  int pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;

  static conv2d_params symmetric(int pad_h, int pad_w, int stride_h = 1, int stride_w = 1) {
    return conv2d_params{stride_h, stride_w, pad_h, pad_h, pad_w, pad_w};
  }
  // TensorFlow "SAME": output = ceil(input / stride); the odd padding pixel goes to the bottom/right.
  static conv2d_params same(std::int64_t in_h, std::int64_t in_w, int kernel_h, int kernel_w, int stride_h = 1,
                            int stride_w = 1) {
    FACENET_CHECK(in_h > 0 && in_w > 0 && kernel_h > 0 && kernel_w > 0 && stride_h > 0 && stride_w > 0, argument_error,
                  "conv2d_params::same: sizes and strides must be positive");
    const auto total = [](std::int64_t in, int k, int s) {
      const std::int64_t out = (in + s - 1) / s;
      return static_cast<int>(std::max<std::int64_t>((out - 1) * s + k - in, 0));
    };
    const int ph = total(in_h, kernel_h, stride_h), pw = total(in_w, kernel_w, stride_w);
    return conv2d_params{stride_h, stride_w, ph / 2, ph - ph / 2, pw / 2, pw - pw / 2};
  }
  std::string str() const {
    return "stride " + std::to_string(stride_h) + "x" + std::to_string(stride_w) + ", pad t/b/l/r " +
           std::to_string(pad_top) + "/" + std::to_string(pad_bottom) + "/" + std::to_string(pad_left) + "/" +
           std::to_string(pad_right);
  }
};

enum class activation { none, relu };

// How a conv2d_plan computes: `automatic` picks per weight shape at pack time; the others force a path
// (tests, benchmarks). Winograd F(2x2, 3x3) (`winograd`) and F(4x4, 3x3) (`winograd_4x4`) need 3x3
// weights and stride 1, F(2x2, 5x5) (`winograd_5x5`) 5x5 weights and stride 1.
enum class conv2d_algo { automatic, gemm, winograd, winograd_4x4, winograd_5x5 };

namespace detail {

// The form a stride-1 3x3 layer with 32+ channels each side runs in for oh x ow outputs: F(4x4) from
// 16x16 outputs with 64+ channels each side (from 48x48 with fewer), F(2x2) from 8x8 (with fewer than
// 64 channels only where `narrow_f2`), the GEMM lowering below. With 64+ channels, `images` images
// run through one Winograd call (their tiles share the GEMMs), so the outputs of all of them count,
// down to maps of 8x8 for F(4x4) and 6x6 for F(2x2). conv2d_plan::automatic_map and
// conv2d_weight_grad_algo give the measurements behind each use.
inline conv2d_algo winograd_by_map(const shape& w, std::int64_t oh, std::int64_t ow, bool narrow_f2, std::int64_t images = 1) {
  const bool narrow = w[0] < 64 || w[1] < 64;
  const std::int64_t pixels = oh * ow, total = narrow ? pixels : pixels * images;
  if (total >= (narrow ? 48 * 48 : 16 * 16) && pixels >= 8 * 8) return conv2d_algo::winograd_4x4;
  return total >= 8 * 8 && pixels >= 6 * 6 && (!narrow || narrow_f2) ? conv2d_algo::winograd : conv2d_algo::gemm;
}

// F(2x2, 5x5) from 6x6 outputs. GEMM against F(2x2, 5x5), AVX2: bench_conv2d batch 1 on 2 threads,
// NN4 inception_3a 16 -> 32 at 12x12 38 -> 33 us, 3b 32 -> 64 at 12x12 131 -> 77 us, 4a at 6x6 49 ->
// 32 us (its 2 extra tiles per row of 3 are computed and dropped, and still it wins); in the network
// at batch 8 on one thread (facenet bench --profile) 3b 1.81 -> 1.23 ms, 4a 0.65 -> 0.42 ms; NN4 at
// batch 64 on 2 threads (builds with aligned loops, 3 alternating runs) 143.7-145.8 -> 139.2-142.0 ms.
inline conv2d_algo winograd_5x5_by_map(std::int64_t oh, std::int64_t ow) {
  return oh * ow >= 6 * 6 ? conv2d_algo::winograd_5x5 : conv2d_algo::gemm;
}

inline conv_geometry conv_geometry_of(const shape& x, const shape& w, const conv2d_params& p, const char* who) {
  // Built only on failure: this runs on every call of every layer.
  const auto ctx = [&] { return std::string(who) + ": input " + x.str() + ", weights " + w.str() + ", " + p.str(); };
  FACENET_CHECK(x.rank() == 4, shape_error, ctx() + ": input must be rank 4 (NCHW)");
  FACENET_CHECK(w.rank() == 4, shape_error, ctx() + ": weights must be rank 4 (OIHW)");
  FACENET_CHECK(x[1] == w[1], shape_error, ctx() + ": input channels differ from weight input channels");
  FACENET_CHECK(w[2] > 0 && w[3] > 0, shape_error, ctx() + ": empty kernel");
  FACENET_CHECK(p.stride_h > 0 && p.stride_w > 0, argument_error, ctx() + ": strides must be positive");
  FACENET_CHECK(p.pad_top >= 0 && p.pad_bottom >= 0 && p.pad_left >= 0 && p.pad_right >= 0, argument_error,
                ctx() + ": padding must be non-negative");
  conv_geometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3], 0, 0, p.stride_h, p.stride_w,
                  p.pad_top, p.pad_bottom, p.pad_left, p.pad_right};
  FACENET_CHECK(g.hp() >= g.kh && g.wp() >= g.kw, shape_error, ctx() + ": kernel larger than the padded input");
  g.oh = (g.hp() - g.kh) / g.sh + 1;
  g.ow = (g.wp() - g.kw) / g.sw + 1;
  return g;
}

template <class T>
void check_bias(const Tensor<T>& bias, std::int64_t o, const char* who) {
  if (bias.empty()) return;
  FACENET_CHECK(bias.numel() == o && bias.is_contiguous(), shape_error,
                std::string(who) + ": bias must hold one value per output channel (" + std::to_string(o) + "), got shape " +
                    bias.shape().str());
}

// Runs the per-image forward over a batch; `ws` and `offsets` are sized by the caller.
template <class T>
void forward_batch(const conv_geometry& g, conv_forward_args<T> a, const T* x, T* y, const T* residual, T* ws,
                   std::int64_t* offsets, forward_grouping grouping) {
  if (g.batched_pointwise()) return forward_batched_pointwise(g, a, x, y, residual, ws);
  if (const std::int64_t group = images_per_gemm<T>(g); grouping == forward_grouping::grouped && group > 1 && !g.pointwise())
    return forward_grouped(g, a, x, y, residual, ws, group);
  for (std::int64_t i = 0; i < g.n; ++i) {
    a.residual = residual ? residual + i * g.out_size() : nullptr;
    forward_image(g, a, x + i * g.in_size(), y + i * g.out_size(), ws, offsets);
  }
}

// Batches of at least 4 images per thread are split over the threads, each running its share with
// the kernels serial: NN4's training step at batch 96 spent ~9% of its time in OpenMP barriers of
// products split image by image. Smaller batches keep the kernels parallel inside.
inline int image_threads(std::int64_t n) {
  const int threads = parallel::in_parallel() ? 1 : parallel::max_threads();
  return n >= 4 * threads ? threads : 1;
}
inline conv_geometry image_share(conv_geometry g, std::int64_t images) {
  g.n = images;
  return g;
}

// conv2d_backward_data for `group` images per GEMM (images_per_gemm): dy of the group side by side
// [o, group*S], dcol = W^T dy in one product, then col2im (or, for 1x1, a scatter) per image.
template <class T>
void backward_data_grouped(const conv_geometry& g, const T* w, const T* dy, T* dx, std::int64_t group) {
  const std::int64_t s = g.spatial();
  T* dys = thread_scratch<T>(5, g.o * group * s);
  T* dcol = thread_scratch<T>(2, g.k() * group * s);
  for (std::int64_t i0 = 0; i0 < g.n; i0 += group) {
    const std::int64_t images = std::min(group, g.n - i0), cols = images * s;
    gather_planes(dy + i0 * g.out_size(), g.out_size(), g.o, s, images, dys);
    gemm<T>(true, false, g.k(), cols, g.o, T(1), w, g.k(), dys, cols, T(0), dcol, cols);
    if (g.pointwise()) {
      scatter_planes(dcol, g.in_size(), g.c, s, images, dx + i0 * g.in_size());
      continue;
    }
    for (std::int64_t j = 0; j < images; ++j) col2im(g, dcol + j * s, dx + (i0 + j) * g.in_size(), cols);
  }
}

// dx of g.n images: grouped products for small maps, else one product (and col2im) per image.
template <class T>
void backward_data_images(const conv_geometry& g, const T* w, const T* dy, T* dx) {
  const std::int64_t s = g.spatial();
  if (const std::int64_t group = images_per_gemm<T>(g); group > 1) return backward_data_grouped(g, w, dy, dx, group);
  T* col = g.pointwise() ? nullptr : thread_scratch<T>(2, g.k() * s);
  for (std::int64_t i = 0; i < g.n; ++i) {
    T* dxi = dx + i * g.in_size();
    // dcol[k, s] = W^T dy: W is stored [o, k], so op(A) = W^T has lda = k.
    gemm<T>(true, false, g.k(), s, g.o, T(1), w, g.k(), dy + i * g.out_size(), s, T(0), col ? col : dxi, s);
    if (col) col2im(g, col, dxi);
  }
}

// conv2d_backward_weight for `group` images per GEMM: dw (+)= dy [o, group*S] * col [k, group*S]^T,
// one product per group whose depth runs over the group's pixels.
template <class T>
void backward_weight_grouped(const conv_geometry& g, const T* x, const T* dy, T* dw, std::int64_t group) {
  const std::int64_t s = g.spatial();
  T* dys = thread_scratch<T>(5, g.o * group * s);
  T* col = thread_scratch<T>(2, g.k() * group * s);
  for (std::int64_t i0 = 0; i0 < g.n; i0 += group) {
    const std::int64_t images = std::min(group, g.n - i0), cols = images * s;
    gather_planes(dy + i0 * g.out_size(), g.out_size(), g.o, s, images, dys);
    if (g.pointwise())
      gather_planes(x + i0 * g.in_size(), g.in_size(), g.c, s, images, col);
    else
      for (std::int64_t j = 0; j < images; ++j) im2col(g, x + (i0 + j) * g.in_size(), col + j * s, cols);
    gemm<T>(false, true, g.o, g.k(), cols, T(1), dys, cols, col, cols, i0 == 0 ? T(0) : T(1), dw, g.k());
  }
}

// conv2d_backward_weight with each thread taking a share of the images into its own partial dw,
// summed at the end: for small weights on large maps, and for any weights once the batch holds 4
// images per thread (image_threads). Splitting each image's product instead gave NN4 conv1 (64 x 147
// weights, 48x48 outputs) 77 GFLOP/s: every image paid a barrier and an im2col shared between the
// cores for a product of 43 MFLOP. NN4's training step at batch 96 (AVX2, 2 threads, 3 alternating
// runs each) took 1014 -> 1001 ms with the larger layers split too, and 955 ms with 1x1 layers and
// grouped small maps split as well (each share then runs grouped products).
inline bool by_images_applies(const conv_geometry& g, std::int64_t group) {
  if (parallel::in_parallel() || parallel::max_threads() < 2) return false;
  return image_threads(g.n) > 1 || (!g.pointwise() && group == 1 && g.n >= 2 && g.o * g.k() <= 16384);
}
// dw = sum over images [i0, i1) of dy_i * col_i^T (overwritten; i1 > i0), image by image.
template <class T>
void backward_weight_images(const conv_geometry& g, const T* x, const T* dy, std::int64_t i0, std::int64_t i1, T* dw) {
  const std::int64_t s = g.spatial();
  T* col = g.pointwise() ? nullptr : thread_scratch<T>(2, g.k() * s);
  for (std::int64_t i = i0; i < i1; ++i) {
    const T* xi = x + i * g.in_size();
    if (col) im2col(g, xi, col);
    // dw[o, k] (+)= dy[o, s] * col[k, s]^T.
    gemm<T>(false, true, g.o, g.k(), s, T(1), dy + i * g.out_size(), s, col ? col : xi, s, i == i0 ? T(0) : T(1), dw, g.k());
  }
}
template <class T>
void backward_weight_by_images(const conv_geometry& g, const T* x, const T* dy, T* dw) {
  const std::int64_t size = g.o * g.k();
  const int threads = parallel::max_threads();
  T* partial = thread_scratch<T>(6, size * (threads - 1));  // threads 1.. (thread 0 sums into dw)
  int used = 1;
  parallel::parallel_region(
      [&](int t, int nt) {
        if (t == 0) used = nt;
        std::int64_t i0, i1;
        parallel::split_range(g.n, nt, t, i0, i1);
        T* acc = t == 0 ? dw : partial + (t - 1) * size;
        if (i0 == i1) return std::fill(acc, acc + size, T(0));
        // Nested: im2col and the products run on this thread.
        if (const std::int64_t group = images_per_gemm<T>(g); group > 1)
          backward_weight_grouped(image_share(g, i1 - i0), x + i0 * g.in_size(), dy + i0 * g.out_size(), acc, group);
        else
          backward_weight_images(g, x, dy, i0, i1, acc);
      },
      threads);
  for (int t = 1; t < used; ++t)
    for (std::int64_t j = 0; j < size; ++j) dw[j] += partial[(t - 1) * size + j];
}

}  // namespace detail

// Output shape [n, o, oh, ow] for input x (NCHW) and weights w (OIHW); throws shape_error naming both.
inline shape conv2d_output_shape(const shape& x, const shape& w, const conv2d_params& p) {
  const detail::conv_geometry g = detail::conv_geometry_of(x, w, p, "conv2d");
  return shape{g.n, g.o, g.oh, g.ow};
}

// y = conv(x, w) + bias (bias empty = none). y is resized to conv2d_output_shape.
template <class T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, Tensor<T>& y, const conv2d_params& p) {
  const detail::conv_geometry g = detail::conv_geometry_of(x.shape(), w.shape(), p, "conv2d_forward");
  detail::check_bias(bias, g.o, "conv2d_forward");
  x.require_contiguous("conv2d_forward input");
  w.require_contiguous("conv2d_forward weights");
  FACENET_CHECK(!x.shares_storage_with(y), argument_error, "conv2d_forward: input and output share storage");
  y.resize({g.n, g.o, g.oh, g.ow});
  detail::conv_forward_args<T> a;
  a.weights = detail::a_source<T>{w.data(), g.k(), false, nullptr};
  a.bias = bias.empty() ? nullptr : bias.data();
  T* ws = detail::thread_scratch<T>(2, detail::forward_workspace_size<T>(g, detail::forward_grouping::grouped));
  std::int64_t* offsets = detail::thread_scratch<std::int64_t>(2, detail::row_offsets_size(g));
  detail::forward_batch(g, a, x.data(), y.data(), static_cast<const T*>(nullptr), ws, offsets,
                        detail::forward_grouping::grouped);
}

// dx = d loss / d x given dy = d loss / d y. dx is resized to x_shape and overwritten.
template <class T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const shape& x_shape, Tensor<T>& dx,
                          const conv2d_params& p) {
  const detail::conv_geometry g = detail::conv_geometry_of(x_shape, w.shape(), p, "conv2d_backward_data");
  check_shape(dy, shape{g.n, g.o, g.oh, g.ow}, "conv2d_backward_data: dy");
  dy.require_contiguous("conv2d_backward_data dy");
  w.require_contiguous("conv2d_backward_data weights");
  dx.resize(x_shape);
  const int threads = detail::image_threads(g.n);
  if (threads == 1) return detail::backward_data_images(g, w.data(), dy.data(), dx.data());
  parallel::for_shares(g.n, threads, [&](std::int64_t first, std::int64_t last) {
    detail::backward_data_images(detail::image_share(g, last - first), w.data(), dy.data() + first * g.out_size(),
                                 dx.data() + first * g.in_size());
  });
}

// The data gradient of a stride-1 convolution is itself a convolution: of dy, with the weights
// transposed and rotated by 180 degrees (conv2d_flip_weights) and each side padded by kernel - 1 -
// pad. Run through a conv2d_plan it needs no column buffer and no col2im, and 3x3 layers can take
// Winograd. It applies when no padding reaches the kernel size (the new padding must be >= 0).
inline bool conv2d_data_grad_is_conv(const shape& w, const conv2d_params& p) {
  return w.rank() == 4 && p.stride_h == 1 && p.stride_w == 1 && p.pad_top < w[2] && p.pad_bottom < w[2] &&
         p.pad_left < w[3] && p.pad_right < w[3];
}
inline conv2d_params conv2d_data_grad_params(const shape& w, const conv2d_params& p) {
  FACENET_CHECK(conv2d_data_grad_is_conv(w, p), argument_error,
                "conv2d_data_grad_params: weights " + w.str() + " with " + p.str() + " have no convolution form");
  const auto kh = static_cast<int>(w[2]), kw = static_cast<int>(w[3]);
  return conv2d_params{1, 1, kh - 1 - p.pad_top, kh - 1 - p.pad_bottom, kw - 1 - p.pad_left, kw - 1 - p.pad_right};
}
// out[c, o, ky, kx] = w[o, c, kh - 1 - ky, kw - 1 - kx]; out is resized.
template <class T>
void conv2d_flip_weights(const Tensor<T>& w, Tensor<T>& out) {
  FACENET_CHECK(w.rank() == 4, shape_error, "conv2d_flip_weights: weights must be OIHW, got " + w.shape().str());
  w.require_contiguous("conv2d_flip_weights weights");
  const std::int64_t o = w.size(0), c = w.size(1), kh = w.size(2), kw = w.size(3);
  out.resize({c, o, kh, kw});
  for (std::int64_t oc = 0; oc < o; ++oc)
    for (std::int64_t ic = 0; ic < c; ++ic) {
      const T* src = w.data() + (oc * c + ic) * kh * kw;
      T* dst = out.data() + (ic * o + oc) * kh * kw;
      for (std::int64_t t = 0; t < kh * kw; ++t) dst[t] = src[kh * kw - 1 - t];
    }
}

// What conv2d_backward_weight's automatic choice runs: Winograd for stride-1 3x3 weights with 32+
// channels each side, by output map size. dw of a batch of 96, 2 threads, AVX2, ms for GEMM lowering
// / F(2x2) / F(4x4): NN4 conv3 (64 -> 192, 24x24) 76.7 / 49.5 / 38.8, inception_3a (96 -> 128,
// 12x12) 24.7 / 14.9 / 18.4, inception_4a (96 -> 192, 6x6) 9.4 / 10.6 / 18.5; 16 images of IRv1's
// Block35 (32 channels, 17x17) 1.32 / 0.80 / 0.96. Unlike the forward pass, small maps do not starve
// the GEMMs here (their depth is the tiles of all the images), so F(2x2) pays from 8x8.
inline conv2d_algo conv2d_weight_grad_algo(const shape& w, const conv2d_params& p, std::int64_t oh, std::int64_t ow) {
  if (!detail::winograd_applies(w[2], w[3], p.stride_h, p.stride_w) || w[0] < 32 || w[1] < 32) return conv2d_algo::gemm;
  return detail::winograd_by_map(w, oh, ow, true);
}

// dw = d loss / d w summed over the batch (and db = d loss / d bias when db is non-null), overwritten.
// dw must arrive shaped [o, c, kh, kw]: with strides > 1 the kernel size is not implied by x and dy.
// `algo` forces the GEMM lowering or Winograd (3x3 stride 1 only; tests, benchmarks).
template <class T>
void conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dw, Tensor<T>* db, const conv2d_params& p,
                            conv2d_algo algo = conv2d_algo::automatic) {
  FACENET_CHECK(x.rank() == 4 && dy.rank() == 4, shape_error,
                "conv2d_backward_weight: x " + x.shape().str() + " and dy " + dy.shape().str() + " must be rank 4");
  FACENET_CHECK(x.n() == dy.n(), shape_error,
                "conv2d_backward_weight: batch of x " + x.shape().str() + " differs from dy " + dy.shape().str());
  FACENET_CHECK(dw.rank() == 4 && dw.size(0) == dy.c() && dw.size(1) == x.c(), shape_error,
                "conv2d_backward_weight: dw must arrive shaped [o, c, kh, kw] to give the kernel size; got " +
                    dw.shape().str() + " for x " + x.shape().str() + " and dy " + dy.shape().str());
  const detail::conv_geometry g = detail::conv_geometry_of(x.shape(), dw.shape(), p, "conv2d_backward_weight");
  check_shape(dy, shape{g.n, g.o, g.oh, g.ow}, "conv2d_backward_weight: dy");
  x.require_contiguous("conv2d_backward_weight x");
  dy.require_contiguous("conv2d_backward_weight dy");
  dw.require_contiguous("conv2d_backward_weight dw");
  const bool winograd_fits = detail::winograd_applies(g.kh, g.kw, g.sh, g.sw);
  FACENET_CHECK(algo != conv2d_algo::winograd_5x5, unsupported_error,
                "conv2d_backward_weight: Winograd F(2x2, 5x5) is forward only; use automatic or gemm");
  FACENET_CHECK(algo == conv2d_algo::automatic || algo == conv2d_algo::gemm || winograd_fits, unsupported_error,
                "conv2d_backward_weight: Winograd needs 3x3 weights and stride 1; got weights " + dw.shape().str() + ", " +
                    p.str());
  if (algo == conv2d_algo::automatic) algo = conv2d_weight_grad_algo(dw.shape(), p, g.oh, g.ow);
  const std::int64_t s = g.spatial();
  const std::int64_t group = detail::images_per_gemm<T>(g);
  if (g.n > 0 && (algo == conv2d_algo::winograd || algo == conv2d_algo::winograd_4x4)) {
    (algo == conv2d_algo::winograd_4x4 ? detail::backward_weight_winograd<4, T> : detail::backward_weight_winograd<2, T>)(
        g, x.data(), dy.data(), dw.data());
  } else if (detail::by_images_applies(g, group)) {
    detail::backward_weight_by_images(g, x.data(), dy.data(), dw.data());
  } else if (group > 1) {
    detail::backward_weight_grouped(g, x.data(), dy.data(), dw.data(), group);
  } else {
    detail::backward_weight_images(g, x.data(), dy.data(), 0, g.n, dw.data());
  }
  if (g.n == 0) dw.zero();
  if (!db) return;
  db->resize({g.o});
  parallel::parallel_for(
      0, g.o,
      [&](std::int64_t oc) {
        T sum = 0;
        for (std::int64_t i = 0; i < g.n; ++i) {
          const T* d = dy.data() + i * g.out_size() + oc * s;
          for (std::int64_t j = 0; j < s; ++j) sum += d[j];
        }
        db->data()[oc] = sum;
      },
      detail::min_iterations(g.n * s));
}

// Inference convolution with the weights packed once into the GEMM's A-panel layout (or Winograd's
// transformed form), bias, activation and an optional scaled residual fused into the output pass.
// Stride-1 3x3 weights are packed for each algorithm on the first call that needs it (which one
// depends on the map size): thread-safe, and never again until repack(). Otherwise immutable after
// construction, so one plan may serve several threads (each with its own workspace).
template <class T>
class conv2d_plan {
 public:
  conv2d_plan(const Tensor<T>& w, const Tensor<T>& bias, const conv2d_params& p, activation act = activation::none,
              conv2d_algo algo = conv2d_algo::automatic)
      : w_shape_(w.shape()), params_(p), act_(act), algo_(algo) {
    FACENET_CHECK(w.rank() == 4 && w.numel() > 0, shape_error, "conv2d_plan: weights must be non-empty OIHW, got " + w.shape().str());
    w.require_contiguous("conv2d_plan weights");
    detail::check_bias(bias, w.size(0), "conv2d_plan");
    FACENET_CHECK(p.stride_h > 0 && p.stride_w > 0 && p.pad_top >= 0 && p.pad_bottom >= 0 && p.pad_left >= 0 &&
                      p.pad_right >= 0,
                  argument_error, "conv2d_plan: strides must be positive and padding non-negative (" + p.str() + ")");
    const std::int64_t r = kernel_of(algo);
    FACENET_CHECK(!is_winograd(algo) || detail::winograd_applies(w.size(2), w.size(3), p.stride_h, p.stride_w, r),
                  unsupported_error,
                  "conv2d_plan: this Winograd form needs " + std::to_string(r) + "x" + std::to_string(r) +
                      " weights and stride 1; got weights " + w.shape().str() + ", " + p.str());
    if (algo == conv2d_algo::automatic && !takes_winograd(w.shape(), p)) algo_ = conv2d_algo::gemm;
    pack(w, bias);
  }

  // Packs new weights (and bias) of the plan's shape into its buffers, allocating nothing: training
  // repacks once per step and reuses the plan for every image of the batch. Not concurrently with
  // forward().
  void repack(const Tensor<T>& w, const Tensor<T>& bias) {
    FACENET_CHECK(w.shape() == w_shape_, shape_error,
                  "conv2d_plan::repack: weights " + w.shape().str() + " differ from the plan's " + w_shape_.str());
    w.require_contiguous("conv2d_plan::repack weights");
    detail::check_bias(bias, w_shape_[0], "conv2d_plan::repack");
    FACENET_CHECK(bias.empty() == bias_.empty(), argument_error, "conv2d_plan::repack: bias present in only one of plan and call");
    pack(w, bias);
  }

  // Automatic selection for stride-1 3x3 weights with >= 32 input and output channels, by output map
  // size (5x5 weights: >= 16 channels, detail::winograd_5x5_by_map). bench_conv2d, batch 1, AVX2, us
  // on 2 threads (1 thread) for implicit GEMM / F(2x2) / F(4x4): NN4 conv3 24x24 900 / 527 / 393 (1496 / 1004 / 709), IRv1 conv2d_4a 36x36 2243 / 1379 /
  // 926 (4020 / 2427 / 1792), mixed_6a's 192-channel 17x17 1453 / 828 / 725, conv2d_2b (32 -> 64 at
  // 77x77) 1457 / 1019 / 760; NN4 3a 12x12 245 / 163 / 182. F(4x4) needs enough tiles (16 outputs
  // each) to fill its GEMMs, and enough channels to pay for its larger transforms. Inside the
  // networks (facenet bench --profile), where weights and maps come cold from the previous layer,
  // F(2x2) won on IRv1 mixed_7a's 256-channel 8x8 (0.62 -> 0.38 ms) but lost on NN4 4a's 6x6 (0.10 ->
  // 0.13 ms) and on the 32-channel 17x17 Block35 (0.077 -> 0.08-0.09 ms), although it won both
  // alone (99 against 114 us, 53 against 79). Several images per call (a thread's share of a batch)
  // share the Winograd GEMMs; one thread, batch 8 (2), us per image, GEMM / F(2x2) / F(4x4): NN4 3a's
  // 12x12 408 / 275 / 221 (409 / 285 / 222), IRv1 mixed_7a's 8x8 1125 / 658 / 453 (1124 / 584 / 673),
  // NN4 4a's 6x6 158 / 121 / 153 (156 / 119 / 220), NN4 5a's 3x3 75 / 112 / 137. So an image's
  // result can depend, within float rounding (~1e-7 on NN4's embeddings), on how many images shared
  // its call: a batch's rows agree with single images to that rounding, not bit for bit.
  // F(2x2, 5x5) pays from 16 channels (NN4 inception_3a's 16 -> 32 at 12x12, batch 8 on one thread:
  // 0.56 -> 0.49 ms), the 3x3 forms from 32.
  static bool winograd_channels(std::int64_t c, std::int64_t o, std::int64_t kernel = 3) {
    const std::int64_t least = kernel == 5 ? 16 : 32;
    return c >= least && o >= least;
  }
  static conv2d_algo automatic_map(const shape& w, std::int64_t oh, std::int64_t ow, std::int64_t images = 1) {
    if (w[2] == 5) return detail::winograd_5x5_by_map(oh, ow);
    return detail::winograd_by_map(w, oh, ow, false, images);
  }
  // Whether automatic selection may run weights w with params p by Winograd (then per map size).
  static bool takes_winograd(const shape& w, const conv2d_params& p) {
    return (w[2] == 3 || w[2] == 5) && detail::winograd_applies(w[2], w[3], p.stride_h, p.stride_w, w[2]) &&
           winograd_channels(w[1], w[0], w[2]);
  }
  // The algorithm automatic selection would run weights w with params p by for oh x ow outputs.
  static conv2d_algo automatic_algo(const shape& w, const conv2d_params& p, std::int64_t oh, std::int64_t ow) {
    return takes_winograd(w, p) ? automatic_map(w, oh, ow) : conv2d_algo::gemm;
  }

  // The algorithm forward() uses for an input of shape x.
  conv2d_algo algo_for(const shape& x) const {
    const shape y = output_shape(x);
    return algo_for_map(y[2], y[3], images_per_call(x[0]));
  }

  shape output_shape(const shape& x) const { return conv2d_output_shape(x, w_shape_, params_); }

  // y = act(conv(x) + bias), or act(residual + residual_scale * (conv(x) + bias)) when residual is given.
  void forward(const Tensor<T>& x, Tensor<T>& y, Tensor<T>& ws, const Tensor<T>* residual = nullptr,
               T residual_scale = 1) const {
    const detail::conv_geometry g = detail::conv_geometry_of(x.shape(), w_shape_, params_, "conv2d_plan::forward");
    x.require_contiguous("conv2d_plan::forward input");
    const shape out{g.n, g.o, g.oh, g.ow};
    if (residual) {
      check_shape(*residual, out, "conv2d_plan::forward: residual");
      residual->require_contiguous("conv2d_plan::forward residual");
      // Earlier K blocks park partial sums in y before the residual is read, so it must not alias y.
      FACENET_CHECK(!residual->shares_storage_with(y), argument_error,
                    "conv2d_plan::forward: residual must not share storage with the output");
    }
    FACENET_CHECK(!x.shares_storage_with(y), argument_error, "conv2d_plan::forward: input and output share storage");
    const int threads = detail::image_threads(g.n);
    const conv2d_algo algo = algo_for_map(g.oh, g.ow, images_per_call(g.n));
    const T* weights = packed(algo);
    const std::int64_t lowering = workspace_size(g, algo);
    if (ws.numel() < lowering * threads || !ws.is_contiguous()) ws.resize({lowering * threads});
    y.resize(out);
    detail::conv_forward_args<T> a;
    a.weights = detail::a_source<T>{nullptr, 0, false, weights};
    a.bias = bias_.empty() ? nullptr : bias_.data();
    a.residual_scale = residual_scale;
    a.relu = act_ == activation::relu;
    const T* r = residual ? residual->data() : nullptr;
    if (threads == 1) return forward_images(g, algo, a, x.data(), y.data(), r, ws.data());
    // Each thread runs its share of the images with the kernels serial and its own part of ws.
    parallel::for_shares(g.n, threads, [&](std::int64_t first, std::int64_t last) {
      forward_images(detail::image_share(g, last - first), algo, a, x.data() + first * g.in_size(),
                     y.data() + first * g.out_size(), r ? r + first * g.out_size() : nullptr,
                     ws.data() + parallel::thread_index() * lowering);
    });
  }

  const shape& weight_shape() const { return w_shape_; }
  const conv2d_params& params() const { return params_; }

 private:
  static bool is_winograd(conv2d_algo a) {
    return a == conv2d_algo::winograd || a == conv2d_algo::winograd_4x4 || a == conv2d_algo::winograd_5x5;
  }
  static int form_index(conv2d_algo a) {
    return a == conv2d_algo::winograd ? 1 : a == conv2d_algo::winograd_4x4 ? 2 : a == conv2d_algo::winograd_5x5 ? 3 : 0;
  }
  // Output tile size and kernel size of a Winograd form.
  static int tile_of(conv2d_algo a) { return a == conv2d_algo::winograd_4x4 ? 4 : 2; }
  static int kernel_of(conv2d_algo a) { return a == conv2d_algo::winograd_5x5 ? 5 : 3; }

  conv2d_algo algo_for_map(std::int64_t oh, std::int64_t ow, std::int64_t images) const {
    return algo_ == conv2d_algo::automatic ? automatic_map(w_shape_, oh, ow, images) : algo_;
  }
  // Images of an n-image batch that one call of forward_images takes: the smallest thread share when
  // the batch is split over the threads.
  static std::int64_t images_per_call(std::int64_t n) { return n / detail::image_threads(n); }

  // Batches of 6x6 and smaller maps (NN4's inception 4 and 5) run several images per GEMM: NN4 batch
  // 64 took 3% less time (facenet bench, 4 alternating runs: 158-161 ms against 163-166). Larger maps
  // stay image by image: IRv1's 8x8 layers grouped were no faster, and 17x17 ones were slower.
  static detail::forward_grouping plan_grouping(const detail::conv_geometry& g) {
    return g.spatial() <= 36 ? detail::forward_grouping::grouped : detail::forward_grouping::per_image;
  }
  static std::int64_t workspace_size(const detail::conv_geometry& g, conv2d_algo algo) {
    return std::max<std::int64_t>(is_winograd(algo) ? detail::winograd_workspace_size(g, tile_of(algo), kernel_of(algo))
                                                    : detail::forward_workspace_size<T>(g, plan_grouping(g)),
                                  1);
  }
  // Images of g (g.n of them, at x, y and residual r) through Winograd or the GEMM lowering.
  static void forward_images(const detail::conv_geometry& g, conv2d_algo algo, detail::conv_forward_args<T> a, const T* x,
                             T* y, const T* r, T* ws) {
    if (!is_winograd(algo))
      return detail::forward_batch(g, a, x, y, r, ws, detail::thread_scratch<std::int64_t>(2, detail::row_offsets_size(g)),
                                   plan_grouping(g));
    const auto images = algo == conv2d_algo::winograd_4x4   ? detail::forward_images_winograd<4, T>
                        : algo == conv2d_algo::winograd_5x5 ? detail::forward_images_winograd<2, T, 5>
                                                            : detail::forward_images_winograd<2, T>;
    images(g, a, a.weights.packed, x, y, r, ws);
  }

  // The weights in algo's form, packed from source_ on first use.
  const T* packed(conv2d_algo algo) const {
    form& f = forms_[form_index(algo)];
    if (!f.ready.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(pack_mutex_);
      if (!f.ready.load(std::memory_order_relaxed)) {
        pack_form(algo, source_.data(), f.data);
        f.ready.store(true, std::memory_order_release);
      }
    }
    return f.data.data();
  }

  void pack_form(conv2d_algo algo, const T* w, Tensor<T>& dst) const {
    const std::int64_t o = w_shape_[0], c = w_shape_[1], k = c * w_shape_[2] * w_shape_[3];
    const auto sized = [&](std::int64_t n) {
      if (dst.rank() != 1 || dst.numel() != n) dst = Tensor<T>::uninitialized({n});
      return dst.data();
    };
    if (algo == conv2d_algo::winograd)
      detail::winograd_pack_weights<2, T>(w, o, c, sized(detail::winograd_packed_size<T>(2, o, c)));
    else if (algo == conv2d_algo::winograd_4x4)
      detail::winograd_pack_weights<4, T>(w, o, c, sized(detail::winograd_packed_size<T>(4, o, c)));
    else if (algo == conv2d_algo::winograd_5x5)
      detail::winograd_pack_weights<2, T, 5>(w, o, c, sized(detail::winograd_packed_size<T>(2, o, c, 5)));
    else
      detail::pack_a_full(detail::a_source<T>{w, k, false, nullptr}, o, k, sized(detail::packed_a_size<T>(o, k)));
  }

  // Plans that choose per map size keep the weights (source_) for the forms not packed yet and
  // repack the forms already packed; the others pack their one form now.
  void pack(const Tensor<T>& w, const Tensor<T>& bias) {
    const std::int64_t o = w_shape_[0];
    if (algo_ == conv2d_algo::automatic) {
      if (source_.numel() != w.numel()) source_ = Tensor<T>::uninitialized(w_shape_);
      source_.copy_from(w);
      for (conv2d_algo a : {conv2d_algo::gemm, conv2d_algo::winograd, conv2d_algo::winograd_4x4, conv2d_algo::winograd_5x5}) {
        form& f = forms_[form_index(a)];
        if (f.ready.load(std::memory_order_relaxed)) pack_form(a, w.data(), f.data);
      }
    } else {
      form& f = forms_[form_index(algo_)];
      pack_form(algo_, w.data(), f.data);
      f.ready.store(true, std::memory_order_release);
    }
    if (!bias.empty()) {
      if (bias_.rank() != 1 || bias_.numel() != o) bias_ = Tensor<T>::uninitialized({o});
      bias_.copy_from(bias.reshape({o}));
    }
  }

  struct form {
    std::atomic<bool> ready{false};
    Tensor<T> data;
  };

  shape w_shape_;
  conv2d_params params_;
  activation act_;
  conv2d_algo algo_;  // automatic only for weights Winograd may run (chosen per map size)
  Tensor<T> source_;  // the weights, kept when algo_ is automatic
  mutable std::mutex pack_mutex_;
  mutable std::array<form, 4> forms_;  // GEMM A panels, F(2x2)'s U, F(4x4)'s U, F(2x2, 5x5)'s U
  Tensor<T> bias_;
};

}  // namespace facenet::kernels
