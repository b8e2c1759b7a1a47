// Scalar twins of kernels/elementwise.hpp: the test oracle.
#pragma once

#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

template <class T>
void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
  check_shape(b, a.shape(), "reference::add: b");
  y.resize(a.shape());
  for (std::int64_t i = 0; i < a.numel(); ++i) y.data()[i] = a.data()[i] + b.data()[i];
}

template <class T>
void add_inplace(Tensor<T>& y, const Tensor<T>& x) {
  check_shape(x, y.shape(), "reference::add_inplace: x");
  for (std::int64_t i = 0; i < y.numel(); ++i) y.data()[i] += x.data()[i];
}

template <class T>
void scale(const Tensor<T>& x, T s, Tensor<T>& y) {
  y.resize(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) y.data()[i] = s * x.data()[i];
}

template <class T>
void axpy(T alpha, const Tensor<T>& x, Tensor<T>& y) {
  check_shape(x, y.shape(), "reference::axpy: x");
  for (std::int64_t i = 0; i < y.numel(); ++i) y.data()[i] += alpha * x.data()[i];
}

template <class T>
void multiply(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
  check_shape(b, a.shape(), "reference::multiply: b");
  y.resize(a.shape());
  for (std::int64_t i = 0; i < a.numel(); ++i) y.data()[i] = a.data()[i] * b.data()[i];
}

}  // namespace facenet::kernels::reference
