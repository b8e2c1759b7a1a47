// Scalar twin of kernels/l2_normalize.hpp.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

template <class T>
void l2_normalize_forward(const Tensor<T>& x, Tensor<T>& y, T eps = T(1e-12)) {
  const std::int64_t N = x.size(0), D = x.size(1);
  y.resize(x.shape());
  for (std::int64_t n = 0; n < N; ++n) {
    T s = T(0);
    for (std::int64_t d = 0; d < D; ++d) s += x(n, d) * x(n, d);
    const T denom = std::max(std::sqrt(s), eps);
    for (std::int64_t d = 0; d < D; ++d) y(n, d) = x(n, d) / denom;
  }
}

template <class T>
void l2_normalize_backward(const Tensor<T>& dy, const Tensor<T>& x, Tensor<T>& dx, T eps = T(1e-12)) {
  const std::int64_t N = x.size(0), D = x.size(1);
  dx.resize(x.shape());
  for (std::int64_t n = 0; n < N; ++n) {
    T s = T(0);
    for (std::int64_t d = 0; d < D; ++d) s += x(n, d) * x(n, d);
    const T norm = std::sqrt(s);
    if (norm < eps) {
      for (std::int64_t d = 0; d < D; ++d) dx(n, d) = dy(n, d) / eps;
      continue;
    }
    // Jacobian of x / ||x||: (I - y y^T) / ||x||.
    T ydy = T(0);
    for (std::int64_t d = 0; d < D; ++d) ydy += x(n, d) / norm * dy(n, d);
    for (std::int64_t d = 0; d < D; ++d) dx(n, d) = (dy(n, d) - x(n, d) / norm * ydy) / norm;
  }
}

}  // namespace facenet::kernels::reference
