// Interleaved (HWC) images: what the decoders produce and the detector / aligner consume.
// image = 8-bit RGB as decoded; image_f = float, the working type of resizes and warps.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::data {

template <class T>
struct basic_image {
  int width = 0;
  int height = 0;
  int channels = 0;
  std::vector<T> pixels;  // row-major, channels interleaved

  basic_image() = default;
  basic_image(int w, int h, int c, T value = T(0)) : width(w), height(h), channels(c) {
    FACENET_CHECK(w >= 0 && h >= 0 && c > 0, argument_error,
                  "image: invalid size " + std::to_string(w) + "x" + std::to_string(h) + "x" + std::to_string(c));
    pixels.assign(static_cast<std::size_t>(w) * h * c, value);
  }

  bool empty() const noexcept { return width == 0 || height == 0; }
  std::size_t index(int y, int x, int c = 0) const noexcept {
    return (static_cast<std::size_t>(y) * width + x) * channels + c;
  }
  T& at(int y, int x, int c = 0) noexcept { return pixels[index(y, x, c)]; }
  const T& at(int y, int x, int c = 0) const noexcept { return pixels[index(y, x, c)]; }
  T* row(int y) noexcept { return pixels.data() + index(y, 0); }
  const T* row(int y) const noexcept { return pixels.data() + index(y, 0); }
};

using image = basic_image<std::uint8_t>;
using image_f = basic_image<float>;

// Integer pixel rectangle [x0, x1) x [y0, y1).
struct rect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  int width() const noexcept { return x1 - x0; }
  int height() const noexcept { return y1 - y0; }
};

template <class T>
rect full_rect(const basic_image<T>& img) {
  return {0, 0, img.width, img.height};
}

template <class T>
void check_rect(const basic_image<T>& img, const rect& r, const char* what) {
  FACENET_CHECK(r.x0 >= 0 && r.y0 >= 0 && r.x1 <= img.width && r.y1 <= img.height && r.x0 < r.x1 && r.y0 < r.y1,
                argument_error,
                std::string(what) + ": region [" + std::to_string(r.x0) + ", " + std::to_string(r.y0) + ", " +
                    std::to_string(r.x1) + ", " + std::to_string(r.y1) + ") is empty or outside the " +
                    std::to_string(img.width) + "x" + std::to_string(img.height) + " image");
}

template <class T>
basic_image<T> crop(const basic_image<T>& img, const rect& r) {
  check_rect(img, r, "crop");
  basic_image<T> out(r.width(), r.height(), img.channels);
  const std::size_t row_len = static_cast<std::size_t>(r.width()) * img.channels;
  for (int y = 0; y < r.height(); ++y)
    std::copy_n(img.row(r.y0 + y) + static_cast<std::size_t>(r.x0) * img.channels, row_len, out.row(y));
  return out;
}

// The image mirrored left to right (flipped-image evaluation of aligned faces).
template <class T>
basic_image<T> flip_horizontal(const basic_image<T>& img) {
  basic_image<T> out = img;
  const int c = img.channels;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      std::copy_n(img.row(y) + static_cast<std::size_t>(img.width - 1 - x) * c, c, out.row(y) + static_cast<std::size_t>(x) * c);
  return out;
}

inline image_f to_float(const image& img) {
  image_f out;
  out.width = img.width;
  out.height = img.height;
  out.channels = img.channels;
  out.pixels.assign(img.pixels.begin(), img.pixels.end());
  return out;
}

// Float -> 8 bit with clamping; `round` = nearest (PIL), otherwise truncation (torch's .byte()).
inline image to_uint8(const image_f& img, bool round = true) {
  image out(img.width, img.height, img.channels);
  for (std::size_t i = 0; i < img.pixels.size(); ++i) {
    float v = round ? std::nearbyint(img.pixels[i]) : std::trunc(img.pixels[i]);
    out.pixels[i] = static_cast<std::uint8_t>(std::clamp(v, 0.0f, 255.0f));
  }
  return out;
}

// Writes `img` (any pixel type) into batch slot `n` of an NCHW float tensor as (v - mean) * scale.
// The tensor must already have shape [N, channels, height, width].
template <class T>
void to_tensor(const basic_image<T>& img, Tensor<float>& dst, std::int64_t n, float mean = 0.0f, float scale = 1.0f) {
  FACENET_CHECK(dst.rank() == 4 && n >= 0 && n < dst.n() && dst.c() == img.channels && dst.h() == img.height &&
                    dst.w() == img.width,
                shape_error,
                "to_tensor: image " + std::to_string(img.width) + "x" + std::to_string(img.height) + "x" +
                    std::to_string(img.channels) + " does not fit slot " + std::to_string(n) + " of " + dst.shape().str());
  dst.require_contiguous("to_tensor");
  const std::int64_t plane = static_cast<std::int64_t>(img.width) * img.height;
  float* out = dst.data() + n * plane * img.channels;
  for (std::int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < img.channels; ++c)
      out[c * plane + p] = (static_cast<float>(img.pixels[p * img.channels + c]) - mean) * scale;
}

template <class T>
Tensor<float> to_tensor(const basic_image<T>& img, float mean = 0.0f, float scale = 1.0f) {
  Tensor<float> t = Tensor<float>::uninitialized({1, img.channels, img.height, img.width});
  to_tensor(img, t, 0, mean, scale);
  return t;
}

// Inverse of to_tensor for batch slot `n`: v / scale + mean, rounded and clamped to 8 bit.
inline image from_tensor(const Tensor<float>& src, std::int64_t n, float mean = 0.0f, float scale = 1.0f) {
  check_rank(src, 4, "from_tensor");
  FACENET_CHECK(n >= 0 && n < src.n(), shape_error, "from_tensor: slot " + std::to_string(n) + " of " + src.shape().str());
  src.require_contiguous("from_tensor");
  image out(static_cast<int>(src.w()), static_cast<int>(src.h()), static_cast<int>(src.c()));
  const std::int64_t plane = src.h() * src.w();
  const float* in = src.data() + n * plane * src.c();
  for (std::int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < out.channels; ++c) {
      const float v = std::nearbyint(in[c * plane + p] / scale + mean);
      out.pixels[p * out.channels + c] = static_cast<std::uint8_t>(std::clamp(v, 0.0f, 255.0f));
    }
  return out;
}

// ---- drawing (for --draw outputs and debugging) ---------------------------------------------------

using color = std::array<std::uint8_t, 3>;

inline void fill_rect(image& img, int x0, int y0, int x1, int y1, const color& c) {
  x0 = std::max(x0, 0), y0 = std::max(y0, 0);
  x1 = std::min(x1, img.width), y1 = std::min(y1, img.height);
  for (int y = y0; y < y1; ++y)
    for (int x = x0; x < x1; ++x)
      for (int k = 0; k < std::min(img.channels, 3); ++k) img.at(y, x, k) = c[k];
}

// Outline of the box (x1, y1, x2, y2) in image coordinates, `thickness` pixels drawn inwards.
inline void draw_box(image& img, float bx1, float by1, float bx2, float by2, const color& c, int thickness = 2) {
  const int x0 = static_cast<int>(std::floor(bx1)), y0 = static_cast<int>(std::floor(by1));
  const int x1 = static_cast<int>(std::ceil(bx2)), y1 = static_cast<int>(std::ceil(by2));
  fill_rect(img, x0, y0, x1 + 1, y0 + thickness, c);
  fill_rect(img, x0, y1 + 1 - thickness, x1 + 1, y1 + 1, c);
  fill_rect(img, x0, y0, x0 + thickness, y1 + 1, c);
  fill_rect(img, x1 + 1 - thickness, y0, x1 + 1, y1 + 1, c);
}

// Filled square of side 2*radius+1 centred on (x, y): a landmark marker.
inline void draw_point(image& img, float x, float y, const color& c, int radius = 2) {
  const int cx = static_cast<int>(std::lround(x)), cy = static_cast<int>(std::lround(y));
  fill_rect(img, cx - radius, cy - radius, cx + radius + 1, cy + radius + 1, c);
}

}  // namespace facenet::data
