// Scalar twin of kernels/pad.hpp.
#pragma once

#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

template <class T>
void pad2d_forward(const Tensor<T>& x, std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right,
                   Tensor<T>& y) {
  y.resize(shape{x.n(), x.c(), x.h() + top + bottom, x.w() + left + right});
  y.zero();
  for (std::int64_t n = 0; n < x.n(); ++n)
    for (std::int64_t c = 0; c < x.c(); ++c)
      for (std::int64_t i = 0; i < x.h(); ++i)
        for (std::int64_t j = 0; j < x.w(); ++j) y(n, c, i + top, j + left) = x(n, c, i, j);
}

template <class T>
void pad2d_backward(const Tensor<T>& dy, std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right,
                    Tensor<T>& dx) {
  dx.resize(shape{dy.n(), dy.c(), dy.h() - top - bottom, dy.w() - left - right});
  for (std::int64_t n = 0; n < dx.n(); ++n)
    for (std::int64_t c = 0; c < dx.c(); ++c)
      for (std::int64_t i = 0; i < dx.h(); ++i)
        for (std::int64_t j = 0; j < dx.w(); ++j) dx(n, c, i, j) = dy(n, c, i + top, j + left);
}

}  // namespace facenet::kernels::reference
