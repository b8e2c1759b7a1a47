// Scalar twins of kernels/softmax.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

namespace detail {
template <class T, bool Log>
void softmax(const Tensor<T>& x, Tensor<T>& y) {
  const std::int64_t N = x.size(0), C = x.size(1), inner = x.numel() / (N * C);
  y.resize(x.shape());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t i = 0; i < inner; ++i) {
      auto at = [&](std::int64_t c) { return (n * C + c) * inner + i; };
      T m = x.data()[at(0)];
      for (std::int64_t c = 1; c < C; ++c) m = std::max(m, x.data()[at(c)]);
      T s = T(0);
      for (std::int64_t c = 0; c < C; ++c) s += std::exp(x.data()[at(c)] - m);
      for (std::int64_t c = 0; c < C; ++c)
        y.data()[at(c)] = Log ? (x.data()[at(c)] - m) - std::log(s) : std::exp(x.data()[at(c)] - m) / s;
    }
}

template <class T, bool Log>
void softmax_grad(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx) {
  const std::int64_t N = y.size(0), C = y.size(1), inner = y.numel() / (N * C);
  dx.resize(y.shape());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t i = 0; i < inner; ++i) {
      auto at = [&](std::int64_t c) { return (n * C + c) * inner + i; };
      T s = T(0);
      for (std::int64_t c = 0; c < C; ++c) s += Log ? dy.data()[at(c)] : dy.data()[at(c)] * y.data()[at(c)];
      for (std::int64_t c = 0; c < C; ++c)
        dx.data()[at(c)] = Log ? dy.data()[at(c)] - std::exp(y.data()[at(c)]) * s : y.data()[at(c)] * (dy.data()[at(c)] - s);
    }
}
}  // namespace detail

template <class T>
void softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
  detail::softmax<T, false>(x, y);
}
template <class T>
void softmax_backward(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx) {
  detail::softmax_grad<T, false>(dy, y, dx);
}
template <class T>
void log_softmax_forward(const Tensor<T>& x, Tensor<T>& y) {
  detail::softmax<T, true>(x, y);
}
template <class T>
void log_softmax_backward(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx) {
  detail::softmax_grad<T, true>(dy, y, dx);
}

}  // namespace facenet::kernels::reference
