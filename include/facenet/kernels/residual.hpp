// Residual scale-add of Inception-ResNet blocks: y = x + scale * branch, optionally followed by ReLU
// (Block35/17/8 apply ReLU after the sum except the last Block8).
#pragma once

#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

template <class T>
void scale_add_forward(const Tensor<T>& x, const Tensor<T>& branch, T scale, Tensor<T>& y, bool relu = false) {
  const char* k = "scale_add_forward";
  detail::require_contiguous(x, k, "x");
  detail::require_contiguous(branch, k, "branch");
  detail::require_same_shape(x, branch, k, "x", "branch");
  y.resize(x.shape());
  const simd::batch<T> s(scale), zero(T(0));
  detail::flat_map2(y.data(), x.data(), branch.data(), x.numel(), [&](auto u, auto b) {
    const auto sum = simd::fma(s, b, u);
    return relu ? simd::max(sum, zero) : sum;
  });
}

// dx = g, dbranch = scale * g, with g = dy masked by y > 0 when the ReLU was fused (y is only read
// then and may be empty otherwise).
template <class T>
void scale_add_backward(const Tensor<T>& dy, const Tensor<T>& y, T scale, Tensor<T>& dx, Tensor<T>& dbranch,
                        bool relu = false) {
  const char* k = "scale_add_backward";
  detail::require_contiguous(dy, k, "dy");
  dx.resize(dy.shape());
  dbranch.resize(dy.shape());
  const simd::batch<T> s(scale), zero(T(0));
  if (relu) {
    detail::require_contiguous(y, k, "y");
    detail::require_same_shape(dy, y, k, "dy", "y");
    detail::flat_map2(dx.data(), dy.data(), y.data(), dy.numel(),
                      [&](auto g, auto v) { return simd::select_gt(v, zero, g, zero); });
  } else {
    detail::flat_map(dx.data(), dy.data(), dy.numel(), [](auto g) { return g; });
  }
  detail::flat_map(dbranch.data(), dx.data(), dx.numel(), [&](auto g) { return g * s; });
}

}  // namespace facenet::kernels
