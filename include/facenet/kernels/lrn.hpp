// Cross-channel local response normalisation, as torch.nn.LocalResponseNorm and Torch7's
// nn.SpatialCrossMapLRN (OpenFace: size 5, alpha 1e-4, beta 0.75, k 1):
//   y[c] = x[c] * (k + alpha / size * sum_{j in [c - size/2, c + (size-1)/2] ∩ [0, C)} x[j]^2)^-beta.
// SIMD lanes run along a block of pixels; tasks are (image, pixel block) pairs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

namespace detail {

// Pixels per task: a multiple of every SIMD width, small enough that C such rows fit in L2.
inline constexpr std::int64_t lrn_block = 128;

struct lrn_geometry {
  channel_layout l;
  std::int64_t size, before, after, blocks;
  lrn_geometry(const channel_layout& layout, std::int64_t window)
      : l(layout), size(window), before(window / 2), after((window - 1) / 2),
        blocks((layout.inner + lrn_block - 1) / lrn_block) {}
};

template <class T>
lrn_geometry lrn_setup(const Tensor<T>& x, std::int64_t size, const char* kernel) {
  FACENET_CHECK(size >= 1, argument_error, std::string(kernel) + ": size must be >= 1, got " + std::to_string(size));
  FACENET_CHECK(x.rank() >= 3, shape_error,
                std::string(kernel) + ": x must be [N,C,H,W] (rank >= 3), got " + x.shape().str());
  return lrn_geometry(channels_of(x, kernel, "x"), size);
}

// scale[c] = k + alpha/size * sum of squares over the channel window, for pixels [p, p + len) of image n.
template <class T>
void lrn_scale(const lrn_geometry& g, const T* x, std::int64_t n, std::int64_t p, std::int64_t len, T alpha, T k,
               T* scale) {
  const simd::batch<T> a(alpha / static_cast<T>(g.size)), kv(k);
  for (std::int64_t c = 0; c < g.l.channels; ++c) {
    const std::int64_t j0 = std::max<std::int64_t>(0, c - g.before), j1 = std::min(g.l.channels - 1, c + g.after);
    T* s = scale + c * lrn_block;
    const T* first = x + (n * g.l.channels + j0) * g.l.inner + p;
    simd_map(s, first, len, [](auto u) { return u * u; });
    for (std::int64_t j = j0 + 1; j <= j1; ++j)
      simd_map2(s, s, x + (n * g.l.channels + j) * g.l.inner + p, len, [](auto acc, auto u) { return simd::fma(u, u, acc); });
    simd_map(s, s, len, [&](auto acc) { return simd::fma(a, acc, kv); });
  }
}

// s^-beta. NN4's (and AlexNet's) beta = 0.75 is q * q * p with q = s^-1/2 and p = q^-1/2 = s^1/4:
// two reciprocal square roots (simd::rsqrt) instead of pow's exp and log. Within a few ulp of pow for
// float (estimate and Newton step) and of 2 ulp for double (square roots and divisions); the float
// form took LRN forward on 192x24x24 from 70-72 to 40-45 us on one thread (two sqrt and a division).
template <class T>
struct inverse_power {
  T beta;
  template <class V>
  V operator()(const V& s) const {
    if (beta == T(0.75)) {
      const V q = simd::rsqrt(s);
      return q * q * simd::rsqrt(q);
    }
    return simd::pow(s, V(-beta));
  }
};

}  // namespace detail

// Each output vector sums its window's squares in a register (lrn_scale's order of operations)
// and is written once: no scale buffer to store and re-read per window channel.
template <class T>
void lrn_cross_channel_forward(const Tensor<T>& x, std::int64_t size, T alpha, T beta, T k, Tensor<T>& y) {
  const auto g = detail::lrn_setup(x, size, "lrn_cross_channel_forward");
  y.resize(x.shape());
  using V = simd::batch<T>;
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  const detail::inverse_power<T> inv{beta};
  const V a(alpha / static_cast<T>(g.size)), kv(k);
  const std::int64_t C = g.l.channels, inner = g.l.inner;
  // Channel ranges split the tasks further when there are few pixel blocks: NN4's norm2 at batch 1
  // has 5, which left one of two threads idle for a third of the time (93 -> 78 us on 2 threads).
  const std::int64_t cells = g.l.outer * g.blocks;
  const std::int64_t parts = std::clamp<std::int64_t>((8 * parallel::max_threads() + cells - 1) / cells, 1, C);
  detail::parallel_tasks<T>(cells * parts, C * detail::lrn_block * g.size / parts, 0, [&](std::int64_t task, T*) {
    const std::int64_t cell = task / parts, part = task % parts;
    const std::int64_t n = cell / g.blocks, p0 = (cell % g.blocks) * detail::lrn_block;
    const std::int64_t end = std::min(p0 + detail::lrn_block, inner);
    const T* image = x.data() + n * C * inner;
    for (std::int64_t c = part * C / parts; c < (part + 1) * C / parts; ++c) {
      const std::int64_t j0 = std::max<std::int64_t>(0, c - g.before), j1 = std::min(C - 1, c + g.after);
      T* out = y.data() + (n * C + c) * inner;
      // U output vectors at p (m lanes valid in each when U = 1): U independent chains per step, as
      // one chain of window FMAs and two reciprocal square roots left the core mostly waiting.
      const auto outputs = [&](std::int64_t p, auto vectors, std::size_t m) {
        constexpr int U = decltype(vectors)::value;
        const auto load = [&](std::int64_t j, int u) {
          const T* q = image + j * inner + p + u * w;
          return m == simd::width<T> ? simd::load(q) : simd::load_partial(q, m);
        };
        V acc[U];
        for (int u = 0; u < U; ++u) {
          const V v = load(j0, u);
          acc[u] = v * v;
        }
        for (std::int64_t j = j0 + 1; j <= j1; ++j)
          for (int u = 0; u < U; ++u) {
            const V v = load(j, u);
            acc[u] = simd::fma(v, v, acc[u]);
          }
        for (int u = 0; u < U; ++u) {
          const V r = load(c, u) * inv(simd::fma(a, acc[u], kv));
          if (m == simd::width<T>)
            simd::store(out + p + u * w, r);
          else
            simd::store_partial(out + p + u * w, r, m);
        }
      };
      std::int64_t p = p0;
      for (; p + 4 * w <= end; p += 4 * w) outputs(p, std::integral_constant<int, 4>(), simd::width<T>);
      for (; p < end; p += w) outputs(p, std::integral_constant<int, 1>(), static_cast<std::size_t>(std::min(w, end - p)));
    }
  });
}

// dx[j] = dy[j] * s[j]^-beta - 2 alpha beta / size * x[j] * sum_{c : j in window(c)} dy[c] x[c] s[c]^(-beta-1).
template <class T>
void lrn_cross_channel_backward(const Tensor<T>& dy, const Tensor<T>& x, std::int64_t size, T alpha, T beta, T k,
                                Tensor<T>& dx) {
  const char* kname = "lrn_cross_channel_backward";
  const auto g = detail::lrn_setup(x, size, kname);
  detail::require_contiguous(dy, kname, "dy");
  detail::require_same_shape(x, dy, kname, "x", "dy");
  dx.resize(x.shape());
  const detail::inverse_power<T> inv{beta};
  const simd::batch<T> coef(T(-2) * alpha * beta / static_cast<T>(size));
  const std::int64_t C = g.l.channels, B = detail::lrn_block;
  detail::parallel_tasks<T>(
      g.l.outer * g.blocks, C * B * (g.size + 4), 2 * C * B, [&](std::int64_t task, T* scratch) {
        const std::int64_t n = task / g.blocks, p = (task % g.blocks) * B;
        const std::int64_t len = std::min(B, g.l.inner - p);
        T* pw = scratch;         // s^-beta
        T* t = scratch + C * B;  // dy * x * s^(-beta-1)
        detail::lrn_scale(g, x.data(), n, p, len, alpha, k, pw);
        for (std::int64_t c = 0; c < C; ++c) {
          const std::int64_t o = (n * C + c) * g.l.inner + p;
          T* pc = pw + c * B;
          T* tc = t + c * B;
          detail::simd_map(tc, pc, len, [](auto s) { return s; });
          detail::simd_map(pc, pc, len, [&](auto s) { return inv(s); });
          detail::simd_map2(tc, pc, tc, len, [](auto q, auto s) { return q / s; });
          detail::simd_map3(tc, tc, dy.data() + o, x.data() + o, len, [](auto q, auto gv, auto u) { return q * gv * u; });
        }
        for (std::int64_t j = 0; j < C; ++j) {
          // Channels c whose window contains j: [j - after, j + before].
          const std::int64_t c0 = std::max<std::int64_t>(0, j - g.after), c1 = std::min(C - 1, j + g.before);
          const std::int64_t o = (n * C + j) * g.l.inner + p;
          T* d = dx.data() + o;
          detail::simd_map(d, t + c0 * B, len, [](auto v) { return v; });
          for (std::int64_t c = c0 + 1; c <= c1; ++c)
            detail::simd_map2(d, d, t + c * B, len, [](auto acc, auto v) { return acc + v; });
          detail::simd_map2(d, d, x.data() + o, len, [&](auto sum, auto u) { return coef * u * sum; });
          detail::simd_map3(d, d, dy.data() + o, pw + j * B, len, [](auto acc, auto gv, auto q) { return simd::fma(gv, q, acc); });
        }
      });
}

}  // namespace facenet::kernels
