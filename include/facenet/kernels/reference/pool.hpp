// Scalar twins of kernels/pool.hpp: one loop nest per output, PyTorch's window formulas inline.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "facenet/core/tensor.hpp"
#include "facenet/kernels/pool.hpp"

namespace facenet::kernels::reference {

namespace detail {
// Window of output (i, j) as in PyTorch's avg_pool2d: [h0, h1) x [w0, w1) clipped to the input, and
// `padded` = its area clipped to input + padding instead.
struct window {
  std::int64_t h0, h1, w0, w1, padded;
  window(const pool2d_params& p, std::int64_t H, std::int64_t W, std::int64_t i, std::int64_t j) {
    h0 = i * p.stride_h - p.pad_top;
    w0 = j * p.stride_w - p.pad_left;
    h1 = std::min(h0 + p.kernel_h, H + p.pad_bottom);
    w1 = std::min(w0 + p.kernel_w, W + p.pad_right);
    padded = (h1 - h0) * (w1 - w0);
    h0 = std::max<std::int64_t>(h0, 0);
    w0 = std::max<std::int64_t>(w0, 0);
    h1 = std::min(h1, H);
    w1 = std::min(w1, W);
  }
  std::int64_t divisor(bool include_pad) const { return include_pad ? padded : (h1 - h0) * (w1 - w0); }
};

// Calls f(plane, i, j, window) for every output element.
template <class F>
void for_each_output(const shape& xs, const shape& ys, const pool2d_params& p, F&& f) {
  for (std::int64_t plane = 0; plane < xs[0] * xs[1]; ++plane)
    for (std::int64_t i = 0; i < ys[2]; ++i)
      for (std::int64_t j = 0; j < ys[3]; ++j) f(plane, i, j, window(p, xs[2], xs[3], i, j));
}
}  // namespace detail

template <class T>
void max_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y, Tensor<std::int32_t>& indices) {
  const shape ys = pool2d_output_shape(x.shape(), p);
  const std::int64_t H = x.h(), W = x.w();
  y.resize(ys);
  indices.resize(ys);
  detail::for_each_output(x.shape(), ys, p, [&](std::int64_t plane, std::int64_t i, std::int64_t j, const detail::window& w) {
    T m = -std::numeric_limits<T>::infinity();
    std::int64_t best = w.h0 * W + w.w0;
    for (std::int64_t r = w.h0; r < w.h1; ++r)
      for (std::int64_t c = w.w0; c < w.w1; ++c) {
        const T v = x.data()[plane * H * W + r * W + c];
        if (v > m || std::isnan(v)) {
          m = v;
          best = r * W + c;
        }
      }
    const std::int64_t o = (plane * ys[2] + i) * ys[3] + j;
    y.data()[o] = m;
    indices.data()[o] = static_cast<std::int32_t>(best);
  });
}

template <class T>
void max_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y) {
  Tensor<std::int32_t> unused;
  reference::max_pool2d_forward(x, p, y, unused);
}

template <class T>
void max_pool2d_backward(const Tensor<T>& dy, const Tensor<std::int32_t>& indices, const shape& x_shape,
                         const pool2d_params& p, Tensor<T>& dx) {
  const shape ys = pool2d_output_shape(x_shape, p);
  dx.resize(x_shape);
  dx.zero();
  const std::int64_t plane_in = x_shape[2] * x_shape[3], plane_out = ys[2] * ys[3];
  for (std::int64_t o = 0; o < dy.numel(); ++o)
    dx.data()[(o / plane_out) * plane_in + indices.data()[o]] += dy.data()[o];
}

template <class T>
void avg_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y) {
  const shape ys = pool2d_output_shape(x.shape(), p);
  const std::int64_t H = x.h(), W = x.w();
  y.resize(ys);
  detail::for_each_output(x.shape(), ys, p, [&](std::int64_t plane, std::int64_t i, std::int64_t j, const detail::window& w) {
    T s = T(0);
    for (std::int64_t r = w.h0; r < w.h1; ++r)
      for (std::int64_t c = w.w0; c < w.w1; ++c) s += x.data()[plane * H * W + r * W + c];
    y.data()[(plane * ys[2] + i) * ys[3] + j] = s / static_cast<T>(w.divisor(p.count_include_pad));
  });
}

template <class T>
void avg_pool2d_backward(const Tensor<T>& dy, const shape& x_shape, const pool2d_params& p, Tensor<T>& dx) {
  const shape ys = pool2d_output_shape(x_shape, p);
  const std::int64_t H = x_shape[2], W = x_shape[3];
  dx.resize(x_shape);
  dx.zero();
  detail::for_each_output(x_shape, ys, p, [&](std::int64_t plane, std::int64_t i, std::int64_t j, const detail::window& w) {
    const T g = dy.data()[(plane * ys[2] + i) * ys[3] + j] / static_cast<T>(w.divisor(p.count_include_pad));
    for (std::int64_t r = w.h0; r < w.h1; ++r)
      for (std::int64_t c = w.w0; c < w.w1; ++c) dx.data()[plane * H * W + r * W + c] += g;
  });
}

template <class T>
void l2_pool2d_forward(const Tensor<T>& x, const pool2d_params& p, Tensor<T>& y) {
  // Literally Square -> avg_pool2d -> MulConstant(kW*kH) -> Sqrt.
  Tensor<T> sq(x.shape());
  for (std::int64_t i = 0; i < x.numel(); ++i) sq.data()[i] = x.data()[i] * x.data()[i];
  reference::avg_pool2d_forward(sq, p, y);
  for (T& v : y) v = std::sqrt(v * static_cast<T>(p.kernel_h * p.kernel_w));
}

template <class T>
void l2_pool2d_backward(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& y, const pool2d_params& p,
                        Tensor<T>& dx) {
  // Chain rule through the same composition: Sqrt' = 0.5 / y (0 where y == 0), then avg pool', then 2x.
  Tensor<T> g(y.shape());
  for (std::int64_t i = 0; i < y.numel(); ++i)
    g.data()[i] = y.data()[i] == T(0) ? T(0)
                                      : dy.data()[i] * T(0.5) / y.data()[i] * static_cast<T>(p.kernel_h * p.kernel_w);
  reference::avg_pool2d_backward(g, x.shape(), p, dx);
  for (std::int64_t i = 0; i < x.numel(); ++i) dx.data()[i] *= T(2) * x.data()[i];
}

template <class T>
void global_avg_pool_forward(const Tensor<T>& x, Tensor<T>& y) {
  const std::int64_t hw = x.h() * x.w();
  y.resize(shape{x.n(), x.c(), 1, 1});
  for (std::int64_t plane = 0; plane < x.n() * x.c(); ++plane) {
    T s = T(0);
    for (std::int64_t i = 0; i < hw; ++i) s += x.data()[plane * hw + i];
    y.data()[plane] = s / static_cast<T>(hw);
  }
}

template <class T>
void global_avg_pool_backward(const Tensor<T>& dy, const shape& x_shape, Tensor<T>& dx) {
  const std::int64_t hw = x_shape[2] * x_shape[3];
  dx.resize(x_shape);
  for (std::int64_t i = 0; i < dx.numel(); ++i) dx.data()[i] = dy.data()[i / hw] / static_cast<T>(hw);
}

}  // namespace facenet::kernels::reference
