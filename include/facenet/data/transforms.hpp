// Resampling that reproduces the reference implementations bit for bit where it matters:
//  - resize_area: torch.nn.functional.interpolate(mode="area") = adaptive average pooling, which
//    facenet-pytorch's imresample uses for the MTCNN pyramid and the 24x24 / 48x48 crops;
//  - resize_bilinear_pil: PIL's Image.resize(..., BILINEAR) (antialiased triangle filter, 22-bit
//    fixed point, horizontal pass then vertical), which facenet-pytorch's extract_face uses on PIL
//    images for the 160x160 face crops;
//  - warp_affine: bilinear sampling through a 2x3 matrix, for the similarity-transform alignment.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/data/image.hpp"

namespace facenet::data {

namespace detail {
// torch's adaptive pooling window for output index a of c over an input of length b: [floor(a*b/c), ceil((a+1)*b/c)).
inline int adaptive_start(int a, int b, int c) { return static_cast<int>(static_cast<std::int64_t>(a) * b / c); }
inline int adaptive_end(int a, int b, int c) {
  return static_cast<int>((static_cast<std::int64_t>(a + 1) * b + c - 1) / c);
}
}  // namespace detail

// Area resize of region `r` of `src` to out_w x out_h (float result, same channel count). Each output
// pixel is the mean of its adaptive-pooling window, summed in float and divided by kh then kw as
// ATen does, so integer-valued inputs give exactly torch's numbers.
template <class T>
void resize_area(const basic_image<T>& src, const rect& r, int out_w, int out_h, image_f& out) {
  check_rect(src, r, "resize_area");
  FACENET_CHECK(out_w > 0 && out_h > 0, argument_error,
                "resize_area: output size " + std::to_string(out_w) + "x" + std::to_string(out_h) + " must be positive");
  const int c = src.channels, in_w = r.width(), in_h = r.height();
  if (out.width != out_w || out.height != out_h || out.channels != c) out = image_f(out_w, out_h, c);
  std::vector<int> x0(out_w), x1(out_w);
  for (int ox = 0; ox < out_w; ++ox) {
    x0[ox] = r.x0 + detail::adaptive_start(ox, in_w, out_w);
    x1[ox] = r.x0 + detail::adaptive_end(ox, in_w, out_w);
  }
  // Threads only pay off with enough reads per thread; MTCNN's 24x24 crops stay on one thread.
  const std::int64_t reads_per_row = static_cast<std::int64_t>(in_w + out_w) * (in_h / out_h + 1) * c;
  const std::int64_t min_rows = std::max<std::int64_t>(1, (std::int64_t(1) << 17) / std::max<std::int64_t>(reads_per_row, 1));
  parallel::parallel_for(0, out_h, [&](std::int64_t oy) {
    const int y0 = r.y0 + detail::adaptive_start(static_cast<int>(oy), in_h, out_h);
    const int y1 = r.y0 + detail::adaptive_end(static_cast<int>(oy), in_h, out_h);
    float* o = out.row(static_cast<int>(oy));
    for (int ox = 0; ox < out_w; ++ox)
      for (int k = 0; k < c; ++k) {
        float sum = 0.0f;
        for (int y = y0; y < y1; ++y) {
          const T* p = src.row(y) + static_cast<std::size_t>(x0[ox]) * c + k;
          for (int x = x0[ox]; x < x1[ox]; ++x, p += c) sum += static_cast<float>(*p);
        }
        o[static_cast<std::size_t>(ox) * c + k] =
            sum / static_cast<float>(y1 - y0) / static_cast<float>(x1[ox] - x0[ox]);
      }
  }, min_rows);
}

template <class T>
image_f resize_area(const basic_image<T>& src, int out_w, int out_h) {
  image_f out;
  resize_area(src, full_rect(src), out_w, out_h, out);
  return out;
}

namespace detail {

// PIL's precompute_coeffs for the bilinear (triangle, support 1) filter along one axis, then its
// normalize_coeffs_8bpc: weights as 22-bit fixed point. Returns the kernel size; bounds holds
// (first index, count) per output index.
inline int pil_bilinear_coeffs(int in_size, int out_size, std::vector<int>& bounds, std::vector<std::int32_t>& kk) {
  constexpr int precision_bits = 32 - 8 - 2;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  bounds.assign(static_cast<std::size_t>(out_size) * 2, 0);
  kk.assign(static_cast<std::size_t>(out_size) * ksize, 0);
  std::vector<double> w(ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size) - xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double t = std::abs((x + xmin - center + 0.5) * ss);
      w[x] = t < 1.0 ? 1.0 - t : 0.0;
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      kk[static_cast<std::size_t>(xx) * ksize + x] =
          static_cast<std::int32_t>(v < 0 ? -0.5 + v * (1 << precision_bits) : 0.5 + v * (1 << precision_bits));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return ksize;
}

inline std::uint8_t pil_clip8(std::int64_t v) {
  constexpr int precision_bits = 32 - 8 - 2;
  if (v >= (std::int64_t(1) << precision_bits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<std::uint8_t>(v >> precision_bits);
}

}  // namespace detail

// PIL's img.crop(r).resize((out_w, out_h), Image.BILINEAR) on an 8-bit image: horizontal pass over
// the rows the vertical pass needs (rounded to 8 bit), then the vertical pass.
inline image resize_bilinear_pil(const image& src, const rect& r, int out_w, int out_h) {
  check_rect(src, r, "resize_bilinear_pil");
  FACENET_CHECK(out_w > 0 && out_h > 0, argument_error,
                "resize_bilinear_pil: output size " + std::to_string(out_w) + "x" + std::to_string(out_h) + " must be positive");
  constexpr int precision_bits = 32 - 8 - 2;
  const int c = src.channels, in_w = r.width(), in_h = r.height();
  std::vector<int> bh, bv;
  std::vector<std::int32_t> kh, kv;
  const int ksh = detail::pil_bilinear_coeffs(in_w, out_w, bh, kh);
  const int ksv = detail::pil_bilinear_coeffs(in_h, out_h, bv, kv);
  const bool need_h = out_w != in_w, need_v = out_h != in_h;
  // Horizontal pass over the rows [first, last) the vertical pass reads.
  const int first = need_v ? bv[0] : 0;
  const int last = need_v ? bv[(out_h - 1) * 2] + bv[(out_h - 1) * 2 + 1] : in_h;
  image tmp(need_h ? out_w : in_w, last - first, c);
  for (int y = 0; y < tmp.height; ++y) {
    const std::uint8_t* in = src.row(r.y0 + first + y) + static_cast<std::size_t>(r.x0) * c;
    std::uint8_t* o = tmp.row(y);
    if (!need_h) {
      std::copy_n(in, static_cast<std::size_t>(in_w) * c, o);
      continue;
    }
    for (int xx = 0; xx < out_w; ++xx) {
      const int xmin = bh[xx * 2], xmax = bh[xx * 2 + 1];
      const std::int32_t* k = &kh[static_cast<std::size_t>(xx) * ksh];
      for (int ch = 0; ch < c; ++ch) {
        std::int64_t ss = std::int64_t(1) << (precision_bits - 1);
        for (int x = 0; x < xmax; ++x) ss += static_cast<std::int64_t>(in[(x + xmin) * c + ch]) * k[x];
        o[xx * c + ch] = detail::pil_clip8(ss);
      }
    }
  }
  if (!need_v) return tmp;
  image out(tmp.width, out_h, c);
  for (int yy = 0; yy < out_h; ++yy) {
    const int ymin = bv[yy * 2] - first, ymax = bv[yy * 2 + 1];
    const std::int32_t* k = &kv[static_cast<std::size_t>(yy) * ksv];
    std::uint8_t* o = out.row(yy);
    for (int i = 0; i < tmp.width * c; ++i) {
      std::int64_t ss = std::int64_t(1) << (precision_bits - 1);
      for (int y = 0; y < ymax; ++y) ss += static_cast<std::int64_t>(tmp.row(y + ymin)[i]) * k[y];
      o[i] = detail::pil_clip8(ss);
    }
  }
  return out;
}

// 2x3 affine map in pixel-centre coordinates: (x, y) -> (m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5]).
using affine2d = std::array<double, 6>;

inline affine2d invert(const affine2d& m) {
  const double det = m[0] * m[4] - m[1] * m[3];
  FACENET_CHECK(std::abs(det) > 1e-12, numeric_error, "invert: affine map is singular (determinant " + std::to_string(det) + ")");
  const double a = m[4] / det, b = -m[1] / det, d = -m[3] / det, e = m[0] / det;
  return {a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])};
}

// Bilinear sample of channel k at real position (x, y); pixels outside the image read as `border`.
template <class T>
float sample_bilinear(const basic_image<T>& img, double x, double y, int k, float border = 0.0f) {
  const double fx = std::floor(x), fy = std::floor(y);
  const int x0 = static_cast<int>(fx), y0 = static_cast<int>(fy);
  const double ax = x - fx, ay = y - fy;
  auto px = [&](int yy, int xx) -> double {
    if (xx < 0 || yy < 0 || xx >= img.width || yy >= img.height) return border;
    return static_cast<double>(img.at(yy, xx, k));
  };
  const double top = px(y0, x0) * (1 - ax) + px(y0, x0 + 1) * ax;
  const double bottom = px(y0 + 1, x0) * (1 - ax) + px(y0 + 1, x0 + 1) * ax;
  return static_cast<float>(top * (1 - ay) + bottom * ay);
}

// Output pixel (x, y) = bilinear sample of `src` at dst_to_src(x, y) (the inverse map, as
// cv2.warpAffine with WARP_INVERSE_MAP); outside the source reads `border`.
template <class T>
basic_image<T> warp_affine(const basic_image<T>& src, const affine2d& dst_to_src, int out_w, int out_h, float border = 0.0f) {
  FACENET_CHECK(!src.empty(), argument_error, "warp_affine: empty source image");
  FACENET_CHECK(out_w > 0 && out_h > 0, argument_error,
                "warp_affine: output size " + std::to_string(out_w) + "x" + std::to_string(out_h) + " must be positive");
  basic_image<T> out(out_w, out_h, src.channels);
  const affine2d& m = dst_to_src;
  for (int y = 0; y < out_h; ++y)
    for (int x = 0; x < out_w; ++x) {
      const double sx = m[0] * x + m[1] * y + m[2], sy = m[3] * x + m[4] * y + m[5];
      for (int k = 0; k < src.channels; ++k) {
        const float v = sample_bilinear(src, sx, sy, k, border);
        if constexpr (std::is_integral<T>::value)
          out.at(y, x, k) = static_cast<T>(std::clamp(std::nearbyint(v), 0.0f, 255.0f));
        else
          out.at(y, x, k) = static_cast<T>(v);
      }
    }
  return out;
}

}  // namespace facenet::data
