// Channel concatenation and its adjoint (split), plus Torch's DepthConcat (OpenFace inception
// modules): inputs with smaller H, W are centred in zeros, leading offset floor((H - h) / 2).
// Both variants run one body; equal-sized inputs just copy whole per-image blocks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"
#include "facenet/kernels/pad.hpp"

namespace facenet::kernels {

namespace detail {

// A tensor's trailing dimensions seen as one (h, w) plane: H, W for rank 4, (1, product) otherwise.
inline void plane_of(const shape& s, std::int64_t& h, std::int64_t& w) {
  if (s.rank() == 4) {
    h = s[2];
    w = s[3];
    return;
  }
  h = 1;
  w = 1;
  for (int d = 2; d < s.rank(); ++d) w *= s[d];
}

// Copies between each part(i) and the channel block it occupies in `whole`: parts -> whole when
// Gather (concat), whole -> parts otherwise (split). Tasks are (image, part) pairs; each sums the
// channel counts before its part (a handful) rather than reading a table built on the heap.
template <bool Gather, class Elem, class Part>
void concat_copy(std::int64_t count, Part&& part, Elem* whole, const shape& whole_shape) {
  const std::int64_t N = whole_shape[0], C = whole_shape[1];
  std::int64_t H, W;
  plane_of(whole_shape, H, W);
  parallel::parallel_for(0, N * count, [&](std::int64_t task) {
    const std::int64_t n = task / count, i = task % count;
    std::int64_t offset = 0;
    for (std::int64_t k = 0; k < i; ++k) offset += part(k).shape()[1];
    auto&& p = part(i);
    const std::int64_t ci = p.shape()[1];
    std::int64_t h, w;
    plane_of(p.shape(), h, w);
    auto* block = whole + (n * C + offset) * H * W;
    auto* mine = p.data() + n * p.stride(0);  // parts may be channel slices of a larger batch
    const std::size_t bytes = static_cast<std::size_t>(ci * h * w) * sizeof(*mine);
    const std::int64_t top = (H - h) / 2, left = (W - w) / 2;
    if constexpr (Gather) {
      if (h == H && w == W) {
        std::memcpy(block, mine, bytes);
        return;
      }
      for (std::int64_t c = 0; c < ci; ++c) place_plane(mine + c * h * w, h, w, block + c * H * W, H, W, top, left);
    } else {
      if (h == H && w == W) {
        std::memcpy(mine, block, bytes);
        return;
      }
      for (std::int64_t c = 0; c < ci; ++c) crop_plane(block + c * H * W, W, top, left, mine + c * h * w, h, w);
    }
  }, rows_per_task(whole_shape.numel() / std::max<std::int64_t>(1, N * count)));
}

// Output shape of concatenating shape_of(0 .. count-1) along channels; `centre` allows smaller planes
// (DepthConcat).
template <class ShapeOf>
shape concat_shape(std::size_t count, ShapeOf&& shape_of, bool centre, const char* kernel) {
  FACENET_CHECK(count > 0, argument_error, std::string(kernel) + ": no inputs");
  const shape first = shape_of(0);
  shape out = first;
  FACENET_CHECK(out.rank() >= 2 && (!centre || out.rank() == 4), shape_error,
                std::string(kernel) + ": input 0 must be " + (centre ? "[N,C,H,W]" : "[N,C,...]") + ", got " +
                    out.str());
  out[1] = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const shape s = shape_of(i);
    bool ok = s.rank() == out.rank() && s[0] == out[0];
    for (int d = 2; ok && d < s.rank(); ++d) ok = centre || s[d] == out[d];
    FACENET_CHECK(ok, shape_error,
                  std::string(kernel) + ": input " + std::to_string(i) + " has shape " + s.str() +
                      ", incompatible with input 0 " + first.str() +
                      (centre ? " (batch and rank must match)" : " (all but dimension 1 must match)"));
    out[1] += s[1];
    for (int d = 2; d < s.rank(); ++d) out[d] = std::max(out[d], s[d]);
  }
  return out;
}

// inputs[0 .. count-1] -> y. A pointer range, not a vector, so callers can pass stack or reused
// storage and a call allocates nothing once y has its size.
template <class T>
void concat_forward(const Tensor<T>* const* inputs, std::size_t count, Tensor<T>& y, bool centre, const char* kernel) {
  for (std::size_t i = 0; i < count; ++i) {
    FACENET_CHECK(inputs[i] != nullptr, argument_error, std::string(kernel) + ": input " + std::to_string(i) + " is null");
    // Each image must be one dense block; the images themselves may lie apart (channel slices).
    FACENET_CHECK(inputs[i]->rank() >= 1 && inputs[i]->slice(0, 0, std::min<std::int64_t>(1, inputs[i]->size(0))).is_contiguous(),
                  shape_error, std::string(kernel) + ": input " + std::to_string(i) + " of shape " + inputs[i]->shape().str() +
                                   " does not store each image densely");
  }
  const shape out = concat_shape(count, [&](std::size_t i) { return inputs[i]->shape(); }, centre, kernel);
  y.resize(out);
  concat_copy<true>(
      static_cast<std::int64_t>(count), [&](std::int64_t i) -> const Tensor<T>& { return *inputs[i]; }, y.data(), out);
}

template <class T>
void concat_backward(const Tensor<T>& dy, const std::vector<shape>& shapes, const std::vector<Tensor<T>*>& dxs,
                     bool centre, const char* kernel) {
  require_contiguous(dy, kernel, "dy");
  FACENET_CHECK(dxs.size() == shapes.size(), argument_error,
                std::string(kernel) + ": " + std::to_string(shapes.size()) + " input shapes but " +
                    std::to_string(dxs.size()) + " gradient outputs");
  const shape out = concat_shape(shapes.size(), [&](std::size_t i) { return shapes[i]; }, centre, kernel);
  FACENET_CHECK(dy.shape() == out, shape_error,
                std::string(kernel) + ": dy has shape " + dy.shape().str() + " but the inputs concatenate to " +
                    out.str());
  for (std::size_t i = 0; i < dxs.size(); ++i) {
    FACENET_CHECK(dxs[i] != nullptr, argument_error, std::string(kernel) + ": output " + std::to_string(i) + " is null");
    dxs[i]->resize(shapes[i]);
  }
  concat_copy<false>(
      static_cast<std::int64_t>(dxs.size()), [&](std::int64_t i) -> Tensor<T>& { return *dxs[i]; }, dy.data(), out);
}

}  // namespace detail

// y = cat(inputs, dim=1); all dimensions but 1 must match.
template <class T>
void concat_channels(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& y) {
  detail::concat_forward(inputs.data(), inputs.size(), y, false, "concat_channels");
}
template <class T>
void concat_channels(const Tensor<T>* const* inputs, std::size_t count, Tensor<T>& y) {
  detail::concat_forward(inputs, count, y, false, "concat_channels");
}

// The adjoint of concat_channels: dxs[i] gets its `channels[i]` channels of dy.
template <class T>
void split_channels(const Tensor<T>& dy, const std::vector<std::int64_t>& channels, const std::vector<Tensor<T>*>& dxs) {
  const char* k = "split_channels";
  FACENET_CHECK(dy.rank() >= 2, shape_error, std::string(k) + ": dy must be [N,C,...], got " + dy.shape().str());
  std::vector<shape> shapes;
  for (std::int64_t c : channels) {
    FACENET_CHECK(c >= 0, argument_error, std::string(k) + ": negative channel count " + std::to_string(c));
    shape s = dy.shape();
    s[1] = c;
    shapes.push_back(s);
  }
  detail::concat_backward(dy, shapes, dxs, false, k);
}

// Torch DepthConcat along channels: output H, W are the largest among the inputs; smaller inputs
// are centred with floor((H - h) / 2) leading zero rows and floor((W - w) / 2) leading zero columns.
template <class T>
void depth_concat_forward(const std::vector<const Tensor<T>*>& inputs, Tensor<T>& y) {
  detail::concat_forward(inputs.data(), inputs.size(), y, true, "depth_concat_forward");
}
template <class T>
void depth_concat_forward(const Tensor<T>* const* inputs, std::size_t count, Tensor<T>& y) {
  detail::concat_forward(inputs, count, y, true, "depth_concat_forward");
}

// dxs[i] (resized to input_shapes[i]) = the window of dy that input i occupied.
template <class T>
void depth_concat_backward(const Tensor<T>& dy, const std::vector<shape>& input_shapes,
                           const std::vector<Tensor<T>*>& dxs) {
  detail::concat_backward(dy, input_shapes, dxs, true, "depth_concat_backward");
}

}  // namespace facenet::kernels
