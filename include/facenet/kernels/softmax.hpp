// Softmax and log-softmax over dimension 1 of [N, C] (classifier logits) or [N, C, H, W] (MTCNN's
// per-pixel face/background scores). Numerically stable (max subtracted). For [N, C] the lanes run
// along a row; for feature maps they run along a block of pixels with the channel loop outside.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

namespace detail {

inline constexpr std::int64_t softmax_block = 256;  // pixels per task for feature maps

// `len` independent problems side by side (pixels of a feature map): element (c, lane) at
// x[c * stride + lane]; mx and sum are `len`-element scratch rows.
template <class T, bool Log>
void map_softmax(const T* x, T* y, std::int64_t channels, std::int64_t stride, std::int64_t len, T* mx, T* sum) {
  std::fill(mx, mx + len, -std::numeric_limits<T>::infinity());
  for (std::int64_t c = 0; c < channels; ++c)
    simd_map2(mx, mx, x + c * stride, len, [](auto m, auto v) { return simd::max(m, v); });
  std::fill(sum, sum + len, T(0));
  for (std::int64_t c = 0; c < channels; ++c) {
    if constexpr (Log) {
      simd_map3(sum, sum, x + c * stride, mx, len, [](auto s, auto v, auto m) { return s + simd::exp(v - m); });
    } else {
      // exp(x - max) is kept in y for the final scaling.
      T* e = y + c * stride;
      simd_map2(e, x + c * stride, mx, len, [](auto v, auto m) { return simd::exp(v - m); });
      simd_map2(sum, sum, e, len, [](auto s, auto v) { return s + v; });
    }
  }
  if constexpr (Log) {
    // (x - max) - log(sum), not x - (max + log(sum)): exact when x is large and the row is peaked.
    for (std::int64_t i = 0; i < len; ++i) sum[i] = std::log(sum[i]);
    for (std::int64_t c = 0; c < channels; ++c)
      simd_map3(y + c * stride, x + c * stride, mx, sum, len, [](auto v, auto m, auto l) { return (v - m) - l; });
  } else {
    simd_map(sum, sum, len, [](auto s) { return decltype(s)(T(1)) / s; });
    for (std::int64_t c = 0; c < channels; ++c)
      simd_map2(y + c * stride, y + c * stride, sum, len, [](auto e, auto r) { return e * r; });
  }
}

// One contiguous row of `channels` logits.
template <class T, bool Log>
void row_softmax(const T* x, T* y, std::int64_t channels) {
  T m = -std::numeric_limits<T>::infinity();
  for (std::int64_t c = 0; c < channels; ++c) m = std::max(m, x[c]);
  const simd::batch<T> mv(m);
  T s;
  if constexpr (Log) {
    s = simd_sum2(x, x, channels, [&](auto v, auto) { return simd::exp(v - mv); });
    const simd::batch<T> log_s(std::log(s));
    simd_map(y, x, channels, [&](auto v) { return (v - mv) - log_s; });
  } else {
    simd_map(y, x, channels, [&](auto v) { return simd::exp(v - mv); });
    s = simd_sum(y, channels);
    const simd::batch<T> r(T(1) / s);
    simd_map(y, y, channels, [&](auto e) { return e * r; });
  }
}

template <class T, bool Log>
void softmax_forward_impl(const Tensor<T>& x, Tensor<T>& y, const char* kernel) {
  const channel_layout l = channels_of(x, kernel, "x");
  y.resize(x.shape());
  if (l.inner == 1) {
    parallel::parallel_for(
        0, l.outer, [&](std::int64_t n) { row_softmax<T, Log>(x.data() + n * l.channels, y.data() + n * l.channels, l.channels); },
        rows_per_task(l.channels));
    return;
  }
  const std::int64_t blocks = (l.inner + softmax_block - 1) / softmax_block;
  parallel_tasks<T>(l.outer * blocks, l.channels * softmax_block, 2 * softmax_block, [&](std::int64_t t, T* scratch) {
    const std::int64_t n = t / blocks, p = (t % blocks) * softmax_block, len = std::min(softmax_block, l.inner - p);
    const std::int64_t o = n * l.channels * l.inner + p;
    map_softmax<T, Log>(x.data() + o, y.data() + o, l.channels, l.inner, len, scratch, scratch + softmax_block);
  });
}

// Backward over a run of lanes: softmax dx = y * (dy - sum_c dy*y); log-softmax dx = dy - exp(y) * sum_c dy.
template <class T, bool Log>
void softmax_backward_lanes(const T* dy, const T* y, T* dx, std::int64_t channels, std::int64_t stride,
                            std::int64_t len, T* acc) {
  std::fill(acc, acc + len, T(0));
  for (std::int64_t c = 0; c < channels; ++c) {
    const std::int64_t o = c * stride;
    if constexpr (Log)
      simd_map2(acc, acc, dy + o, len, [](auto a, auto g) { return a + g; });
    else
      simd_map3(acc, acc, dy + o, y + o, len, [](auto a, auto g, auto v) { return simd::fma(g, v, a); });
  }
  for (std::int64_t c = 0; c < channels; ++c) {
    const std::int64_t o = c * stride;
    T* d = dx + o;
    if constexpr (Log) {
      simd_map3(d, dy + o, y + o, acc, len, [](auto g, auto v, auto a) { return g - simd::exp(v) * a; });
    } else {
      simd_map3(d, dy + o, y + o, acc, len, [](auto g, auto v, auto a) { return v * (g - a); });
    }
  }
}

template <class T, bool Log>
void softmax_backward_impl(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx, const char* kernel) {
  const channel_layout l = channels_of(y, kernel, "y");
  require_contiguous(dy, kernel, "dy");
  require_same_shape(y, dy, kernel, "y", "dy");
  dx.resize(y.shape());
  if (l.inner == 1) {
    // Rows: the per-row sum is a scalar, so reduce along the row first.
    parallel::parallel_for(
        0, l.outer,
        [&](std::int64_t n) {
          const std::int64_t o = n * l.channels;
          const T s = Log ? simd_sum(dy.data() + o, l.channels) : simd_dot(dy.data() + o, y.data() + o, l.channels);
          const simd::batch<T> sv(s);
          if constexpr (Log)
            simd_map2(dx.data() + o, dy.data() + o, y.data() + o, l.channels,
                      [&](auto g, auto v) { return g - simd::exp(v) * sv; });
          else
            simd_map2(dx.data() + o, dy.data() + o, y.data() + o, l.channels, [&](auto g, auto v) { return v * (g - sv); });
        },
        rows_per_task(l.channels));
    return;
  }
  const std::int64_t blocks = (l.inner + softmax_block - 1) / softmax_block;
  parallel_tasks<T>(l.outer * blocks, l.channels * softmax_block, softmax_block, [&](std::int64_t t, T* acc) {
    const std::int64_t n = t / blocks, p = (t % blocks) * softmax_block, len = std::min(softmax_block, l.inner - p);
    const std::int64_t o = n * l.channels * l.inner + p;
    softmax_backward_lanes<T, Log>(dy.data() + o, y.data() + o, dx.data() + o, l.channels, l.inner, len, acc);
  });
}

}  // namespace detail

template <class T>
void softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
  detail::softmax_forward_impl<T, false>(x, y, "softmax_forward");
}
// dx = y * (dy - sum_c dy * y), from the forward output y.
template <class T>
void softmax_backward(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx) {
  detail::softmax_backward_impl<T, false>(dy, y, dx, "softmax_backward");
}
template <class T>
void log_softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
  detail::softmax_forward_impl<T, true>(x, y, "log_softmax_forward");
}
// dx = dy - exp(y) * sum_c dy, from the forward output y.
template <class T>
void log_softmax_backward(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx) {
  detail::softmax_backward_impl<T, true>(dy, y, dx, "log_softmax_backward");
}

}  // namespace facenet::kernels
