// Scalar twins of kernels/activation.hpp.
#pragma once

#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

template <class T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y) {
  y.resize(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) y.data()[i] = x.data()[i] > T(0) ? x.data()[i] : T(0);
}

template <class T>
void relu_backward(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx) {
  check_shape(dy, y.shape(), "reference::relu_backward: dy");
  dx.resize(dy.shape());
  for (std::int64_t i = 0; i < dy.numel(); ++i) dx.data()[i] = y.data()[i] > T(0) ? dy.data()[i] : T(0);
}

namespace detail {
// Channel of flat element i of a [N, C, ...] tensor, and the slope that applies to it.
template <class T>
T slope_of(const Tensor<T>& x, const Tensor<T>& alpha, std::int64_t i) {
  const std::int64_t inner = x.numel() / (x.size(0) * x.size(1));
  const std::int64_t c = (i / inner) % x.size(1);
  return alpha.numel() == 1 ? alpha.data()[0] : alpha.data()[c];
}
}  // namespace detail

template <class T>
void prelu_forward(const Tensor<T>& x, const Tensor<T>& alpha, Tensor<T>& y) {
  y.resize(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const T v = x.data()[i];
    y.data()[i] = v > T(0) ? v : detail::slope_of(x, alpha, i) * v;
  }
}

template <class T>
void prelu_backward(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& alpha, Tensor<T>& dx,
                    Tensor<T>& dalpha) {
  check_shape(dy, x.shape(), "reference::prelu_backward: dy");
  dx.resize(x.shape());
  dalpha.resize(alpha.shape());
  dalpha.zero();
  const std::int64_t inner = x.numel() / (x.size(0) * x.size(1));
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const T v = x.data()[i], g = dy.data()[i];
    dx.data()[i] = v > T(0) ? g : detail::slope_of(x, alpha, i) * g;
    const std::int64_t c = alpha.numel() == 1 ? 0 : (i / inner) % x.size(1);
    if (!(v > T(0))) dalpha.data()[c] += g * v;
  }
}

}  // namespace facenet::kernels::reference
