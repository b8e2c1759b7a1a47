// Scalar twin of kernels/dropout.hpp (same random stream: the hash defines the mask).
#pragma once

#include <cstdint>

#include "facenet/core/tensor.hpp"
#include "facenet/kernels/dropout.hpp"

namespace facenet::kernels::reference {

template <class T>
void dropout_forward(const Tensor<T>& x, T p, std::uint64_t seed, bool training, Tensor<T>& y, Tensor<T>& mask) {
  y.resize(x.shape());
  mask.resize(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    const bool dropped = training && kernels::detail::dropout_uniform(seed, static_cast<std::uint64_t>(i)) < p;
    const T scale = !training ? T(1) : (p < T(1) ? T(1) / (T(1) - p) : T(0));
    mask.data()[i] = dropped ? T(0) : scale;
    y.data()[i] = x.data()[i] * mask.data()[i];
  }
}

template <class T>
void dropout_backward(const Tensor<T>& dy, const Tensor<T>& mask, Tensor<T>& dx) {
  dx.resize(dy.shape());
  for (std::int64_t i = 0; i < dy.numel(); ++i) dx.data()[i] = dy.data()[i] * mask.data()[i];
}

}  // namespace facenet::kernels::reference
