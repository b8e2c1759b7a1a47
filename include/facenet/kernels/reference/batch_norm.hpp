// Scalar twins of kernels/batch_norm.hpp, written from the textbook formulas.
#pragma once

#include <cmath>
#include <cstdint>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

namespace detail {
// x as [outer, C, inner]; element (n, c, i).
template <class T>
struct bn_view {
  std::int64_t outer, channels, inner;
  explicit bn_view(const Tensor<T>& x)
      : outer(x.size(0)), channels(x.size(1)), inner(x.numel() / (x.size(0) * x.size(1))) {}
  std::int64_t at(std::int64_t n, std::int64_t c, std::int64_t i) const { return (n * channels + c) * inner + i; }
};
}  // namespace detail

template <class T>
void batch_norm_forward_inference(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                  const Tensor<T>& running_mean, const Tensor<T>& running_var, T eps, Tensor<T>& y) {
  const detail::bn_view<T> v(x);
  y.resize(x.shape());
  for (std::int64_t n = 0; n < v.outer; ++n)
    for (std::int64_t c = 0; c < v.channels; ++c)
      for (std::int64_t i = 0; i < v.inner; ++i) {
        const std::int64_t j = v.at(n, c, i);
        y.data()[j] = (x.data()[j] - running_mean.data()[c]) / std::sqrt(running_var.data()[c] + eps) *
                          gamma.data()[c] +
                      beta.data()[c];
      }
}

template <class T>
void batch_norm_forward_training(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta, T eps, T momentum,
                                 Tensor<T>& y, Tensor<T>& saved_mean, Tensor<T>& saved_invstd,
                                 Tensor<T>& running_mean, Tensor<T>& running_var) {
  const detail::bn_view<T> v(x);
  const std::int64_t m = v.outer * v.inner;
  saved_mean.resize(shape{v.channels});
  saved_invstd.resize(shape{v.channels});
  y.resize(x.shape());
  for (std::int64_t c = 0; c < v.channels; ++c) {
    double sum = 0;
    for (std::int64_t n = 0; n < v.outer; ++n)
      for (std::int64_t i = 0; i < v.inner; ++i) sum += x.data()[v.at(n, c, i)];
    const double mean = sum / m;
    double sq = 0;
    for (std::int64_t n = 0; n < v.outer; ++n)
      for (std::int64_t i = 0; i < v.inner; ++i) sq += (x.data()[v.at(n, c, i)] - mean) * (x.data()[v.at(n, c, i)] - mean);
    const double var = sq / m;
    const double invstd = 1.0 / std::sqrt(var + eps);
    saved_mean.data()[c] = static_cast<T>(mean);
    saved_invstd.data()[c] = static_cast<T>(invstd);
    for (std::int64_t n = 0; n < v.outer; ++n)
      for (std::int64_t i = 0; i < v.inner; ++i) {
        const std::int64_t j = v.at(n, c, i);
        y.data()[j] = static_cast<T>((x.data()[j] - mean) * invstd * gamma.data()[c] + beta.data()[c]);
      }
    if (!running_mean.empty()) {
      running_mean.data()[c] = static_cast<T>((1 - momentum) * running_mean.data()[c] + momentum * mean);
      running_var.data()[c] = static_cast<T>((1 - momentum) * running_var.data()[c] + momentum * sq / (m - 1));
    }
  }
}

template <class T>
void batch_norm_backward(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& saved_mean,
                         const Tensor<T>& saved_invstd, Tensor<T>& dx, Tensor<T>& dgamma, Tensor<T>& dbeta) {
  const detail::bn_view<T> v(x);
  const double m = static_cast<double>(v.outer * v.inner);
  dx.resize(x.shape());
  dgamma.resize(shape{v.channels});
  dbeta.resize(shape{v.channels});
  for (std::int64_t c = 0; c < v.channels; ++c) {
    const double mean = saved_mean.data()[c], invstd = saved_invstd.data()[c];
    double sdy = 0, sdy_xhat = 0;
    for (std::int64_t n = 0; n < v.outer; ++n)
      for (std::int64_t i = 0; i < v.inner; ++i) {
        const std::int64_t j = v.at(n, c, i);
        sdy += dy.data()[j];
        sdy_xhat += dy.data()[j] * (x.data()[j] - mean) * invstd;
      }
    dbeta.data()[c] = static_cast<T>(sdy);
    dgamma.data()[c] = static_cast<T>(sdy_xhat);
    for (std::int64_t n = 0; n < v.outer; ++n)
      for (std::int64_t i = 0; i < v.inner; ++i) {
        const std::int64_t j = v.at(n, c, i);
        const double xhat = (x.data()[j] - mean) * invstd;
        dx.data()[j] = static_cast<T>(gamma.data()[c] * invstd / m * (m * dy.data()[j] - sdy - xhat * sdy_xhat));
      }
  }
}

template <class T>
void batch_norm_backward_inference(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& gamma,
                                   const Tensor<T>& running_mean, const Tensor<T>& running_var, T eps, Tensor<T>& dx,
                                   Tensor<T>& dgamma, Tensor<T>& dbeta) {
  const detail::bn_view<T> v(x);
  dx.resize(x.shape());
  dgamma.resize(shape{v.channels});
  dbeta.resize(shape{v.channels});
  for (std::int64_t c = 0; c < v.channels; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var.data()[c]) + eps);
    double sdy = 0, sdy_xhat = 0;
    for (std::int64_t n = 0; n < v.outer; ++n)
      for (std::int64_t i = 0; i < v.inner; ++i) {
        const std::int64_t j = v.at(n, c, i);
        sdy += dy.data()[j];
        sdy_xhat += dy.data()[j] * (x.data()[j] - running_mean.data()[c]) * invstd;
        dx.data()[j] = static_cast<T>(dy.data()[j] * gamma.data()[c] * invstd);
      }
    dbeta.data()[c] = static_cast<T>(sdy);
    dgamma.data()[c] = static_cast<T>(sdy_xhat);
  }
}

template <class T>
void batch_norm_fold(const Tensor<T>& conv_w, const Tensor<T>& conv_bias, const Tensor<T>& gamma,
                     const Tensor<T>& beta, const Tensor<T>& mean, const Tensor<T>& var, T eps, Tensor<T>& out_w,
                     Tensor<T>& out_bias) {
  const std::int64_t o_count = conv_w.size(0), per_out = conv_w.numel() / o_count;
  out_w.resize(conv_w.shape());
  out_bias.resize(shape{o_count});
  for (std::int64_t o = 0; o < o_count; ++o) {
    const T a = gamma.data()[o] / std::sqrt(var.data()[o] + eps);
    for (std::int64_t i = 0; i < per_out; ++i) out_w.data()[o * per_out + i] = conv_w.data()[o * per_out + i] * a;
    const T b = conv_bias.empty() ? T(0) : conv_bias.data()[o];
    out_bias.data()[o] = (b - mean.data()[o]) * a + beta.data()[o];
  }
}

}  // namespace facenet::kernels::reference
