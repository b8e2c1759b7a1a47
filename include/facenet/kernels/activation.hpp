// ReLU and per-channel PReLU (MTCNN), forward and backward.
#pragma once

#include <cstdint>
#include <string>

#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

template <class T>
void relu_forward(const Tensor<T>& x, Tensor<T>& y) {
  detail::require_contiguous(x, "relu_forward", "x");
  y.resize(x.shape());
  const simd::batch<T> zero(T(0));
  detail::flat_map(y.data(), x.data(), x.numel(), [&](auto v) { return simd::max(v, zero); });
}

// dx = dy where the forward output y was positive; uses y so the input need not be kept.
template <class T>
void relu_backward(const Tensor<T>& dy, const Tensor<T>& y, Tensor<T>& dx) {
  detail::require_contiguous(dy, "relu_backward", "dy");
  detail::require_contiguous(y, "relu_backward", "y");
  detail::require_same_shape(y, dy, "relu_backward", "y", "dy");
  dx.resize(dy.shape());
  const simd::batch<T> zero(T(0));
  detail::flat_map2(dx.data(), dy.data(), y.data(), dy.numel(),
                    [&](auto g, auto v) { return simd::select_gt(v, zero, g, zero); });
}

namespace detail {
// PReLU slopes: one per channel, or a single shared slope (nn.PReLU() with num_parameters=1),
// expanded to one per channel so the kernels have a single body.
template <class T>
Tensor<T> prelu_slopes(const Tensor<T>& alpha, std::int64_t channels, const char* kernel) {
  FACENET_CHECK(alpha.rank() == 1 && (alpha.numel() == channels || alpha.numel() == 1), shape_error,
                std::string(kernel) + ": alpha must have shape [" + std::to_string(channels) + "] or [1], got " +
                    alpha.shape().str());
  if (alpha.numel() == channels) return alpha;
  return Tensor<T>::full(shape{channels}, alpha.data()[0]);
}
}  // namespace detail

// y = x > 0 ? x : alpha[c] * x, x is [N,C] or [N,C,H,W].
template <class T>
void prelu_forward(const Tensor<T>& x, const Tensor<T>& alpha, Tensor<T>& y) {
  const auto l = detail::channels_of(x, "prelu_forward", "x");
  const Tensor<T> a = detail::prelu_slopes(alpha, l.channels, "prelu_forward");
  y.resize(x.shape());
  const simd::batch<T> zero(T(0));
  detail::channel_map(l, y.data(), x.data(), x.data(), a.data(), a.data(), a.data(),
                      [&](auto v, auto, auto s, auto, auto) { return simd::select_gt(v, zero, v, s * v); });
}

// dx = dy * (x > 0 ? 1 : alpha[c]); dalpha[c] = sum over x <= 0 of dy * x (summed to one value
// when alpha is shared).
template <class T>
void prelu_backward(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& alpha, Tensor<T>& dx,
                    Tensor<T>& dalpha) {
  const auto l = detail::channels_of(x, "prelu_backward", "x");
  detail::require_contiguous(dy, "prelu_backward", "dy");
  detail::require_same_shape(x, dy, "prelu_backward", "x", "dy");
  const Tensor<T> a = detail::prelu_slopes(alpha, l.channels, "prelu_backward");
  dx.resize(x.shape());
  const simd::batch<T> zero(T(0));
  detail::channel_map(l, dx.data(), dy.data(), x.data(), a.data(), a.data(), a.data(),
                      [&](auto g, auto v, auto s, auto, auto) { return simd::select_gt(v, zero, g, g * s); });
  Tensor<T> per_channel = Tensor<T>::uninitialized(shape{l.channels});
  detail::channel_sum(l, dy.data(), x.data(), a.data(), per_channel.data(),
                      [&](auto g, auto v, auto) { return simd::select_gt(v, zero, zero, g * v); });
  dalpha.resize(alpha.shape());
  if (alpha.numel() == l.channels) {
    dalpha.copy_from(per_channel);
  } else {
    T s = T(0);
    for (T v : per_channel) s += v;
    dalpha.data()[0] = s;
  }
}

}  // namespace facenet::kernels
