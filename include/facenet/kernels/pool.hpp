// 2-D pooling over NCHW with PyTorch's output-size and divisor rules: max (with argmax indices for
// training, without for inference), average (count_include_pad both ways, ceil_mode), L2 (OpenFace's
// SpatialLPPooling, p = 2) and global average. Parallel over the N*C planes. The forward passes
// reduce identity-bordered copies of the planes with flat SIMD passes (pool_frames); indexed max
// pooling runs the same kind of passes in the same frames, carrying each maximum's position along.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

struct pool2d_params {
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only

  // Square window, equal stride and symmetric padding: nn.MaxPool2d(k, s, p, ceil_mode=...).
  static pool2d_params square(std::int64_t kernel, std::int64_t stride, std::int64_t pad = 0, bool ceil = false,
                              bool include_pad = true) {
    return {kernel, kernel, stride, stride, pad, pad, pad, pad, ceil, include_pad};
  }
};

// PyTorch's pooling_output_shape_pad_lr: floor or ceil division, and in ceil mode the last window
// must start inside the input or the left padding.
inline std::int64_t pool2d_output_size(std::int64_t in, std::int64_t kernel, std::int64_t pad_before,
                                       std::int64_t pad_after, std::int64_t stride, bool ceil_mode) {
  const std::int64_t span = in + pad_before + pad_after - kernel + (ceil_mode ? stride - 1 : 0);
  if (span < 0) return 0;
  std::int64_t out = span / stride + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad_before) --out;
  return out;
}

namespace detail {

// Messages are built only on failure (FACENET_CHECK), so a valid call does not touch the heap.
inline void check_pool_params(const pool2d_params& p, const char* k) {
  FACENET_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1, argument_error,
                std::string(k) + ": kernel must be >= 1, got " + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w));
  FACENET_CHECK(p.stride_h >= 1 && p.stride_w >= 1, argument_error,
                std::string(k) + ": stride must be >= 1, got " + std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w));
  // Padding smaller than the window keeps every window overlapping the input.
  FACENET_CHECK(p.pad_top >= 0 && p.pad_bottom >= 0 && p.pad_left >= 0 && p.pad_right >= 0 &&
                    p.pad_top < p.kernel_h && p.pad_bottom < p.kernel_h && p.pad_left < p.kernel_w &&
                    p.pad_right < p.kernel_w,
                argument_error,
                std::string(k) + ": padding (top " + std::to_string(p.pad_top) + ", bottom " + std::to_string(p.pad_bottom) +
                    ", left " + std::to_string(p.pad_left) + ", right " + std::to_string(p.pad_right) +
                    ") must be >= 0 and smaller than the kernel " + std::to_string(p.kernel_h) + "x" +
                    std::to_string(p.kernel_w));
}

}  // namespace detail

// Output shape of pooling x [N,C,H,W] with p; throws when the input is too small for one window.
inline shape pool2d_output_shape(const shape& x, const pool2d_params& p, const char* kernel = "pool2d") {
  FACENET_CHECK(x.rank() == 4, shape_error, std::string(kernel) + ": x must be [N,C,H,W], got " + x.str());
  detail::check_pool_params(p, kernel);
  const std::int64_t oh = pool2d_output_size(x[2], p.kernel_h, p.pad_top, p.pad_bottom, p.stride_h, p.ceil_mode);
  const std::int64_t ow = pool2d_output_size(x[3], p.kernel_w, p.pad_left, p.pad_right, p.stride_w, p.ceil_mode);
  FACENET_CHECK(oh >= 1 && ow >= 1, shape_error,
                std::string(kernel) + ": input " + x.str() + " is smaller than the " + std::to_string(p.kernel_h) +
                    "x" + std::to_string(p.kernel_w) + " window");
  return shape{x[0], x[1], oh, ow};
}

namespace detail {

// Per output index along one axis: the window clipped to the input, and its length counting
// padding (clipped to input + padding, as PyTorch's avg_pool2d divisor does). Computed on demand,
// not tabulated, so a call builds no tables on the heap.
struct pool_axis {
  std::int64_t in, kernel, stride, pad_before, pad_after;
  std::int64_t start(std::int64_t o) const noexcept { return o * stride - pad_before; }
  std::int64_t begin(std::int64_t o) const noexcept { return std::max<std::int64_t>(start(o), 0); }
  std::int64_t end(std::int64_t o) const noexcept { return std::min(start(o) + kernel, in); }
  std::int64_t padded(std::int64_t o) const noexcept { return std::min(start(o) + kernel, in + pad_after) - start(o); }
  std::int64_t size(std::int64_t o) const noexcept { return end(o) - begin(o); }
  // This axis's factor of the average-pooling divisor.
  std::int64_t divisor(std::int64_t o, bool include_pad) const noexcept { return include_pad ? padded(o) : size(o); }
};

struct pool_geometry {
  std::int64_t planes, H, W, OH, OW;
  pool_axis rows, cols;
  pool_geometry(const shape& x, const shape& y, const pool2d_params& p)
      : planes(x[0] * x[1]),
        H(x[2]),
        W(x[3]),
        OH(y[2]),
        OW(y[3]),
        rows{H, p.kernel_h, p.stride_h, p.pad_top, p.pad_bottom},
        cols{W, p.kernel_w, p.stride_w, p.pad_left, p.pad_right} {}
  // Average-pooling divisor of output (i, j), exactly PyTorch's.
  std::int64_t divisor(std::int64_t i, std::int64_t j, bool include_pad) const {
    return rows.divisor(i, include_pad) * cols.divisor(j, include_pad);
  }
};

// Runs f(plane, scratch) over all planes with `scratch_size` elements of per-thread scratch.
template <class T, class F>
void for_each_plane(const pool_geometry& g, std::int64_t scratch_size, F&& f) {
  parallel_tasks<T>(g.planes, std::max(g.H * g.W, g.OH * g.OW), scratch_size, f);
}

// Window reductions, usable on SIMD batches (rows) and scalars (along a row).
struct sum_op {
  template <class V>
  V operator()(const V& a, const V& b) const {
    return a + b;
  }
};
// max where a NaN wins, as PyTorch's max pooling.
struct max_op {
  template <class T>
  simd::batch<T> operator()(const simd::batch<T>& acc, const simd::batch<T>& v) const {
    return simd::max_propagate_nan(acc, v);
  }
  template <class T, std::enable_if_t<std::is_arithmetic<T>::value, int> = 0>
  T operator()(T acc, T v) const {
    return (v > acc || v != v) ? v : acc;
  }
};

// Inference pooling through identity-filled frames. Each plane is copied (through v: identity or
// square) into an hp x wp frame whose border is the reduction's identity (-inf for max, 0 for sums),
// so every window, padded or clipped by ceil mode, lies inside its frame. The frames are reduced in
// place by flat SIMD passes, down the window's rows and then along its columns, and output (i, j) is
// the value left at its window's top-left corner. Small planes (NN4's 6x6 and 3x3) are grouped so
// one pass runs over many frames with full vectors, where a pass per row ran mostly partial ones.
// Each window is combined in the reference's order (rows first, each ascending); the identities
// added do not change a value.
struct pool_frame {
  std::int64_t hp, wp;
  std::int64_t size() const { return hp * wp; }
};

inline pool_frame pool_frame_of(const pool_geometry& g) {
  return {std::max(g.H + g.rows.pad_before, (g.OH - 1) * g.rows.stride + g.rows.kernel),
          std::max(g.W + g.cols.pad_before, (g.OW - 1) * g.cols.stride + g.cols.kernel)};
}

// f[k] = f[k] op f[k + step] op ... (taps terms) for k in [k0, k1), in place: a vector is stored
// after its reads, and later vectors read only at or past its end.
template <class T, class Op>
void pool_pass(T* f, std::int64_t k0, std::int64_t k1, std::int64_t step, std::int64_t taps, Op op) {
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  const auto reduce = [&](std::int64_t k, auto load) {
    auto acc = load(f + k);
    for (std::int64_t d = 1; d < taps; ++d) acc = op(acc, load(f + k + d * step));
    return acc;
  };
  std::int64_t k = k0;
  for (; k + w <= k1; k += w) simd::store(f + k, reduce(k, [](const T* q) { return simd::load(q); }));
  if (k < k1) {
    const auto n = static_cast<std::size_t>(k1 - k);
    simd::store_partial(f + k, reduce(k, [n](const T* q) { return simd::load_partial(q, n); }), n);
  }
}

// Copies planes [first, first + count) of x into frames through v and fills their borders.
template <class T, class V>
void fill_frames(const pool_geometry& g, const pool_frame& f, std::int64_t first, std::int64_t count, const T* x,
                 T* frames, T identity, V&& v) {
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  const std::int64_t pt = g.rows.pad_before, pl = g.cols.pad_before, wp = f.wp;
  if (f.hp == g.H && f.wp == g.W) return simd_map(frames, x + first * g.H * g.W, count * g.H * g.W, v);  // no border
  for (std::int64_t p = 0; p < count; ++p) {
    T* fr = frames + p * f.size();
    std::fill(fr, fr + pt * wp, identity);
    for (std::int64_t r = 0; r < g.H; ++r) {
      const T* src = x + ((first + p) * g.H + r) * g.W;
      T* dst = fr + (r + pt) * wp;
      std::fill(dst, dst + pl, identity);
      if (g.W >= w)
        simd_map(dst + pl, src, g.W, v);
      else
        for (std::int64_t c = 0; c < g.W; ++c) dst[pl + c] = v(src[c]);
      std::fill(dst + pl + g.W, dst + wp, identity);
    }
    std::fill(fr + (g.H + pt) * wp, fr + f.size(), identity);
  }
}

// Max pooling's window value is its output.
struct no_finish {};

// out[p, i, j] = finish(out[p, i, j], divisor(i, j)) over `count` planes of outputs, with SIMD:
// flat over all planes when every window has the same divisor (no padding counted differently,
// the common case), else row by row. scratch: OH + 2 * OW elements.
template <class T, class Finish>
void finish_windows(const pool_geometry& g, bool include_pad, std::int64_t count, T* out, T* scratch, Finish&& finish) {
  // Per-axis factors (small integers, exact in T, as are their products).
  T* rows = scratch;
  T* cols = rows + g.OH;
  T* row_divisors = cols + g.OW;
  bool uniform = true;
  for (std::int64_t i = 0; i < g.OH; ++i) {
    rows[i] = static_cast<T>(g.rows.divisor(i, include_pad));
    uniform = uniform && rows[i] == rows[0];
  }
  for (std::int64_t j = 0; j < g.OW; ++j) {
    cols[j] = static_cast<T>(g.cols.divisor(j, include_pad));
    uniform = uniform && cols[j] == cols[0];
  }
  if (uniform) {
    const simd::batch<T> d(rows[0] * cols[0]);
    return simd_map(out, out, count * g.OH * g.OW, [&](auto u) { return finish(u, d); });
  }
  for (std::int64_t i = 0; i < g.OH; ++i) {
    for (std::int64_t j = 0; j < g.OW; ++j) row_divisors[j] = rows[i] * cols[j];
    for (std::int64_t p = 0; p < count; ++p) {
      T* o = out + (p * g.OH + i) * g.OW;
      simd_map2(o, o, row_divisors, g.OW, finish);
    }
  }
}

// Output planes [first, first + count) of y: finish(window value, divisor), with vectors or
// scalars. Vertical strides reduce only the rows windows start at once rows are long; short rows
// take one flat pass. scratch: finish_windows'.
template <class T, class V, class Op, class Finish>
void pool_frames(const pool_geometry& g, const pool_frame& f, bool include_pad, std::int64_t first, std::int64_t count,
                 const T* x, T* y, T* frames, T* scratch, T identity, V&& v, Op op, Finish&& finish) {
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  fill_frames(g, f, first, count, x, frames, identity, v);
  const std::int64_t kh = g.rows.kernel, kw = g.cols.kernel, sh = g.rows.stride, sw = g.cols.stride, wp = f.wp;
  const auto passes = [&](std::int64_t k0, std::int64_t k1) {
    pool_pass(frames, k0, k1, wp, kh, op);
    pool_pass(frames, k0, k1 - (kw - 1), std::int64_t(1), kw, op);
  };
  if (sh == 1 || wp < 4 * w) {
    passes(0, count * f.size() - (kh - 1) * wp);
  } else {
    for (std::int64_t p = 0; p < count; ++p)
      for (std::int64_t i = 0; i < g.OH; ++i) passes(p * f.size() + i * sh * wp, p * f.size() + i * sh * wp + wp);
  }
  const std::int64_t out_size = g.OH * g.OW;
  T* out = y + first * out_size;
  for (std::int64_t p = 0; p < count; ++p)
    for (std::int64_t i = 0; i < g.OH; ++i) {
      const T* corner = frames + p * f.size() + i * sh * wp;
      for (std::int64_t j = 0; j < g.OW; ++j) out[p * out_size + i * g.OW + j] = corner[j * sw];
    }
  if constexpr (!std::is_same<std::decay_t<Finish>, no_finish>::value) finish_windows(g, include_pad, count, out, scratch, finish);
}

// Vertically strided pooling of planes with rows of two vectors and more skips the framed copy:
// each output row reduces its window's input rows into one identity-bordered row (in scratch), then
// along that row, with vectors at strides 1 and 2. The same combinations in the same order as
// pool_frames (an identity row or column changes nothing), so the same results. On 2 threads, batch
// 1: NN4's max pools 64x48x48 62 -> 30 us, 192x24x24 63 -> 39 us; stride-1 planes of 17x17 stay
// framed (64 us framed, 90 by rows: one flat pass beats a short row at a time).
template <class T, class V, class Op, class Finish>
void pool_rows(const pool_geometry& g, const pool_frame& f, bool include_pad, std::int64_t first, std::int64_t count,
               const T* x, T* y, T* scratch, T identity, V&& v, Op op, Finish&& finish) {
  using B = simd::batch<T>;
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  const std::int64_t pl = g.cols.pad_before, kw = g.cols.kernel, sw = g.cols.stride, out_size = g.OH * g.OW;
  T* row = scratch;  // f.wp values
  std::fill(row, row + pl, identity);
  std::fill(row + pl + g.W, row + f.wp, identity);
  const auto along = [&](std::int64_t j, std::size_t n) {  // outputs [j, j + n) of the row, n <= w
    const auto at = [&](std::int64_t kx) {
      const T* q = row + j * sw + kx;
      if (sw == 1) return n == simd::width<T> ? simd::load(q) : simd::load_partial(q, n);
      return simd::load_even(q, n);
    };
    B acc = at(0);
    for (std::int64_t kx = 1; kx < kw; ++kx) acc = op(acc, at(kx));
    return acc;
  };
  for (std::int64_t p = first; p < first + count; ++p) {
    const T* plane = x + p * g.H * g.W;
    T* out = y + p * out_size;
    for (std::int64_t i = 0; i < g.OH; ++i) {
      const std::int64_t r0 = g.rows.begin(i), r1 = g.rows.end(i);
      simd_map(row + pl, plane + r0 * g.W, g.W, v);
      for (std::int64_t r = r0 + 1; r < r1; ++r)
        simd_map2(row + pl, row + pl, plane + r * g.W, g.W, [&](auto acc, auto u) { return op(acc, v(u)); });
      T* o = out + i * g.OW;
      if (sw > 2) {
        for (std::int64_t j = 0; j < g.OW; ++j) {
          T acc = row[j * sw];
          for (std::int64_t kx = 1; kx < kw; ++kx) acc = op(acc, row[j * sw + kx]);
          o[j] = acc;
        }
        continue;
      }
      std::int64_t j = 0;
      for (; j + w <= g.OW; j += w) simd::store(o + j, along(j, simd::width<T>));
      if (j < g.OW) {
        const auto n = static_cast<std::size_t>(g.OW - j);
        simd::store_partial(o + j, along(j, n), n);
      }
    }
  }
  if constexpr (!std::is_same<std::decay_t<Finish>, no_finish>::value)
    finish_windows(g, include_pad, count, y + first * out_size, scratch + f.wp, finish);
}

// Runs pool_frames over every plane of x, in groups of frames of about 32 KB (L1) per task.
template <class T, class V, class Op, class Finish>
void pool_forward_framed(const pool_geometry& g, bool include_pad, const T* x, T* y, T identity, V&& v, Op op,
                         Finish&& finish) {
  const pool_frame f = pool_frame_of(g);
  if (g.rows.stride > 1 && g.W >= 2 * static_cast<std::int64_t>(simd::width<T>)) {
    const std::int64_t parts = std::clamp<std::int64_t>(g.planes * g.H * g.W / parallel_grain, 1, 4 * parallel::max_threads());
    const std::int64_t group = (g.planes + parts - 1) / parts;
    parallel_tasks<T>((g.planes + group - 1) / group, group * g.H * g.W, f.wp + g.OH + 2 * g.OW,
                      [&](std::int64_t task, T* scratch) {
                        const std::int64_t first = task * group;
                        pool_rows(g, f, include_pad, first, std::min(group, g.planes - first), x, y, scratch, identity, v,
                                  op, finish);
                      });
    return;
  }
  const std::int64_t per_group_target = std::max<std::int64_t>(1, (std::int64_t(32768) / sizeof(T)) / f.size());
  const std::int64_t parts = std::clamp<std::int64_t>(g.planes * g.H * g.W / parallel_grain, 1, parallel::max_threads());
  const std::int64_t group = std::min(per_group_target, (g.planes + parts - 1) / parts);
  const std::int64_t groups = (g.planes + group - 1) / group;
  parallel_tasks<T>(groups, group * std::max(g.H * g.W, f.size()), group * f.size() + g.OH + 2 * g.OW,
                    [&](std::int64_t task, T* scratch) {
                      const std::int64_t first = task * group, count = std::min(group, g.planes - first);
                      pool_frames(g, f, include_pad, first, count, x, y, scratch, scratch + group * f.size(), identity,
                                  v, op, finish);
                    });
}

// The adjoint of summing windows: dx[r, c] = sum of coef[i, j] over the windows containing (r, c).
template <class T>
void spread_windows(const pool_geometry& g, const T* coef, T* dx, T* rowbuf) {
  std::fill(dx, dx + g.H * g.W, T(0));
  for (std::int64_t i = 0; i < g.OH; ++i) {
    std::fill(rowbuf, rowbuf + g.W, T(0));
    for (std::int64_t j = 0; j < g.OW; ++j)
      for (std::int64_t c = g.cols.begin(j); c < g.cols.end(j); ++c) rowbuf[c] += coef[i * g.OW + j];
    for (std::int64_t r = g.rows.begin(i); r < g.rows.end(i); ++r)
      simd_map2(dx + r * g.W, dx + r * g.W, rowbuf, g.W, [](auto a, auto b) { return a + b; });
  }
}

// One output of indexed max pooling, the reference loop: the first maximum in row-major order, or the
// last NaN (PyTorch's `if (v > m || isnan(v))`).
template <class T>
void indexed_max_window(const pool_geometry& g, const T* x, T* y, std::int32_t* ind, std::int64_t i, std::int64_t j) {
  std::int64_t best = g.rows.begin(i) * g.W + g.cols.begin(j);
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t r = g.rows.begin(i); r < g.rows.end(i); ++r)
    for (std::int64_t c = g.cols.begin(j); c < g.cols.end(j); ++c) {
      const T v = x[r * g.W + c];
      if (v > m || std::isnan(v)) {
        m = v;
        best = r * g.W + c;
      }
    }
  y[i * g.OW + j] = m;
  ind[i * g.OW + j] = static_cast<std::int32_t>(best);
}

// Outputs and input indices of planes [first, first + count) from the window maxima mv and their
// frame positions ma (indexed_max_planes).
template <class T>
void indexed_max_outputs(const pool_geometry& g, const pool_frame& f, std::int64_t first, std::int64_t count, const T* x,
                         const T* mv, const T* ma, T* y, std::int32_t* ind) {
  const std::int64_t kh = g.rows.kernel, wp = f.wp, pt = g.rows.pad_before, pl = g.cols.pad_before;
  for (std::int64_t p = 0; p < count; ++p) {
    T* yp = y + p * g.OH * g.OW;
    std::int32_t* ip = ind + p * g.OH * g.OW;
    for (std::int64_t i = 0; i < g.OH; ++i)
      for (std::int64_t j = 0; j < g.OW; ++j) {
        const std::int64_t k = p * f.size() + i * g.rows.stride * wp + j * g.cols.stride;
        if (mv[k] == -std::numeric_limits<T>::infinity()) {
          indexed_max_window(g, x + (first + p) * g.H * g.W, yp, ip, i, j);
          continue;
        }
        // The maximum lies dr rows and dc columns into its window.
        const std::int64_t d = static_cast<std::int64_t>(ma[k]) - k;
        std::int64_t dr = 0;  // counted without branches: which row is unpredictable
        for (std::int64_t r = 1; r < kh; ++r) dr += d >= r * wp;
        const std::int64_t dc = d - dr * wp;
        yp[i * g.OW + j] = mv[k];
        ip[i * g.OW + j] = static_cast<std::int32_t>((i * g.rows.stride + dr - pt) * g.W + j * g.cols.stride + dc - pl);
      }
  }
}

// Indexed max pooling with SIMD over a group of planes, in the frames of the inference path (-inf
// borders): every window is reduced along its row, then down its rows, each step with the
// reference's update and the frame position carried along as T. That picks the reference's element:
// row-major order's first maximum is the first maximum of the first row holding it, and its last NaN
// the last NaN of the last row holding one. A border cell never wins (nothing is less than -inf),
// except in a window of only -inf values: those take the reference loop, which picks its first
// element inside the input. Positions are exact while the group has fewer than 2^digits elements.
template <class T>
void indexed_max_planes(const pool_geometry& g, const pool_frame& f, std::int64_t first, std::int64_t count, const T* x,
                        T* y, std::int32_t* ind, T* scratch) {
  using V = simd::batch<T>;
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  const std::int64_t kh = g.rows.kernel, kw = g.cols.kernel, wp = f.wp, total = count * f.size();
  T* mv = scratch;          // each window's maximum at its top-left corner (in place of the frames)
  T* ma = scratch + total;  // the maxima's frame positions
  // Planes that need no border are their own frames: read in place, not copied.
  const bool bordered = f.hp != g.H || f.wp != g.W;
  const T* src = bordered ? mv : x + first * g.H * g.W;
  if (bordered) fill_frames(g, f, first, count, x, mv, -std::numeric_limits<T>::infinity(), [](auto u) { return u; });
  const V lanes = simd::iota<T>();
  const auto load = [](const T* p, std::int64_t n) {
    return n == w ? simd::load(p) : simd::load_partial(p, static_cast<std::size_t>(n));
  };
  const auto store = [](T* p, const V& v, std::int64_t n) {
    if (n == w)
      simd::store(p, v);
    else
      simd::store_partial(p, v, static_cast<std::size_t>(n));
  };
  // f(k, n) over [k0, k0 + len) in vectors, the last one partial. Passes run in place: a vector is
  // stored after its reads, and later vectors read only at or past its end.
  const auto chunks = [&](std::int64_t k0, std::int64_t len, auto&& fn) {
    std::int64_t k = k0;
    for (; k + w <= k0 + len; k += w) fn(k, w);
    if (k < k0 + len) fn(k, k0 + len - k);
  };
  chunks(0, total - (kw - 1), [&](std::int64_t k, std::int64_t n) {
    V m = load(src + k, n), at = lanes + V(static_cast<T>(k));
    for (std::int64_t c = 1; c < kw; ++c) simd::max_with_index(m, at, load(src + k + c, n), lanes + V(static_cast<T>(k + c)));
    store(mv + k, m, n);
    store(ma + k, at, n);
  });
  const auto down = [&](std::int64_t k, std::int64_t n) {
    V m = load(mv + k, n), at = load(ma + k, n);
    for (std::int64_t r = 1; r < kh; ++r) simd::max_with_index(m, at, load(mv + k + r * wp, n), load(ma + k + r * wp, n));
    store(mv + k, m, n);
    store(ma + k, at, n);
  };
  if (g.rows.stride == 1 || wp < 4 * w) {
    chunks(0, total - (kw - 1) - (kh - 1) * wp, down);
  } else {  // only the rows windows start at
    for (std::int64_t p = 0; p < count; ++p)
      for (std::int64_t i = 0; i < g.OH; ++i) chunks(p * f.size() + i * g.rows.stride * wp, wp - (kw - 1), down);
  }
  indexed_max_outputs(g, f, first, count, x, mv, ma, y, ind);
}

// Planes per indexed_max_planes call: about 32 KB of frames, at least one task per thread, and
// fewer than 2^digits elements (0: a single frame is too large, take the reference loop).
template <class T>
std::int64_t indexed_max_group(const pool_geometry& g, const pool_frame& f) {
  const std::int64_t exact = (std::int64_t(1) << std::numeric_limits<T>::digits) - 1;
  if (f.size() > exact) return 0;
  const std::int64_t target = std::max<std::int64_t>(1, (std::int64_t(32768) / sizeof(T)) / f.size());
  const std::int64_t parts = std::clamp<std::int64_t>(g.planes * g.H * g.W / parallel_grain, 1, parallel::max_threads());
  return std::min({target, (g.planes + parts - 1) / parts, exact / f.size()});
}

template <class T>
void check_pool_grad(const Tensor<T>& dy, const shape& x_shape, const shape& y_shape, const char* kernel) {
  require_contiguous(dy, kernel, "dy");
  FACENET_CHECK(dy.shape() == y_shape, shape_error,
                std::string(kernel) + ": dy must have the output shape " + y_shape.str() + " of input " +
                    x_shape.str() + ", got " + dy.shape().str());
}

}  // namespace detail

// Max pooling; indices[n, c, i, j] = h * W + w of the chosen input element (PyTorch's convention).
// Padding never wins (it is -inf); a NaN in the window is chosen, like PyTorch.
template <class T>
void max_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y, Tensor<std::int32_t>& indices) {
  const char* k = "max_pool2d_forward";
  const shape ys = pool2d_output_shape(x.shape(), p, k);
  detail::require_contiguous(x, k, "x");
  FACENET_CHECK(x.size(2) * x.size(3) <= std::numeric_limits<std::int32_t>::max(), shape_error,
                std::string(k) + ": plane of " + x.shape().str() + " too large for int32 indices");
  y.resize(ys);
  indices.resize(ys);
  const detail::pool_geometry g(x.shape(), ys, p);
  const detail::pool_frame f = detail::pool_frame_of(g);
  const std::int64_t group = detail::indexed_max_group<T>(g, f);
  if (group == 0) {
    detail::for_each_plane<T>(g, 0, [&](std::int64_t plane, T*) {
      for (std::int64_t i = 0; i < g.OH; ++i)
        for (std::int64_t j = 0; j < g.OW; ++j)
          detail::indexed_max_window(g, x.data() + plane * g.H * g.W, y.data() + plane * g.OH * g.OW,
                                     indices.data() + plane * g.OH * g.OW, i, j);
    });
    return;
  }
  detail::parallel_tasks<T>((g.planes + group - 1) / group, group * f.size(), 2 * group * f.size(),
                            [&](std::int64_t task, T* scratch) {
                              const std::int64_t first = task * group, count = std::min(group, g.planes - first);
                              detail::indexed_max_planes(g, f, first, count, x.data(), y.data() + first * g.OH * g.OW,
                                                         indices.data() + first * g.OH * g.OW, scratch);
                            });
}

// Inference max pooling (no indices): rows reduced with SIMD, then along each row. Same values,
// NaN handling included, as the indexed version.
template <class T>
void max_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y) {
  const char* k = "max_pool2d_forward";
  const shape ys = pool2d_output_shape(x.shape(), p, k);
  detail::require_contiguous(x, k, "x");
  y.resize(ys);
  const detail::pool_geometry g(x.shape(), ys, p);
  detail::pool_forward_framed(g, false, x.data(), y.data(), -std::numeric_limits<T>::infinity(),
                              [](auto u) { return u; }, detail::max_op{}, detail::no_finish{});
}

// dx[index] += dy for each output; x_shape is the forward input's shape.
template <class T>
void max_pool2d_backward(const Tensor<T>& dy, const Tensor<std::int32_t>& indices, const shape& x_shape,
                         const pool2d_params& p, Tensor<T>& dx) {
  const char* k = "max_pool2d_backward";
  const shape ys = pool2d_output_shape(x_shape, p, k);
  detail::check_pool_grad(dy, x_shape, ys, k);
  FACENET_CHECK(indices.shape() == ys && indices.is_contiguous(), shape_error,
                std::string(k) + ": indices must be contiguous with shape " + ys.str() + ", got " +
                    indices.shape().str());
  dx.resize(x_shape);
  const std::int64_t plane_in = x_shape[2] * x_shape[3], plane_out = ys[2] * ys[3];
  std::atomic<std::int64_t> bad{-1};
  parallel::parallel_for(
      0, x_shape[0] * x_shape[1],
      [&](std::int64_t plane) {
        T* dxp = dx.data() + plane * plane_in;
        std::fill(dxp, dxp + plane_in, T(0));
        for (std::int64_t o = 0; o < plane_out; ++o) {
          const std::int64_t idx = indices.data()[plane * plane_out + o];
          if (idx < 0 || idx >= plane_in) {
            bad.store(idx, std::memory_order_relaxed);  // any one offender makes the message
            continue;
          }
          dxp[idx] += dy.data()[plane * plane_out + o];
        }
      },
      detail::rows_per_task(plane_in));
  FACENET_CHECK(bad.load() < 0, argument_error,
                std::string(k) + ": index " + std::to_string(bad.load()) + " outside a plane of " + std::to_string(plane_in) +
                    " elements");
}

// Average pooling with PyTorch's divisor (count_include_pad counts padding inside input + pad).
template <class T>
void avg_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y) {
  const char* k = "avg_pool2d_forward";
  const shape ys = pool2d_output_shape(x.shape(), p, k);
  detail::require_contiguous(x, k, "x");
  y.resize(ys);
  const detail::pool_geometry g(x.shape(), ys, p);
  detail::pool_forward_framed(g, p.count_include_pad, x.data(), y.data(), T(0), [](auto u) { return u; },
                              detail::sum_op{}, [](auto s, auto d) { return s / d; });
}

template <class T>
void avg_pool2d_backward(const Tensor<T>& dy, const shape& x_shape, const pool2d_params& p, Tensor<T>& dx) {
  const char* k = "avg_pool2d_backward";
  const shape ys = pool2d_output_shape(x_shape, p, k);
  detail::check_pool_grad(dy, x_shape, ys, k);
  dx.resize(x_shape);
  const detail::pool_geometry g(x_shape, ys, p);
  detail::for_each_plane<T>(g, g.OH * g.OW + g.W, [&](std::int64_t plane, T* scratch) {
    T* coef = scratch;
    T* row = scratch + g.OH * g.OW;
    const T* dyp = dy.data() + plane * g.OH * g.OW;
    for (std::int64_t i = 0; i < g.OH; ++i)
      for (std::int64_t j = 0; j < g.OW; ++j)
        coef[i * g.OW + j] = dyp[i * g.OW + j] / static_cast<T>(g.divisor(i, j, p.count_include_pad));
    detail::spread_windows(g, coef, dx.data() + plane * g.H * g.W, row);
  });
}

// L2 pooling as OpenFace's nn.SpatialLPPooling(p=2): Square -> SpatialAveragePooling ->
// MulConstant(kW*kH) -> Sqrt, i.e. y = sqrt(sum x^2 * kW*kH / divisor); with the default
// count_include_pad this is sqrt of the sum of squares (padding contributes 0).
template <class T>
void l2_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y) {
  const char* k = "l2_pool2d_forward";
  const shape ys = pool2d_output_shape(x.shape(), p, k);
  detail::require_contiguous(x, k, "x");
  y.resize(ys);
  const detail::pool_geometry g(x.shape(), ys, p);
  const T area = static_cast<T>(p.kernel_h * p.kernel_w);
  detail::pool_forward_framed(g, p.count_include_pad, x.data(), y.data(), T(0), [](auto u) { return u * u; },
                              detail::sum_op{}, [area](auto s, auto d) { return simd::sqrt(s * area / d); });
}

// dx = x * sum over windows of dy * (kW*kH / divisor) / y; a zero output passes no gradient
// (Torch's Sqrt backward does the same instead of dividing by zero).
template <class T>
void l2_pool2d_backward(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& y, const pool2d_params& p,
                        Tensor<T>& dx) {
  const char* k = "l2_pool2d_backward";
  const shape ys = pool2d_output_shape(x.shape(), p, k);
  detail::require_contiguous(x, k, "x");
  detail::check_pool_grad(dy, x.shape(), ys, k);
  detail::check_pool_grad(y, x.shape(), ys, k);
  dx.resize(x.shape());
  const detail::pool_geometry g(x.shape(), ys, p);
  const T area = static_cast<T>(p.kernel_h * p.kernel_w);
  detail::for_each_plane<T>(g, g.OH * g.OW + g.W, [&](std::int64_t plane, T* scratch) {
    T* coef = scratch;
    T* row = scratch + g.OH * g.OW;
    const std::int64_t o = plane * g.OH * g.OW;
    for (std::int64_t i = 0; i < g.OH; ++i)
      for (std::int64_t j = 0; j < g.OW; ++j) {
        const T yv = y.data()[o + i * g.OW + j];
        const T d = static_cast<T>(g.divisor(i, j, p.count_include_pad));
        coef[i * g.OW + j] = yv == T(0) ? T(0) : dy.data()[o + i * g.OW + j] * area / (d * yv);
      }
    T* dxp = dx.data() + plane * g.H * g.W;
    detail::spread_windows(g, coef, dxp, row);
    detail::simd_map2(dxp, dxp, x.data() + plane * g.H * g.W, g.H * g.W, [](auto c, auto u) { return c * u; });
  });
}

// [N,C,H,W] -> [N,C,1,1] mean over each plane.
template <class T>
void global_avg_pool_forward(const Tensor<T>& x, Tensor<T>& y) {
  const char* k = "global_avg_pool_forward";
  FACENET_CHECK(x.rank() == 4, shape_error, std::string(k) + ": x must be [N,C,H,W], got " + x.shape().str());
  detail::require_contiguous(x, k, "x");
  FACENET_CHECK(x.h() * x.w() > 0, shape_error, std::string(k) + ": empty plane in " + x.shape().str());
  const std::int64_t hw = x.h() * x.w();
  y.resize(shape{x.n(), x.c(), 1, 1});
  parallel::parallel_for(
      0, x.n() * x.c(),
      [&](std::int64_t plane) { y.data()[plane] = detail::simd_sum(x.data() + plane * hw, hw) / static_cast<T>(hw); },
      detail::rows_per_task(hw));
}

template <class T>
void global_avg_pool_backward(const Tensor<T>& dy, const shape& x_shape, Tensor<T>& dx) {
  const char* k = "global_avg_pool_backward";
  FACENET_CHECK(x_shape.rank() == 4 && x_shape[2] * x_shape[3] > 0, shape_error,
                std::string(k) + ": x must be a non-empty [N,C,H,W], got " + x_shape.str());
  detail::check_pool_grad(dy, x_shape, shape{x_shape[0], x_shape[1], 1, 1}, k);
  const std::int64_t hw = x_shape[2] * x_shape[3];
  dx.resize(x_shape);
  parallel::parallel_for(
      0, x_shape[0] * x_shape[1],
      [&](std::int64_t plane) {
        T* d = dx.data() + plane * hw;
        std::fill(d, d + hw, dy.data()[plane] / static_cast<T>(hw));
      },
      detail::rows_per_task(hw));
}

}  // namespace facenet::kernels
