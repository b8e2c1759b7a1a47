// Scalar twins of kernels/concat.hpp, element by element.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "facenet/core/tensor.hpp"

namespace facenet::kernels::reference {

namespace detail {
// [N, C, h, w] view of any rank >= 2 shape (h = 1 unless rank 4).
inline void dims4(const shape& s, std::int64_t& n, std::int64_t& c, std::int64_t& h, std::int64_t& w) {
  n = s[0];
  c = s[1];
  h = s.rank() == 4 ? s[2] : 1;
  w = s.numel() / std::max<std::int64_t>(1, n * c * h);
}
}  // namespace detail

template <class T>
void depth_concat_forward(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& y) {
  shape out = inputs[0]->shape();
  out[1] = 0;
  for (const Tensor<T>* x : inputs) {
    out[1] += x->size(1);
    for (int d = 2; d < out.rank(); ++d) out[d] = std::max(out[d], x->size(d));
  }
  y.resize(out);
  y.zero();
  std::int64_t N, C, H, W, c0 = 0;
  detail::dims4(out, N, C, H, W);
  for (const Tensor<T>* x : inputs) {
    std::int64_t n_, c_, h, w;
    detail::dims4(x->shape(), n_, c_, h, w);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t c = 0; c < c_; ++c)
        for (std::int64_t i = 0; i < h; ++i)
          for (std::int64_t j = 0; j < w; ++j)
            y.data()[((n * C + c0 + c) * H + i + (H - h) / 2) * W + j + (W - w) / 2] =
                x->data()[((n * c_ + c) * h + i) * w + j];
    c0 += c_;
  }
}

template <class T>
void depth_concat_backward(const Tensor<T>& dy, const std::vector<shape>& input_shapes,
                           const std::vector<Tensor<T>*>& dxs) {
  std::int64_t N, C, H, W, c0 = 0;
  detail::dims4(dy.shape(), N, C, H, W);
  for (std::size_t k = 0; k < input_shapes.size(); ++k) {
    Tensor<T>& dx = *dxs[k];
    dx.resize(input_shapes[k]);
    std::int64_t n_, c_, h, w;
    detail::dims4(input_shapes[k], n_, c_, h, w);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t c = 0; c < c_; ++c)
        for (std::int64_t i = 0; i < h; ++i)
          for (std::int64_t j = 0; j < w; ++j)
            dx.data()[((n * c_ + c) * h + i) * w + j] =
                dy.data()[((n * C + c0 + c) * H + i + (H - h) / 2) * W + j + (W - w) / 2];
    c0 += c_;
  }
}

// Plain concat and split are depth concat with equal planes.
template <class T>
void concat_channels(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& y) {
  depth_concat_forward(inputs, y);
}

template <class T>
void split_channels(const Tensor<T>& dy, const std::vector<std::int64_t>& channels, const std::vector<Tensor<T>*>& dxs) {
  std::vector<shape> shapes;
  for (std::int64_t c : channels) {
    shape s = dy.shape();
    s[1] = c;
    shapes.push_back(s);
  }
  depth_concat_backward(dy, shapes, dxs);
}

}  // namespace facenet::kernels::reference
