// Zero padding of NCHW planes (asymmetric top/bottom/left/right, e.g. TF "SAME" or OpenFace's
// SpatialZeroPadding) and its adjoint, cropping. The plane helpers are shared with depth concat.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

namespace detail {

// Writes the h x w plane `src` into the H x W plane `dst` at (top, left) and zeroes the rest.
template <class T>
void place_plane(const T* src, std::int64_t h, std::int64_t w, T* dst, std::int64_t H, std::int64_t W,
                 std::int64_t top, std::int64_t left) {
  std::fill(dst, dst + top * W, T(0));
  for (std::int64_t r = 0; r < h; ++r) {
    T* row = dst + (top + r) * W;
    std::fill(row, row + left, T(0));
    std::memcpy(row + left, src + r * w, static_cast<std::size_t>(w) * sizeof(T));
    std::fill(row + left + w, row + W, T(0));
  }
  std::fill(dst + (top + h) * W, dst + H * W, T(0));
}

// Reads the h x w window at (top, left) of the H x W plane `src` into `dst` (the adjoint of place_plane).
template <class T>
void crop_plane(const T* src, std::int64_t W, std::int64_t top, std::int64_t left, T* dst, std::int64_t h,
                std::int64_t w) {
  for (std::int64_t r = 0; r < h; ++r)
    std::memcpy(dst + r * w, src + (top + r) * W + left, static_cast<std::size_t>(w) * sizeof(T));
}

inline void check_pads(std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right,
                       const char* kernel) {
  FACENET_CHECK(top >= 0 && bottom >= 0 && left >= 0 && right >= 0, argument_error,
                std::string(kernel) + ": padding must be >= 0, got top " + std::to_string(top) + ", bottom " +
                    std::to_string(bottom) + ", left " + std::to_string(left) + ", right " + std::to_string(right));
}

}  // namespace detail

template <class T>
void pad2d_forward(const Tensor<T>& x, std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right,
                   Tensor<T>& y) {
  const char* k = "pad2d_forward";
  check_rank(x, 4, k);
  detail::require_contiguous(x, k, "x");
  detail::check_pads(top, bottom, left, right, k);
  const std::int64_t h = x.h(), w = x.w(), H = h + top + bottom, W = w + left + right;
  y.resize(shape{x.n(), x.c(), H, W});
  parallel::parallel_for(
      0, x.n() * x.c(),
      [&](std::int64_t p) { detail::place_plane(x.data() + p * h * w, h, w, y.data() + p * H * W, H, W, top, left); },
      detail::rows_per_task(H * W));
}

// dx = the interior of dy.
template <class T>
void pad2d_backward(const Tensor<T>& dy, std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right,
                    Tensor<T>& dx) {
  const char* k = "pad2d_backward";
  check_rank(dy, 4, k);
  detail::require_contiguous(dy, k, "dy");
  detail::check_pads(top, bottom, left, right, k);
  const std::int64_t H = dy.h(), W = dy.w(), h = H - top - bottom, w = W - left - right;
  FACENET_CHECK(h >= 0 && w >= 0, shape_error,
                std::string(k) + ": dy " + dy.shape().str() + " is smaller than the padding");
  dx.resize(shape{dy.n(), dy.c(), h, w});
  parallel::parallel_for(
      0, dy.n() * dy.c(),
      [&](std::int64_t p) { detail::crop_plane(dy.data() + p * H * W, W, top, left, dx.data() + p * h * w, h, w); },
      detail::rows_per_task(H * W));
}

}  // namespace facenet::kernels
