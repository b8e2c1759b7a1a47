// Batch normalisation with PyTorch semantics over [N,C] (BatchNorm1d) and NCHW (BatchNorm2d):
// training with batch statistics and running averages, inference with frozen statistics, both
// backward passes, and folding into the preceding convolution for inference.
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
channel_layout batch_norm_layout(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                 const char* kernel) {
  FACENET_CHECK(x.rank() == 2 || x.rank() == 4, shape_error,
                std::string(kernel) + ": x must be [N,C] or [N,C,H,W], got " + x.shape().str());
  const channel_layout l = channels_of(x, kernel, "x");
  require_vector(gamma, l.channels, kernel, "gamma");
  require_vector(beta, l.channels, kernel, "beta");
  return l;
}

inline void check_eps(double eps, const char* kernel) {
  FACENET_CHECK(std::isfinite(eps) && eps >= 0, argument_error,
                std::string(kernel) + ": eps must be finite and >= 0, got " + std::to_string(eps));
}

// 1 / sqrt(var + eps) per channel.
template <class T>
void inverse_std(const T* var, T eps, std::int64_t channels, T* out) {
  simd_map(out, var, channels, [&](auto v) { return decltype(v)(T(1)) / simd::sqrt(v + decltype(v)(eps)); });
}

// y = x * scale[c] + shift[c].
template <class T>
void channel_affine(const channel_layout& l, const T* x, const T* scale, const T* shift, T* y) {
  channel_map(l, y, x, x, scale, shift, shift, [](auto v, auto, auto s, auto t, auto) { return simd::fma(v, s, t); });
}

// dgamma[c] = sum dy * (x - mean[c]) * invstd[c], dbeta[c] = sum dy.
template <class T>
void batch_norm_param_grads(const channel_layout& l, const T* dy, const T* x, const T* mean, const T* invstd,
                            T* dgamma, T* dbeta) {
  channel_sum(l, dy, dy, mean, dbeta, [](auto g, auto, auto) { return g; });
  channel_sum(l, dy, x, mean, dgamma, [](auto g, auto v, auto m) { return g * (v - m); });
  for (std::int64_t c = 0; c < l.channels; ++c) dgamma[c] *= invstd[c];
}

}  // namespace detail

// y = (x - running_mean) / sqrt(running_var + eps) * gamma + beta.
template <class T>
void batch_norm_forward_inference(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                  const Tensor<T>& running_mean, const Tensor<T>& running_var, T eps, Tensor<T>& y) {
  const char* k = "batch_norm_forward_inference";
  const auto l = detail::batch_norm_layout(x, gamma, beta, k);
  detail::require_vector(running_mean, l.channels, k, "running_mean");
  detail::require_vector(running_var, l.channels, k, "running_var");
  detail::check_eps(eps, k);
  Tensor<T> scale = Tensor<T>::uninitialized(shape{l.channels}), shift = Tensor<T>::uninitialized(shape{l.channels});
  detail::inverse_std(running_var.data(), eps, l.channels, scale.data());
  for (std::int64_t c = 0; c < l.channels; ++c) {
    scale.data()[c] *= gamma.data()[c];
    shift.data()[c] = beta.data()[c] - running_mean.data()[c] * scale.data()[c];
  }
  y.resize(x.shape());
  detail::channel_affine(l, x.data(), scale.data(), shift.data(), y.data());
}

// Normalises with the batch statistics (biased variance) and saves mean and 1/std for backward.
// running_mean / running_var (may both be empty: track_running_stats=False) are updated in place as
// running = (1 - momentum) * running + momentum * batch, with the unbiased variance, as PyTorch does.
template <class T>
void batch_norm_forward_training(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, T eps, T momentum,
                                 Tensor<T>& y, Tensor<T>& saved_mean, Tensor<T>& saved_invstd,
                                 Tensor<T>& running_mean, Tensor<T>& running_var) {
  const char* k = "batch_norm_forward_training";
  const auto l = detail::batch_norm_layout(x, gamma, beta, k);
  detail::check_eps(eps, k);
  const bool track = !(running_mean.empty() && running_var.empty());
  if (track) {
    detail::require_vector(running_mean, l.channels, k, "running_mean");
    detail::require_vector(running_var, l.channels, k, "running_var");
  }
  const std::int64_t count = l.outer * l.inner;
  FACENET_CHECK(count > 1, argument_error,
                std::string(k) + ": expected more than 1 value per channel when training, got input " +
                    x.shape().str());
  const std::int64_t C = l.channels;
  saved_mean.resize(shape{C});
  saved_invstd.resize(shape{C});
  T* mean = saved_mean.data();
  T* invstd = saved_invstd.data();
  detail::channel_sum(l, x.data(), x.data(), x.data(), mean, [](auto v, auto, auto) { return v; });
  for (std::int64_t c = 0; c < C; ++c) mean[c] /= static_cast<T>(count);
  Tensor<T> var = Tensor<T>::uninitialized(shape{C});
  detail::channel_sum(l, x.data(), x.data(), mean, var.data(), [](auto v, auto, auto m) { return (v - m) * (v - m); });
  for (std::int64_t c = 0; c < C; ++c) var.data()[c] /= static_cast<T>(count);
  detail::inverse_std(var.data(), eps, C, invstd);

  Tensor<T> scale = Tensor<T>::uninitialized(shape{C});
  for (std::int64_t c = 0; c < C; ++c) scale.data()[c] = gamma.data()[c] * invstd[c];
  y.resize(x.shape());
  // (x - mean) * scale + beta, not x * scale + (beta - mean * scale): the latter cancels in float.
  detail::channel_map(l, y.data(), x.data(), x.data(), mean, scale.data(), beta.data(),
                      [](auto v, auto, auto m, auto s, auto b) { return simd::fma(v - m, s, b); });

  if (!track) return;
  const T unbias = static_cast<T>(count) / static_cast<T>(count - 1);
  for (std::int64_t c = 0; c < C; ++c) {
    running_mean.data()[c] = (T(1) - momentum) * running_mean.data()[c] + momentum * mean[c];
    running_var.data()[c] = (T(1) - momentum) * running_var.data()[c] + momentum * var.data()[c] * unbias;
  }
}

// Training-mode gradient (the batch statistics depend on x):
// dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma), M = N*H*W.
template <class T>
void batch_norm_backward(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& saved_mean,
                         const Tensor<T>& saved_invstd, Tensor<T>& dx, Tensor<T>& dgamma, Tensor<T>& dbeta) {
  const char* k = "batch_norm_backward";
  const auto l = detail::batch_norm_layout(x, gamma, gamma, k);
  detail::require_contiguous(dy, k, "dy");
  detail::require_same_shape(x, dy, k, "x", "dy");
  detail::require_vector(saved_mean, l.channels, k, "saved_mean");
  detail::require_vector(saved_invstd, l.channels, k, "saved_invstd");
  const std::int64_t C = l.channels;
  dgamma.resize(shape{C});
  dbeta.resize(shape{C});
  const T* mean = saved_mean.data();
  const T* invstd = saved_invstd.data();
  detail::batch_norm_param_grads(l, dy.data(), x.data(), mean, invstd, dgamma.data(), dbeta.data());

  // dx = a * dy + b * (x - mean) + c per channel. Centring x before scaling matters in float: the
  // folded form b * x + (c - b * mean) cancels catastrophically when |mean| >> std.
  Tensor<T> a = Tensor<T>::uninitialized(shape{C}), b = Tensor<T>::uninitialized(shape{C}),
            c0 = Tensor<T>::uninitialized(shape{C});
  const T inv_count = T(1) / static_cast<T>(l.outer * l.inner);
  for (std::int64_t c = 0; c < C; ++c) {
    const T ac = gamma.data()[c] * invstd[c];
    a.data()[c] = ac;
    b.data()[c] = -ac * invstd[c] * dgamma.data()[c] * inv_count;
    c0.data()[c] = -ac * dbeta.data()[c] * inv_count;
  }
  dx.resize(x.shape());
  // Two passes keep channel_map's five-operand shape: dx = b * (x - mean) + c, then dx += a * dy.
  detail::channel_map(l, dx.data(), x.data(), x.data(), b.data(), mean, c0.data(),
                      [](auto v, auto, auto bc, auto m, auto cc) { return simd::fma(bc, v - m, cc); });
  detail::channel_map(l, dx.data(), dy.data(), dx.data(), a.data(), a.data(), a.data(),
                      [](auto g, auto d, auto ac, auto, auto) { return simd::fma(ac, g, d); });
}

// Eval-mode gradient (statistics frozen): dx = dy * gamma / sqrt(running_var + eps).
template <class T>
void batch_norm_backward_inference(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& gamma,
                                   const Tensor<T>& running_mean, const Tensor<T>& running_var, T eps, Tensor<T>& dx,
                                   Tensor<T>& dgamma, Tensor<T>& dbeta) {
  const char* k = "batch_norm_backward_inference";
  const auto l = detail::batch_norm_layout(x, gamma, gamma, k);
  detail::require_contiguous(dy, k, "dy");
  detail::require_same_shape(x, dy, k, "x", "dy");
  detail::require_vector(running_mean, l.channels, k, "running_mean");
  detail::require_vector(running_var, l.channels, k, "running_var");
  detail::check_eps(eps, k);
  const std::int64_t C = l.channels;
  Tensor<T> invstd = Tensor<T>::uninitialized(shape{C}), scale = Tensor<T>::uninitialized(shape{C});
  detail::inverse_std(running_var.data(), eps, C, invstd.data());
  for (std::int64_t c = 0; c < C; ++c) scale.data()[c] = gamma.data()[c] * invstd.data()[c];
  dgamma.resize(shape{C});
  dbeta.resize(shape{C});
  detail::batch_norm_param_grads(l, dy.data(), x.data(), running_mean.data(), invstd.data(), dgamma.data(),
                                 dbeta.data());
  dx.resize(x.shape());
  detail::channel_map(l, dx.data(), dy.data(), dy.data(), scale.data(), scale.data(), scale.data(),
                      [](auto g, auto, auto s, auto, auto) { return g * s; });
}

// Folds inference BN into the preceding convolution (or linear layer): for conv weights [O, ...]
// and optional bias [O], BN(conv(x)) == conv'(x) with w'[o] = w[o] * a[o],
// b'[o] = (b[o] - mean[o]) * a[o] + beta[o], a = gamma / sqrt(var + eps). out_bias is always set.
template <class T>
void batch_norm_fold(const Tensor<T>& conv_w, const Tensor<T>& conv_bias, const Tensor<T>& gamma,
                     const Tensor<T>& beta, const Tensor<T>& mean, const Tensor<T>& var, T eps, Tensor<T>& out_w,
                     Tensor<T>& out_bias) {
  const char* k = "batch_norm_fold";
  FACENET_CHECK(conv_w.rank() >= 2, shape_error,
                std::string(k) + ": conv_w must be [O, I, ...], got " + conv_w.shape().str());
  detail::require_contiguous(conv_w, k, "conv_w");
  const std::int64_t O = conv_w.size(0), per_out = conv_w.numel() / std::max<std::int64_t>(O, 1);
  if (!conv_bias.empty()) detail::require_vector(conv_bias, O, k, "conv_bias");
  detail::require_vector(gamma, O, k, "gamma");
  detail::require_vector(beta, O, k, "beta");
  detail::require_vector(mean, O, k, "mean");
  detail::require_vector(var, O, k, "var");
  detail::check_eps(eps, k);
  Tensor<T> a = Tensor<T>::uninitialized(shape{O});
  detail::inverse_std(var.data(), eps, O, a.data());
  out_bias.resize(shape{O});
  for (std::int64_t o = 0; o < O; ++o) {
    a.data()[o] *= gamma.data()[o];
    const T b = conv_bias.empty() ? T(0) : conv_bias.data()[o];
    out_bias.data()[o] = (b - mean.data()[o]) * a.data()[o] + beta.data()[o];
  }
  out_w.resize(conv_w.shape());
  for (std::int64_t o = 0; o < O; ++o) {
    const simd::batch<T> s(a.data()[o]);
    detail::simd_map(out_w.data() + o * per_out, conv_w.data() + o * per_out, per_out, [&](auto v) { return v * s; });
  }
}

}  // namespace facenet::kernels
