// Scalar twin of kernels/lrn.hpp, straight from the definition.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

namespace detail {
// k + alpha/size * sum of squares over the channel window of (n, c, i); x is [N, C, inner].
template <class T>
T lrn_scale_at(const Tensor<T>& x, std::int64_t size, T alpha, T k, std::int64_t n, std::int64_t c, std::int64_t i) {
  const std::int64_t C = x.size(1), inner = x.numel() / (x.size(0) * C);
  T s = T(0);
  for (std::int64_t j = std::max<std::int64_t>(0, c - size / 2); j <= std::min(C - 1, c + (size - 1) / 2); ++j) {
    const T v = x.data()[(n * C + j) * inner + i];
    s += v * v;
  }
  return k + alpha / static_cast<T>(size) * s;
}
}  // namespace detail

template <class T>
void lrn_cross_channel_forward(const Tensor<T>& x, std::int64_t size, T alpha, T beta, T k, Tensor<T>& y) {
  const std::int64_t N = x.size(0), C = x.size(1), inner = x.numel() / (N * C);
  y.resize(x.shape());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t i = 0; i < inner; ++i) {
        const std::int64_t o = (n * C + c) * inner + i;
        y.data()[o] = x.data()[o] * std::pow(detail::lrn_scale_at(x, size, alpha, k, n, c, i), -beta);
      }
}

template <class T>
void lrn_cross_channel_backward(const Tensor<T>& dy, const Tensor<T>& x, std::int64_t size, T alpha, T beta, T k,
                                Tensor<T>& dx) {
  const std::int64_t N = x.size(0), C = x.size(1), inner = x.numel() / (N * C);
  dx.resize(x.shape());
  dx.zero();
  // Scatter form: output c depends on x[j] for j in its window; the optimized kernel gathers.
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t i = 0; i < inner; ++i) {
        const std::int64_t o = (n * C + c) * inner + i;
        const T s = detail::lrn_scale_at(x, size, alpha, k, n, c, i);
        const T g = dy.data()[o];
        dx.data()[o] += g * std::pow(s, -beta);
        const T common = g * x.data()[o] * -beta * std::pow(s, -beta - 1) * alpha / static_cast<T>(size) * 2;
        for (std::int64_t j = std::max<std::int64_t>(0, c - size / 2); j <= std::min(C - 1, c + (size - 1) / 2); ++j) {
          const std::int64_t oj = (n * C + j) * inner + i;
          dx.data()[oj] += common * x.data()[oj];
        }
      }
}

}  // namespace facenet::kernels::reference
