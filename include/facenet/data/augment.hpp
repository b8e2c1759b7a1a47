// Training augmentation for face crops, as one bilinear affine warp: a centred crop_size square of
// the source (optionally jittered: random crop, shift), zoomed, rotated and mirrored, resampled to
// out_size; then a brightness factor, and optional per-channel histogram equalization first.
// The random draws are separate from the warp so the same parameters can be replayed (tests,
// flipped-image evaluation).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/data/image.hpp"
#include "facenet/data/transforms.hpp"

namespace facenet::data {

struct augment_options {
  int out_size = 96;
  int crop_size = 0;           // centred square mapped to the output; 0 = the source's shorter side
  bool random_crop = false;    // move the crop window anywhere inside the source
  bool flip = false;           // mirror with probability 1/2
  double rotation_deg = 0;     // uniform in [-r, r]
  double shift = 0;            // uniform offset in [-s, s] x crop_size, per axis
  double zoom = 0;             // scale uniform in [1 - z, 1 + z] (> 1 magnifies)
  double brightness_lo = 1, brightness_hi = 1;
  bool equalize = false;       // per-channel histogram equalization of the source
};

// The training recipe: flip, rotation +-30 deg, shift 0.1, zoom 0.2, brightness 0.8-1.2.
inline augment_options training_augmentation(int out_size = 96, int crop_size = 0) {
  augment_options o;
  o.out_size = out_size, o.crop_size = crop_size;
  o.flip = true, o.rotation_deg = 30, o.shift = 0.1, o.zoom = 0.2, o.brightness_lo = 0.8, o.brightness_hi = 1.2;
  return o;
}

// One line for logs: "crop 128, flip, rotation 10 deg, shift 0.05, zoom 0.1, brightness 0.8-1.2".
inline std::string describe(const augment_options& o) {
  char buf[192];
  std::snprintf(buf, sizeof buf, "crop %d%s, %s, rotation %g deg, shift %g, zoom %g, brightness %g-%g%s", o.crop_size,
                o.crop_size == 0 ? " (whole image)" : "", o.flip ? "flip" : "no flip", o.rotation_deg, o.shift, o.zoom,
                o.brightness_lo, o.brightness_hi, o.equalize ? ", histogram equalization" : "");
  return buf;
}

struct augment_params {
  bool flip = false;
  double angle_deg = 0, dx = 0, dy = 0, scale = 1, brightness = 1;
};

inline void check_augment_options(const augment_options& o) {
  FACENET_CHECK(o.out_size > 0 && o.crop_size >= 0, argument_error, "augment: out_size must be > 0 and crop_size >= 0");
  FACENET_CHECK(o.zoom >= 0 && o.zoom < 1 && o.shift >= 0 && o.rotation_deg >= 0, argument_error,
                "augment: zoom must lie in [0, 1), shift and rotation must be >= 0");
  FACENET_CHECK(o.brightness_lo > 0 && o.brightness_lo <= o.brightness_hi, argument_error,
                "augment: brightness range must satisfy 0 < lo <= hi");
}

// Draws one set of parameters. Offsets are in source pixels; random_crop needs the source size.
inline augment_params draw_augment(const augment_options& o, int src_w, int src_h, std::mt19937_64& rng) {
  check_augment_options(o);
  auto uniform = [&](double lo, double hi) { return lo + (hi - lo) * std::generate_canonical<double, 53>(rng); };
  const double crop = o.crop_size > 0 ? o.crop_size : std::min(src_w, src_h);
  augment_params p;
  p.flip = o.flip && (rng() & 1u);
  p.angle_deg = uniform(-o.rotation_deg, o.rotation_deg);
  p.dx = uniform(-o.shift, o.shift) * crop;
  p.dy = uniform(-o.shift, o.shift) * crop;
  if (o.random_crop) {
    p.dx += uniform(-std::max(0.0, (src_w - crop) / 2), std::max(0.0, (src_w - crop) / 2));
    p.dy += uniform(-std::max(0.0, (src_h - crop) / 2), std::max(0.0, (src_h - crop) / 2));
  }
  p.scale = uniform(1 - o.zoom, 1 + o.zoom);
  p.brightness = uniform(o.brightness_lo, o.brightness_hi);
  return p;
}

// Output pixel -> source pixel map (pixel centres at integer coordinates).
inline affine2d augment_transform(const augment_options& o, const augment_params& p, int src_w, int src_h) {
  const double crop = o.crop_size > 0 ? o.crop_size : std::min(src_w, src_h);
  const double s = crop / o.out_size / p.scale, th = p.angle_deg * M_PI / 180, c = std::cos(th), sn = std::sin(th);
  const double fu = p.flip ? -1 : 1, mid = (o.out_size - 1) / 2.0;
  const double cx = (src_w - 1) / 2.0 + p.dx, cy = (src_h - 1) / 2.0 + p.dy;
  return {s * c * fu, -s * sn, cx - s * c * fu * mid + s * sn * mid, s * sn * fu, s * c, cy - s * sn * fu * mid - s * c * mid};
}

// Classic CDF remapping per channel (values spread over 0..255).
inline image equalize_histogram(const image& src) {
  image out = src;
  const std::size_t pixels = static_cast<std::size_t>(src.width) * src.height;
  if (pixels == 0) return out;
  for (int ch = 0; ch < src.channels; ++ch) {
    std::array<std::size_t, 256> hist{};
    for (std::size_t i = 0; i < pixels; ++i) ++hist[src.pixels[i * src.channels + ch]];
    std::size_t cdf_min = 0, acc = 0;
    for (std::size_t h : hist)
      if (h) {
        cdf_min = h;
        break;
      }
    std::array<std::uint8_t, 256> lut{};
    for (int v = 0; v < 256; ++v) {
      acc += hist[v];
      lut[v] = pixels == cdf_min ? static_cast<std::uint8_t>(v)
                                 : static_cast<std::uint8_t>(std::lround(255.0 * static_cast<double>(acc - std::min(acc, cdf_min)) /
                                                                         static_cast<double>(pixels - cdf_min)));
    }
    for (std::size_t i = 0; i < pixels; ++i) out.pixels[i * src.channels + ch] = lut[src.pixels[i * src.channels + ch]];
  }
  return out;
}

inline image_f apply_augment(const image& src, const augment_options& o, const augment_params& p) {
  check_augment_options(o);
  FACENET_CHECK(!src.empty(), argument_error, "augment: empty source image");
  const affine2d m = augment_transform(o, p, src.width, src.height);
  image_f out = warp_affine(to_float(o.equalize ? equalize_histogram(src) : src), m, o.out_size, o.out_size, 0.0f);
  if (p.brightness != 1)
    for (float& v : out.pixels) v = std::min(255.0f, v * static_cast<float>(p.brightness));
  return out;
}

}  // namespace facenet::data
