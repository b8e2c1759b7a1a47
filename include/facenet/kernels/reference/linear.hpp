// Scalar twin of kernels/linear.hpp.
#pragma once

#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

template <class T>
void linear_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, Tensor<T>& y) {
  const std::int64_t N = x.size(0), in = w.size(1), out = w.size(0);
  y.resize(shape{N, out});
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t o = 0; o < out; ++o) {
      T s = bias.empty() ? T(0) : bias.data()[o];
      for (std::int64_t i = 0; i < in; ++i) s += x.data()[n * in + i] * w.data()[o * in + i];
      y.data()[n * out + o] = s;
    }
}

template <class T>
void linear_backward_data(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& w, Tensor<T>& dx) {
  const std::int64_t N = x.size(0), in = w.size(1), out = w.size(0);
  dx.resize(x.shape());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t i = 0; i < in; ++i) {
      T s = T(0);
      for (std::int64_t o = 0; o < out; ++o) s += dy.data()[n * out + o] * w.data()[o * in + i];
      dx.data()[n * in + i] = s;
    }
}

template <class T>
void linear_backward_weight(const Tensor<T>& dy, const Tensor<T>& x, Tensor<T>& dw, Tensor<T>& db) {
  const std::int64_t N = dy.size(0), out = dy.size(1), in = x.numel() / N;
  dw.resize(shape{out, in});
  db.resize(shape{out});
  for (std::int64_t o = 0; o < out; ++o) {
    T sb = T(0);
    for (std::int64_t n = 0; n < N; ++n) sb += dy.data()[n * out + o];
    db.data()[o] = sb;
    for (std::int64_t i = 0; i < in; ++i) {
      T s = T(0);
      for (std::int64_t n = 0; n < N; ++n) s += dy.data()[n * out + o] * x.data()[n * in + i];
      dw.data()[o * in + i] = s;
    }
  }
}

}  // namespace facenet::kernels::reference
