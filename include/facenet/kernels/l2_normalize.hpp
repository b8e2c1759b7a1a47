// Row-wise L2 normalisation of embeddings, exactly torch.nn.functional.normalize(x, p=2, dim=1):
// y = x / max(||x||, eps) with eps = 1e-12 by default.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

namespace detail {
template <class T>
void l2_normalize_check(const Tensor<T>& x, T eps, const char* kernel) {
  FACENET_CHECK(x.rank() == 2, shape_error, std::string(kernel) + ": x must be [N, D], got " + x.shape().str());
  require_contiguous(x, kernel, "x");
  FACENET_CHECK(eps > T(0), argument_error, std::string(kernel) + ": eps must be > 0, got " + std::to_string(eps));
}
}  // namespace detail

template <class T>
void l2_normalize_forward(const Tensor<T>& x, Tensor<T>& y, T eps = T(1e-12)) {
  detail::l2_normalize_check(x, eps, "l2_normalize_forward");
  const std::int64_t N = x.size(0), D = x.size(1);
  y.resize(x.shape());
  parallel::parallel_for(
      0, N,
      [&](std::int64_t n) {
        const T* xr = x.data() + n * D;
        // Divide (not multiply by the reciprocal) to round exactly like PyTorch.
        const simd::batch<T> denom(std::max(std::sqrt(detail::simd_dot(xr, xr, D)), eps));
        detail::simd_map(y.data() + n * D, xr, D, [&](auto v) { return v / denom; });
      },
      detail::rows_per_task(D));
}

// Where ||x|| >= eps: dx = (dy - y * <y, dy>) / ||x||; where the norm was clamped: dx = dy / eps
// (clamp_min passes no gradient to the norm).
template <class T>
void l2_normalize_backward(const Tensor<T>& dy, const Tensor<T>& x, Tensor<T>& dx, T eps = T(1e-12)) {
  const char* k = "l2_normalize_backward";
  detail::l2_normalize_check(x, eps, k);
  detail::require_contiguous(dy, k, "dy");
  detail::require_same_shape(x, dy, k, "x", "dy");
  const std::int64_t N = x.size(0), D = x.size(1);
  dx.resize(x.shape());
  parallel::parallel_for(
      0, N,
      [&](std::int64_t n) {
        const T* xr = x.data() + n * D;
        const T* gr = dy.data() + n * D;
        T* dr = dx.data() + n * D;
        const T norm = std::sqrt(detail::simd_dot(xr, xr, D));
        if (!(norm >= eps)) {
          const simd::batch<T> inv(T(1) / eps);
          detail::simd_map(dr, gr, D, [&](auto g) { return g * inv; });
          return;
        }
        // With y = x / norm: <y, dy> / norm = <x, dy> / norm^2.
        const simd::batch<T> inv(T(1) / norm), proj(detail::simd_dot(xr, gr, D) / (norm * norm * norm));
        detail::simd_map2(dr, gr, xr, D, [&](auto g, auto v) { return g * inv - v * proj; });
      },
      detail::rows_per_task(D));
}

}  // namespace facenet::kernels
