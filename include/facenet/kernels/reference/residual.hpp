// Scalar twin of kernels/residual.hpp.
#pragma once

#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

template <class T>
void scale_add_forward(const Tensor<T>& x, const Tensor<T>& branch, T scale, Tensor<T>& y, bool relu = false) {
  y.resize(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const T v = x.data()[i] + scale * branch.data()[i];
    y.data()[i] = relu && !(v > T(0)) ? T(0) : v;
  }
}

template <class T>
void scale_add_backward(const Tensor<T>& dy, const Tensor<T>& y, T scale, Tensor<T>& dx, Tensor<T>& dbranch,
                        bool relu = false) {
  dx.resize(dy.shape());
  dbranch.resize(dy.shape());
  for (std::int64_t i = 0; i < dy.numel(); ++i) {
    const T g = relu && !(y.data()[i] > T(0)) ? T(0) : dy.data()[i];
    dx.data()[i] = g;
    dbranch.data()[i] = scale * g;
  }
}

}  // namespace facenet::kernels::reference
