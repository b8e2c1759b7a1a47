// Rearrangements that turn a convolution into GEMMs: geometry, padding, im2col / col2im, and the
// "extended column" layout of stride-1 implicit GEMM (rows of the padded image are contiguous B rows).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "facenet/core/parallel.hpp"
#include "facenet/core/simd.hpp"
#include "facenet/kernels/detail/gemm_core.hpp"

namespace facenet::kernels::detail {

struct conv_geometry {
  std::int64_t n, c, h, w;    // input
  std::int64_t o, kh, kw;     // weights [o, c, kh, kw]
  std::int64_t oh, ow;        // output
  std::int64_t sh, sw, pt, pb, pl, pr;

  std::int64_t k() const { return c * kh * kw; }
  std::int64_t in_size() const { return c * h * w; }
  std::int64_t out_size() const { return o * oh * ow; }
  std::int64_t spatial() const { return oh * ow; }
  bool pointwise() const { return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt + pb + pl + pr == 0; }
  // Few pixels per image: one GEMM over the batch (N = n * oh * ow) into scratch, then a pass that
  // scatters it to NCHW, beats one mostly-edge-tile product per image.
  bool batched_pointwise() const { return pointwise() && n > 1 && spatial() < 64; }
  // Stride 1: output row oy, column ox reads padded pixel (oy + ky, ox + kx), so with output rows laid
  // out at the padded width wp, B row (c, ky, kx) is the padded image shifted by ky*wp + kx. The
  // wp - ow extra columns per row are computed and dropped; measured, that still beats im2col even
  // when 6 of 14 columns are dropped (1x7 on 8x8). Outputs of 16 pixels and less are lowered instead
  // (im2col_by_table): a 3x3 map padded by 1 makes 9 columns instead of 15, which the few-column
  // product of packed weights takes (NN4's inception_5a/5b 3x3 layers).
  bool implicit() const { return sh == 1 && sw == 1 && !pointwise() && spatial() > 16; }
  std::int64_t hp() const { return h + pt + pb; }
  std::int64_t wp() const { return w + pl + pr; }
  // Elements of the padded copy, plus slack for the discarded columns of the last extended row.
  std::int64_t padded_size() const { return c * hp() * wp() + kw + 64; }
  std::int64_t extended_n() const { return oh * wp(); }
  bool needs_padded_copy() const { return pt + pb + pl + pr > 0 || kw > 1; }
  bool needs_compaction() const { return wp() != ow; }
  // A 1 x kw kernel runs as kw x 1 on the transposed image: its output rows are then as wide as the
  // padded rows, so no column is computed and dropped (1x7 on 8x8 otherwise drops 6 of 14).
  bool transposes() const { return implicit() && kh == 1 && kw > 1; }
  conv_geometry transposed() const { return {n, c, w, h, o, kw, kh, ow, oh, sw, sh, pl, pr, pt, pb}; }
};

// Iterations per thread below which a loop whose iterations each touch `elements` values stays serial
// (a parallel region costs microseconds; tiny layers and gradient checks must not pay it).
inline std::int64_t min_iterations(std::int64_t elements) { return std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(elements, 1)); }

// Outputs o in [lo, hi) whose input index o*stride + offset lies in [0, in).
inline void valid_outputs(std::int64_t in, std::int64_t stride, std::int64_t offset, std::int64_t out, std::int64_t& lo,
                          std::int64_t& hi) {
  lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  hi = in - offset <= 0 ? 0 : (in - offset - 1) / stride + 1;
  lo = std::min(lo, out);
  hi = std::max(lo, std::min(hi, out));
}

// Copies n values; vector copies with an overlapping last vector instead of a scalar tail (GCC turns
// short copy loops into memmove calls, which dominate on 17-wide rows).
template <class T>
inline void copy_row(const T* src, T* dst, std::int64_t n) {
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  if (n < w) {
    for (std::int64_t j = 0; j < n; ++j) dst[j] = src[j];
    return;
  }
  for (std::int64_t j = 0; j + w <= n; j += w) simd::store(dst + j, simd::load(src + j));
  simd::store(dst + n - w, simd::load(src + n - w));
}

// dst[j] = src[2 j] for j < n (stride-2 im2col rows), a vector of even elements at a time.
template <class T>
inline void copy_even(const T* src, T* dst, std::int64_t n) {
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  std::int64_t j = 0;
  for (; j + w <= n; j += w) simd::store(dst + j, simd::load_even(src + 2 * j));
  if (j < n) {
    const auto r = static_cast<std::size_t>(n - j);
    simd::store_partial(dst + j, simd::load_even(src + 2 * j, r), r);
  }
}

// range[2k], range[2k + 1] = the outputs [lo, hi) that kernel offset k reads inside the image, for
// every k in [0, kernel).
inline void offset_ranges(std::int64_t in, std::int64_t stride, std::int64_t pad, std::int64_t out, std::int64_t kernel,
                          std::int64_t* range) {
  for (std::int64_t k = 0; k < kernel; ++k) valid_outputs(in, stride, k - pad, out, range[2 * k], range[2 * k + 1]);
}

// One im2col row, output rows [oy0, oy1): dst[(oy - oy0)*ow + ox] = src[oy*sh - pt + ky][ox*sw - pl + kx],
// 0 outside [y_lo, y_hi) x [x_lo, x_hi). Plain loops: on 3-wide rows calls to memset/memmove would
// cost more than the copy.
template <class T>
void im2col_row(const conv_geometry& g, const T* src, std::int64_t ky, std::int64_t kx, const std::int64_t* y_range,
                const std::int64_t* x_range, std::int64_t oy0, std::int64_t oy1, T* dst) {
  const std::int64_t x_lo = x_range[0], x_hi = x_range[1];
  for (std::int64_t oy = oy0; oy < oy1; ++oy, dst += g.ow) {
    if (oy < y_range[0] || oy >= y_range[1]) {
      for (std::int64_t ox = 0; ox < g.ow; ++ox) dst[ox] = T(0);
      continue;
    }
    const T* s = src + (oy * g.sh - g.pt + ky) * g.w + kx - g.pl;
    for (std::int64_t ox = 0; ox < x_lo; ++ox) dst[ox] = T(0);
    if (g.sw == 1)
      copy_row(s + x_lo, dst + x_lo, x_hi - x_lo);
    else if (g.sw == 2)
      copy_even(s + 2 * x_lo, dst + x_lo, x_hi - x_lo);
    else
      for (std::int64_t ox = x_lo; ox < x_hi; ++ox) dst[ox] = s[ox * g.sw];
    for (std::int64_t ox = x_hi; ox < g.ow; ++ox) dst[ox] = T(0);
  }
}

// im2col of small outputs (NN4's and IRv1's 3x3 and 6x6 maps) through a table of source offsets, the
// same for every channel: one pass per (c, ky, kx) row cost ~50 cycles of loop and edge handling for
// 9 values (a third of a stride-2 3x3 layer's time at 3x3 outputs). Up to this many kernel taps x
// output pixels.
inline constexpr std::int64_t im2col_table_limit = 4096;

// Source offsets within a channel of the kernel taps x output pixels of rows [oy0, oy1), tap-major,
// -1 for padding; the same for every channel. In the calling thread's scratch. Nested loops, not
// divisions of a flat index: 64-bit divisions cost more than the copies they serve.
inline const std::int32_t* offset_table(const conv_geometry& g, std::int64_t oy0, std::int64_t oy1) {
  std::int32_t* at = thread_scratch<std::int32_t>(5, g.kh * g.kw * (oy1 - oy0) * g.ow);
  std::int32_t* entry = at;
  for (std::int64_t ky = 0; ky < g.kh; ++ky)
    for (std::int64_t kx = 0; kx < g.kw; ++kx)
      for (std::int64_t oy = oy0; oy < oy1; ++oy) {
        const std::int64_t iy = oy * g.sh - g.pt + ky;
        for (std::int64_t ox = 0; ox < g.ow; ++ox) {
          const std::int64_t ix = ox * g.sw - g.pl + kx;
          *entry++ = iy >= 0 && iy < g.h && ix >= 0 && ix < g.w ? static_cast<std::int32_t>(iy * g.w + ix) : -1;
        }
      }
  return at;
}

// src[at] or 0 for padding, without a branch (the padding pattern mispredicts).
template <class T>
inline T gather_or_zero(const T* src, std::int32_t at) {
  const T v = src[at < 0 ? 0 : at];
  return at < 0 ? T(0) : v;
}

template <class T>
void im2col_by_table(const conv_geometry& g, const T* x, T* col, std::int64_t ld, std::int64_t oy0, std::int64_t oy1) {
  const std::int64_t taps = g.kh * g.kw, s = (oy1 - oy0) * g.ow;
  const std::int32_t* at = offset_table(g, oy0, oy1);
  parallel::parallel_for(
      0, g.c,
      [&](std::int64_t c) {
        const T* src = x + c * g.h * g.w;
        for (std::int64_t t = 0; t < taps; ++t) {
          T* dst = col + (c * taps + t) * ld;
          const std::int32_t* a = at + t * s;
          for (std::int64_t j = 0; j < s; ++j) dst[j] = gather_or_zero(src, a[j]);
        }
      },
      min_iterations(taps * s));
}

// B of a convolution over few output pixels (at most im2col_table_limit taps x pixels), gathered
// from the image while packing: row p = (channel, tap), column j = output pixel. No lowered matrix
// is written by one thread and read by another: each GEMM thread gathers the columns it multiplies
// from the read-only input (NN4 inception_3c's 5x5 stride 2 at batch 1 ran slower on 2 threads than
// on 1 through im2col).
template <class T>
struct b_gathered {
  const T* x;
  std::int64_t plane, taps, s;  // channel size, taps per channel, output pixels
  const std::int32_t* table;    // offset_table of all output rows
  T at(std::int64_t p, std::int64_t j) const { return gather_or_zero(x + p / taps * plane, table[p % taps * s + j]); }
  void direct_rows(std::int64_t, const T*&, const std::int64_t*&) const {}  // rows are not in memory
  template <int NR>
  void pack(std::int64_t k0, std::int64_t kc, std::int64_t j0, std::int64_t cols, T* dst) const {
    std::int64_t c = k0 / taps, t = k0 % taps;
    for (std::int64_t p = 0; p < kc; ++p) {
      const T* src = x + c * plane;
      const std::int32_t* a = table + t * s + j0;
      T* d = dst + p * NR;
      for (std::int64_t jt = 0; jt < cols; jt += NR, d += NR * kc) {
        const std::int64_t width = std::min<std::int64_t>(NR, cols - jt);
        for (std::int64_t j = 0; j < width; ++j) d[j] = gather_or_zero(src, a[jt + j]);
        for (std::int64_t j = width; j < NR; ++j) d[j] = T(0);
      }
      if (++t == taps) t = 0, ++c;
    }
  }
};

// col[(c*kh + ky)*kw + kx][(oy - oy0)*ow + ox] = x[c][oy*sh - pt + ky][ox*sw - pl + kx] (0 outside),
// for the output rows [oy0, oy1) (all by default). Rows of col are `ld` apart
// (default oh*ow; wider when several images sit side by side). The valid ranges per kernel offset are
// computed once: 64-bit divisions per row took a third of the time of IRv1 mixed_7a's stride-2 layers
// (3x3 outputs).
template <class T>
void im2col(const conv_geometry& g, const T* x, T* col, std::int64_t ld = 0, std::int64_t oy0 = 0, std::int64_t oy1 = -1) {
  if (ld == 0) ld = g.spatial();
  if (oy1 < 0) oy1 = g.oh;
  if (g.kh * g.kw * (oy1 - oy0) * g.ow <= im2col_table_limit) return im2col_by_table(g, x, col, ld, oy0, oy1);
  std::int64_t* y_ranges = thread_scratch<std::int64_t>(4, 2 * (g.kh + g.kw));
  std::int64_t* x_ranges = y_ranges + 2 * g.kh;
  offset_ranges(g.h, g.sh, g.pt, g.oh, g.kh, y_ranges);
  offset_ranges(g.w, g.sw, g.pl, g.ow, g.kw, x_ranges);
  parallel::parallel_for(
      0, g.c * g.kh,
      [&](std::int64_t item) {
        const std::int64_t c = item / g.kh, ky = item % g.kh;
        const T* src = x + c * g.h * g.w;
        for (std::int64_t kx = 0; kx < g.kw; ++kx)
          im2col_row(g, src, ky, kx, y_ranges + 2 * ky, x_ranges + 2 * kx, oy0, oy1, col + (item * g.kw + kx) * ld);
      },
      min_iterations(g.kw * (oy1 - oy0) * g.ow));
}

// The adjoint of im2col: dx[c][iy][ix] = sum of the col entries that read it. Overwrites dx. Threads
// own whole channels, so no two write the same element. Rows of col are `ld` apart, as in im2col.
template <class T>
void col2im(const conv_geometry& g, const T* col, T* dx, std::int64_t ld = 0) {
  if (ld == 0) ld = g.spatial();
  parallel::parallel_for(
      0, g.c,
      [&](std::int64_t c) {
        T* dst = dx + c * g.h * g.w;
        std::fill(dst, dst + g.h * g.w, T(0));
        for (std::int64_t ky = 0; ky < g.kh; ++ky)
          for (std::int64_t kx = 0; kx < g.kw; ++kx) {
            const T* src = col + ((c * g.kh + ky) * g.kw + kx) * ld;
            std::int64_t ox_lo, ox_hi, oy_lo, oy_hi;
            valid_outputs(g.w, g.sw, kx - g.pl, g.ow, ox_lo, ox_hi);
            valid_outputs(g.h, g.sh, ky - g.pt, g.oh, oy_lo, oy_hi);
            for (std::int64_t oy = oy_lo; oy < oy_hi; ++oy) {
              T* d = dst + (oy * g.sh - g.pt + ky) * g.w + kx - g.pl;
              const T* s = src + oy * g.ow;
              for (std::int64_t ox = ox_lo; ox < ox_hi; ++ox) d[ox * g.sw] += s[ox];
            }
          }
      },
      min_iterations(g.kh * g.kw * g.spatial()));
}

// Zero-padded copy of one image: [c][hp][wp], then zeroed slack. pad_planes writes planes [c0, c1)
// (each cleared, then its rows copied); the share ending at the last plane also zeroes the slack.
template <class T>
void pad_planes(const conv_geometry& g, const T* x, T* xp, std::int64_t c0, std::int64_t c1) {
  if (c0 >= c1) return;
  const std::int64_t plane = g.hp() * g.wp(), end = c1 == g.c ? g.padded_size() : c1 * plane;
  std::memset(static_cast<void*>(xp + c0 * plane), 0, static_cast<std::size_t>(end - c0 * plane) * sizeof(T));
  for (std::int64_t c = c0; c < c1; ++c) {
    T* dst = xp + c * plane + g.pt * g.wp() + g.pl;
    const T* src = x + c * g.h * g.w;
    for (std::int64_t y = 0; y < g.h; ++y) copy_row(src + y * g.w, dst + y * g.wp(), g.w);
  }
}

template <class T>
void pad_image(const conv_geometry& g, const T* x, T* xp) {
  parallel::parallel_for(0, g.c, [&](std::int64_t c) { pad_planes(g, x, xp, c, c + 1); }, min_iterations(g.hp() * g.wp()));
}

// Zero-padded copy of one image in the layout of transposed(): xt[c][ix + pl][iy + pt] = x[c][iy][ix].
template <class T>
void pad_image_transposed(const conv_geometry& g, const T* x, T* xt) {
  const conv_geometry t = g.transposed();
  const std::int64_t rows = t.hp(), cols = t.wp();
  std::memset(static_cast<void*>(xt), 0, static_cast<std::size_t>(t.padded_size()) * sizeof(T));
  parallel::parallel_for(
      0, g.c,
      [&](std::int64_t c) {
        T* dst = xt + c * rows * cols + t.pt * cols + t.pl;
        const T* src = x + c * g.h * g.w;
        for (std::int64_t iy = 0; iy < g.h; ++iy)
          for (std::int64_t ix = 0; ix < g.w; ++ix) dst[ix * cols + iy] = src[iy * g.w + ix];
      },
      min_iterations(rows * cols));
}

// Entries of the row-offset table: one per B row plus the GEMM's prefetch slack.
inline std::int64_t row_offsets_size(const conv_geometry& g) { return g.k() + gemm_prefetch_rows; }

// Offsets of B rows (c, ky, kx) in an image of width `wp` and plane size `plane`; the slack repeats
// the last row.
inline void implicit_row_offsets(const conv_geometry& g, std::int64_t plane, std::int64_t wp, std::int64_t* off) {
  std::int64_t r = 0;
  for (std::int64_t c = 0; c < g.c; ++c)
    for (std::int64_t ky = 0; ky < g.kh; ++ky)
      for (std::int64_t kx = 0; kx < g.kw; ++kx) off[r++] = c * plane + ky * wp + kx;
  for (; r < row_offsets_size(g); ++r) off[r] = off[g.k() - 1];
}

// dst[j] = act(residual[j] + scale * (src[j] + bias)) (residual optional): vectors, then a scalar tail,
// both through finish_output.
template <class T>
void epilogue_row(const T* src, T* dst, std::int64_t n, T bias, const T* residual, T scale, bool relu) {
  using V = simd::batch<T>;
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  const V bv = simd::broadcast(bias), sv = simd::broadcast(scale);
  std::int64_t j = 0;
  for (; j + w <= n; j += w) {
    const V r = residual ? simd::load(residual + j) : V(T(0));
    simd::store(dst + j, finish_output(simd::load(src + j), bv, residual ? &r : nullptr, sv, relu));
  }
  for (; j < n; ++j) dst[j] = finish_output(src[j], bias, residual ? residual + j : nullptr, scale, relu);
}

// Everything one image's forward convolution needs besides the data.
template <class T>
struct conv_forward_args {
  a_source<T> weights;            // [o, k], raw or pre-packed
  const T* bias = nullptr;        // [o] or null
  const T* residual = nullptr;    // [o, oh, ow] of this image, or null
  T residual_scale = 1;
  bool relu = false;
};

// Images whose lowered matrices sit side by side in one GEMM (image j in columns [j*S, (j+1)*S), S =
// oh*ow). On maps below 256 pixels one product per image has a few dozen to a few hundred columns -
// mostly edge tiles, and a thread barrier each - so groups of images make products of >= 512 columns;
// the lowered block of a group stays within 8 MiB. 1 = image by image (larger maps: grouping them
// further, to 2048 columns, made an NN4 training step slower, 5.35 -> 5.85 s on one loaded thread).
template <class T>
std::int64_t images_per_gemm(const conv_geometry& g) {
  const std::int64_t s = g.spatial();
  if (g.n <= 1 || s >= 256) return 1;
  const std::int64_t per_image = std::max(g.k(), g.o) * s * static_cast<std::int64_t>(sizeof(T));
  const std::int64_t cap = std::max<std::int64_t>(1, (std::int64_t(8) << 20) / per_image);
  return std::min({g.n, cap, (512 + s - 1) / s});
}

// A group's GEMM operand holds the planes of `images` images side by side: row r, columns
// [j*S, (j+1)*S) are plane r of image j (images `image` elements apart). gather copies the images'
// planes into that layout, scatter copies them back out.
enum class planes_direction { gather, scatter };
template <class T>
void copy_planes(const T* src, T* dst, std::int64_t image, std::int64_t rows, std::int64_t s, std::int64_t images,
                 planes_direction dir) {
  parallel::parallel_for(
      0, rows * images,
      [&](std::int64_t t) {
        const std::int64_t r = t / images, j = t % images, side = r * images * s + j * s, own = j * image + r * s;
        const T* from = src + (dir == planes_direction::gather ? own : side);
        std::copy(from, from + s, dst + (dir == planes_direction::gather ? side : own));
      },
      min_iterations(s));
}
template <class T>
void gather_planes(const T* src, std::int64_t image, std::int64_t rows, std::int64_t s, std::int64_t images, T* dst) {
  copy_planes(src, dst, image, rows, s, images, planes_direction::gather);
}
template <class T>
void scatter_planes(const T* src, std::int64_t image, std::int64_t rows, std::int64_t s, std::int64_t images, T* dst) {
  copy_planes(src, dst, image, rows, s, images, planes_direction::scatter);
}

// How a batch's k x k forward runs: image by image, or in groups of images_per_gemm (training's
// convolutions: 7% off an NN4-small2 step). Inference plans group only maps of 6x6 and less
// (conv2d_plan::plan_grouping): grouping all of IRv1 batch 16 measured about 5% slower (its 8x8
// layers lose the implicit GEMM's direct reads).
enum class forward_grouping { per_image, grouped };

// Scratch elements forward_image needs (padded image + extended output, or im2col matrix), or a
// group's product and lowered inputs (forward_grouped).
template <class T>
std::int64_t forward_workspace_size(const conv_geometry& g, forward_grouping grouping) {
  if (g.batched_pointwise()) return g.o * g.n * g.spatial();
  if (g.pointwise()) return 0;
  if (const std::int64_t group = images_per_gemm<T>(g); grouping == forward_grouping::grouped && group > 1)
    return (g.o + g.k()) * group * g.spatial();
  if (g.transposes()) return g.transposed().padded_size() + g.o * g.spatial();
  if (g.implicit())
    return (g.needs_padded_copy() ? g.padded_size() : 0) + (g.needs_compaction() ? g.o * g.extended_n() : 0);
  return g.k() * g.spatial();
}

// forward_image for a 1 x kw kernel (conv_geometry::transposes): the product of the transposed image
// lands in ws as [o][ox][oy]; the epilogue pass transposes it back.
template <class T>
void forward_image_transposed(const conv_geometry& g, const conv_forward_args<T>& a, const T* x, T* y, T* ws,
                              std::int64_t* offsets) {
  const conv_geometry t = g.transposed();
  pad_image_transposed(g, x, ws);
  implicit_row_offsets(t, t.hp() * t.wp(), t.wp(), offsets);
  T* product = ws + t.padded_size();
  const std::int64_t s = g.spatial();
  gemm_run(g.o, s, g.k(), T(1), a.weights, b_offset_rows<T>{ws, offsets}, T(0), product, s,
           static_cast<const gemm_epilogue<T>*>(nullptr));
  parallel::parallel_for(
      0, g.o,
      [&](std::int64_t oc) {
        const T bias = a.bias ? a.bias[oc] : T(0);
        const T* src = product + oc * s;
        for (std::int64_t oy = 0; oy < g.oh; ++oy)
          for (std::int64_t ox = 0; ox < g.ow; ++ox) {
            const std::int64_t at = oc * s + oy * g.ow + ox;
            y[at] = finish_output(src[ox * g.oh + oy], bias, a.residual ? a.residual + at : nullptr, a.residual_scale, a.relu);
          }
      },
      min_iterations(s));
}

// Runs f(oy0, oy1) on every thread over its share of the output rows, for a convolution whose
// lowering and product can be split that way: each thread then lowers (or compacts) the rows it
// multiplies, and no thread reads what the other core wrote a moment before. Lowering on all threads
// and then multiplying on all threads did, and cost NN4 conv1 (im2col) a third more than the two
// steps timed apart (2 threads: 300 us against 34 + 190; 200 us split by rows). Only for products
// of many columns (`columns`: the whole image's; 128 per thread and more), which the GEMM would
// split by columns anyway: on NN4's 6x6 maps each thread's 18 columns ran 1.4-1.5x slower than
// splitting the channels, while IRv1 conv2d_4b's 289 gained. False, without calling f, when the
// split does not apply.
template <class F>
bool by_output_rows(const conv_geometry& g, std::int64_t columns, F&& f) {
  const int threads = parallel::max_threads();
  if (threads < 2 || parallel::in_parallel() || g.oh < 2 * threads || columns < 128 * threads) return false;
  parallel::parallel_region([&](int t, int nt) {
    std::int64_t oy0, oy1;
    parallel::split_range(g.oh, nt, t, oy0, oy1);
    if (oy0 < oy1) f(oy0, oy1);
  });
  return true;
}

// The epilogue of a product over columns [j0, ...) of an image's output: it indexes the residual
// from the product's first column.
template <class T>
const gemm_epilogue<T>* epilogue_from(const gemm_epilogue<T>* ep, std::int64_t j0, gemm_epilogue<T>& part) {
  if (!ep) return nullptr;
  part = *ep;
  if (part.residual) part.residual += j0;
  return &part;
}

// Output rows [oy0, oy1) of a convolution through im2col, in chunks of rows whose lowered block
// (in `col`) stays in the L2 cache from im2col writing it to the GEMM packing it: lowering a whole
// image first (NN4 conv1: 1.35 MB per image) sent it through L3 and back. Chunks of ~192 KB and at
// least 256 columns; 96 KB and 320 KB measured the same within noise. A small gain: facenet bench, 3
// alternating runs, AVX2, 2 threads, both builds with 64-byte aligned loops and functions: NN4 batch
// 64 145.2-147.7 -> 143.7-145.8 ms, IRv1 batch 16 240.2-242.7 -> 239.2-240.9 ms. (Unaligned builds
// had shown 6%: code placement, see CMakeLists.txt.)
inline constexpr std::int64_t lowered_chunk_bytes = 192 * 1024, lowered_chunk_columns = 256;
template <class T>
void lowered_rows(const conv_geometry& g, const a_source<T>& w, const T* x, T* y, T* col, const gemm_epilogue<T>* ep,
                  std::int64_t oy0, std::int64_t oy1) {
  const std::int64_t row_bytes = g.k() * g.ow * static_cast<std::int64_t>(sizeof(T));
  const std::int64_t rows = std::max<std::int64_t>({1, (lowered_chunk_columns + g.ow - 1) / g.ow, lowered_chunk_bytes / row_bytes});
  for (std::int64_t c0 = oy0; c0 < oy1; c0 += rows) {
    const std::int64_t c1 = std::min(c0 + rows, oy1), j0 = c0 * g.ow, n = (c1 - c0) * g.ow;
    gemm_epilogue<T> part;
    im2col(g, x, col, n, c0, c1);
    gemm_run(g.o, n, g.k(), T(1), w, b_matrix<T>{col, n, false}, T(0), y + j0, g.spatial(), epilogue_from(ep, j0, part));
  }
}

// y[o, oh*ow] = epilogue(W x) for one image; `ws` holds forward_workspace_size elements and `offsets`
// row_offsets_size(g) entries (used by the implicit path).
template <class T>
void forward_image(const conv_geometry& g, const conv_forward_args<T>& a, const T* x, T* y, T* ws, std::int64_t* offsets) {
  gemm_epilogue<T> ep;
  ep.bias = a.bias;
  ep.residual = a.residual;
  ep.ldr = g.spatial();
  ep.residual_scale = a.residual_scale;
  ep.relu = a.relu;
  const bool fuse = ep.bias || ep.residual || ep.relu;
  if (g.pointwise()) {
    gemm_run(g.o, g.spatial(), g.k(), T(1), a.weights, b_matrix<T>{x, g.spatial(), false}, T(0), y, g.spatial(), fuse ? &ep : nullptr);
    return;
  }
  if (!g.implicit()) {
    // Each thread lowers into a block of its own (at ws + k*j0): rows shared by the threads would
    // share a cache line at the boundary of every row (IRv1 conv2d_4b, 17x17 outputs, 2 threads:
    // 2.35 -> 1.78 ms).
    const bool split = by_output_rows(g, g.spatial(), [&](std::int64_t oy0, std::int64_t oy1) {
      lowered_rows(g, a.weights, x, y, ws + g.k() * oy0 * g.ow, fuse ? &ep : nullptr, oy0, oy1);
    });
    if (split) return;
    // Few pixels for the tiled product (more than the few-column path's 12, whose copy of B would
    // gather element by element): gather while packing.
    const std::int64_t taps = g.kh * g.kw;
    if (g.spatial() > 12 && taps * g.spatial() <= im2col_table_limit) {
      gemm_run(g.o, g.spatial(), g.k(), T(1), a.weights, b_gathered<T>{x, g.h * g.w, taps, g.spatial(), offset_table(g, 0, g.oh)},
               T(0), y, g.spatial(), fuse ? &ep : nullptr);
      return;
    }
    lowered_rows(g, a.weights, x, y, ws, fuse ? &ep : nullptr, 0, g.oh);
    return;
  }
  if (g.transposes()) return forward_image_transposed(g, a, x, y, ws, offsets);
  const T* image = x;
  T* padded = nullptr;  // the padded copy, filled below (by the threads of the channel-split region)
  std::int64_t plane = g.h * g.w, row_width = g.w;
  if (g.needs_padded_copy()) {
    padded = ws;
    image = ws;
    plane = g.hp() * g.wp();
    row_width = g.wp();
    ws += g.padded_size();
  }
  implicit_row_offsets(g, plane, row_width, offsets);
  const b_offset_rows<T> rows{image, offsets};
  const auto pad_all = [&] {
    if (padded) pad_image(g, x, padded);
  };
  if (!g.needs_compaction()) {
    pad_all();
    gemm_run(g.o, g.spatial(), g.k(), T(1), a.weights, rows, T(0), y, g.spatial(), fuse ? &ep : nullptr);
    return;
  }
  // Extended output rows (width wp) hold wp - ow discarded columns each; compact and finish in one
  // pass. (Fusing this into the GEMM's tile store was tried: re-reading a just-stored tile row at
  // unaligned run offsets defeats store forwarding and cost more than this pass.)
  const std::int64_t wp = g.wp(), en = g.extended_n();
  const auto compact = [&](std::int64_t oc, std::int64_t oy0, std::int64_t oy1) {
    const T bias = a.bias ? a.bias[oc] : T(0);
    for (std::int64_t oy = oy0; oy < oy1; ++oy) {
      const std::int64_t at = oc * g.spatial() + oy * g.ow;
      epilogue_row(ws + oc * en + oy * wp, y + at, g.ow, bias, a.residual ? a.residual + at : nullptr, a.residual_scale,
                   a.relu);
    }
  };
  // A product of few channels reads B in place (gemm_run), so splitting the channels between the
  // threads packs nothing twice, only reads a small image twice from L2; it balances them exactly where
  // rows did not (IRv1 Block35's 3x3 32->32: 9 and 8 rows of 17, a ragged tile each): bench_conv2d,
  // AVX-512, 2 threads, 4 alternating rounds, 102-120 -> 121-134 GFLOP/s. A large image (IRv1
  // conv2d_2a's 77x77, 32 channels, when run by GEMM) still splits by rows: read twice, it lost 15%.
  const bool by_channels = g.o <= 8 * gemm_shape<T>::mr &&
                           g.padded_size() * static_cast<std::int64_t>(sizeof(T)) <= l2_cache_bytes() / 4;
  // With weights in one K block (a panel's rows are contiguous) padding, product and compaction share
  // one parallel region instead of three: each thread pads a share of the input channels, waits, then
  // multiplies and compacts its own output channels.
  const std::int64_t panels = (g.o + gemm_shape<T>::mr - 1) / gemm_shape<T>::mr;
  const int region = std::min<std::int64_t>(parallel::max_threads(), panels);
  if (by_channels && a.weights.packed && k_block<T>(g.k()) == g.k() && region > 1 && !parallel::in_parallel()) {
    parallel::parallel_region(
        [&](int t, int nt) {
          std::int64_t c0, c1, p0, p1;
          parallel::split_range(g.c, nt, t, c0, c1);
          if (padded) pad_planes(g, x, padded, c0, c1);
          parallel::barrier(nt);
          parallel::split_range(panels, nt, t, p0, p1);
          const std::int64_t o0 = p0 * gemm_shape<T>::mr, o1 = std::min(g.o, p1 * gemm_shape<T>::mr);
          if (o0 >= o1) return;
          a_source<T> share = a.weights;
          share.packed += o0 * g.k();
          gemm_run(o1 - o0, en, g.k(), T(1), share, rows, T(0), ws + o0 * en, en, static_cast<const gemm_epilogue<T>*>(nullptr));
          for (std::int64_t oc = o0; oc < o1; ++oc) compact(oc, 0, g.oh);
        },
        region);
    return;
  }
  pad_all();
  const bool split = !by_channels && by_output_rows(g, en, [&](std::int64_t oy0, std::int64_t oy1) {
    const std::int64_t j0 = oy0 * wp;
    gemm_run(g.o, (oy1 - oy0) * wp, g.k(), T(1), a.weights, b_offset_rows<T>{image + j0, offsets}, T(0), ws + j0, en,
             static_cast<const gemm_epilogue<T>*>(nullptr));
    for (std::int64_t oc = 0; oc < g.o; ++oc) compact(oc, oy0, oy1);
  });
  if (split) return;
  gemm_run(g.o, en, g.k(), T(1), a.weights, rows, T(0), ws, en, static_cast<const gemm_epilogue<T>*>(nullptr));
  parallel::parallel_for(0, g.o, [&](std::int64_t oc) { compact(oc, 0, g.oh); }, min_iterations(en));
}

// y[i0 + j, o, :] = epilogue(C[o, j*hw : (j+1)*hw]) for the `images` images of a group whose product
// C [o, images*hw] is in `c`, with the residual and scale of each image.
template <class T>
void finish_group(const conv_geometry& g, const conv_forward_args<T>& a, const T* c, std::int64_t i0, std::int64_t images,
                  T* y, const T* residual) {
  const std::int64_t hw = g.spatial(), cols = images * hw;
  parallel::parallel_for(
      0, images * g.o,
      [&](std::int64_t r) {
        const std::int64_t j = r / g.o, oc = r % g.o, at = (i0 + j) * g.out_size() + oc * hw;
        epilogue_row(c + oc * cols + j * hw, y + at, hw, a.bias ? a.bias[oc] : T(0), residual ? residual + at : nullptr,
                     a.residual_scale, a.relu);
      },
      min_iterations(hw));
}

// The whole batch's 1x1 convolution as one GEMM (see batched_pointwise): C[o, n*hw] in `ws`, then
// the epilogue pass into y.
template <class T>
void forward_batched_pointwise(const conv_geometry& g, const conv_forward_args<T>& a, const T* x, T* y, const T* residual,
                               T* ws) {
  const std::int64_t hw = g.spatial(), cols = g.n * hw;
  gemm_run(g.o, cols, g.k(), T(1), a.weights, b_batched<T>{x, hw, g.in_size(), g.n}, T(0), ws, cols,
           static_cast<const gemm_epilogue<T>*>(nullptr));
  finish_group(g, a, ws, 0, g.n, y, residual);
}

// A k x k convolution over small maps, `group` images per GEMM (images_per_gemm): their im2col
// matrices side by side, one product into scratch, then the epilogue pass into y.
template <class T>
void forward_grouped(const conv_geometry& g, const conv_forward_args<T>& a, const T* x, T* y, const T* residual, T* ws,
                     std::int64_t group) {
  const std::int64_t hw = g.spatial();
  T* c = ws;
  T* col = ws + g.o * group * hw;
  for (std::int64_t i0 = 0; i0 < g.n; i0 += group) {
    const std::int64_t images = std::min(group, g.n - i0), cols = images * hw;
    for (std::int64_t j = 0; j < images; ++j) im2col(g, x + (i0 + j) * g.in_size(), col + j * hw, cols);
    gemm_run(g.o, cols, g.k(), T(1), a.weights, b_matrix<T>{col, cols, false}, T(0), c, cols,
             static_cast<const gemm_epilogue<T>*>(nullptr));
    finish_group(g, a, c, i0, images, y, residual);
  }
}

}  // namespace facenet::kernels::detail
