// Scalar twin of kernels/conv2d.hpp: the test oracle. Direct loops straight from the definition
// y[n,o,oy,ox] = b[o] + sum_{c,ky,kx} w[o,c,ky,kx] * x[n,c,oy*sh-pt+ky,ox*sw-pl+kx] (zero outside).
#pragma once

#include <cstdint>

#include "facenet/core/tensor.hpp"
#include "facenet/kernels/conv2d.hpp"  // conv2d_params and the shape rule are shared, not the algorithm

namespace facenet::kernels::reference {

namespace detail {
// Calls f(n, o, oy, ox, c, ky, kx, iy, ix) for every in-bounds multiply of the convolution.
template <class F>
void for_each_tap(const shape& xs, const shape& ws, const shape& ys, const conv2d_params& p, F&& f) {
  for (std::int64_t n = 0; n < ys[0]; ++n)
    for (std::int64_t o = 0; o < ys[1]; ++o)
      for (std::int64_t oy = 0; oy < ys[2]; ++oy)
        for (std::int64_t ox = 0; ox < ys[3]; ++ox)
          for (std::int64_t c = 0; c < xs[1]; ++c)
            for (std::int64_t ky = 0; ky < ws[2]; ++ky)
              for (std::int64_t kx = 0; kx < ws[3]; ++kx) {
                const std::int64_t iy = oy * p.stride_h - p.pad_top + ky, ix = ox * p.stride_w - p.pad_left + kx;
                if (iy >= 0 && iy < xs[2] && ix >= 0 && ix < xs[3]) f(n, o, oy, ox, c, ky, kx, iy, ix);
              }
}
}  // namespace detail

template <class T>
void conv2d_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, Tensor<T>& y, const conv2d_params& p) {
  y = Tensor<T>(conv2d_output_shape(x.shape(), w.shape(), p));
  for (std::int64_t n = 0; n < y.n(); ++n)
    for (std::int64_t o = 0; o < y.c(); ++o)
      for (std::int64_t oy = 0; oy < y.h(); ++oy)
        for (std::int64_t ox = 0; ox < y.w(); ++ox) y(n, o, oy, ox) = bias.empty() ? T(0) : bias.data()[o];
  detail::for_each_tap(x.shape(), w.shape(), y.shape(), p,
                       [&](auto n, auto o, auto oy, auto ox, auto c, auto ky, auto kx, auto iy, auto ix) {
                         y(n, o, oy, ox) += w(o, c, ky, kx) * x(n, c, iy, ix);
                       });
}

template <class T>
void conv2d_backward_data(const Tensor<T>& dy, const Tensor<T>& w, const shape& x_shape, Tensor<T>& dx,
                          const conv2d_params& p) {
  dx = Tensor<T>(x_shape);
  detail::for_each_tap(x_shape, w.shape(), dy.shape(), p,
                       [&](auto n, auto o, auto oy, auto ox, auto c, auto ky, auto kx, auto iy, auto ix) {
                         dx(n, c, iy, ix) += w(o, c, ky, kx) * dy(n, o, oy, ox);
                       });
}

// dw must arrive shaped [o, c, kh, kw] (as for the fast kernel).
template <class T>
void conv2d_backward_weight(const Tensor<T>& x, const Tensor<T>& dy, Tensor<T>& dw, Tensor<T>* db, const conv2d_params& p) {
  dw = Tensor<T>(dw.shape());
  detail::for_each_tap(x.shape(), dw.shape(), dy.shape(), p,
                       [&](auto n, auto o, auto oy, auto ox, auto c, auto ky, auto kx, auto iy, auto ix) {
                         dw(o, c, ky, kx) += x(n, c, iy, ix) * dy(n, o, oy, ox);
                       });
  if (!db) return;
  *db = Tensor<T>({dy.c()});
  for (std::int64_t n = 0; n < dy.n(); ++n)
    for (std::int64_t o = 0; o < dy.c(); ++o)
      for (std::int64_t oy = 0; oy < dy.h(); ++oy)
        for (std::int64_t ox = 0; ox < dy.w(); ++ox) db->data()[o] += dy(n, o, oy, ox);
}

}  // namespace facenet::kernels::reference
