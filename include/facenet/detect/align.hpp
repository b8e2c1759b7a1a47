// Turning a detection into the network's input image:
//  (a) crop + margin + resize, with facenet-pytorch's or davidsandberg's margin semantics, resized
//      with PIL's bilinear filter as both do (PIL crop().resize() / scipy imresize);
//  (b) 5-point similarity alignment: the least-squares similarity (Umeyama: rotation + uniform
//      scale + translation, no reflection) from the MTCNN landmarks to a canonical template,
//      then a bilinear warp.
//
// Template: the ArcFace / InsightFace 112x112 five-point template (eyes, nose, mouth corners),
// scaled uniformly to the output size (x S/112), so a 160x160 output is the same face framing as
// InsightFace's 112x112 crops, enlarged.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/data/image.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/detect/boxes.hpp"

namespace facenet::detect {

enum class margin_mode {
  facenet_pytorch,  // margin in pixels of the output image: grows with the box
  davidsandberg     // margin in pixels of the original image, split evenly over both sides
};

struct crop_options {
  int image_size = 160;
  float margin = 0;
  margin_mode mode = margin_mode::facenet_pytorch;
};

// The integer source window extract_face crops, clamped to the image.
inline data::rect face_crop_rect(const box& b, int img_w, int img_h, const crop_options& opt = {}) {
  FACENET_CHECK(opt.image_size > 0 && opt.margin >= 0 && opt.margin < opt.image_size, argument_error,
                "face_crop_rect: image_size " + std::to_string(opt.image_size) + " with margin " + std::to_string(opt.margin));
  float mx = opt.margin, my = opt.margin;
  if (opt.mode == margin_mode::facenet_pytorch) {
    mx = opt.margin * (b.x2 - b.x1) / (static_cast<float>(opt.image_size) - opt.margin);
    my = opt.margin * (b.y2 - b.y1) / (static_cast<float>(opt.image_size) - opt.margin);
  }
  // int() of Python / numpy int32 assignment: truncation towards zero after clamping.
  return {static_cast<int>(std::max(b.x1 - mx / 2, 0.0f)), static_cast<int>(std::max(b.y1 - my / 2, 0.0f)),
          static_cast<int>(std::min(b.x2 + mx / 2, static_cast<float>(img_w))),
          static_cast<int>(std::min(b.y2 + my / 2, static_cast<float>(img_h)))};
}

// facenet-pytorch's extract_face on a PIL image (or davidsandberg's crop + imresize): the
// margin-expanded box, cropped and resized to image_size x image_size with PIL's bilinear filter.
inline data::image extract_face(const data::image& img, const box& b, const crop_options& opt = {}) {
  const data::rect r = face_crop_rect(b, img.width, img.height, opt);
  FACENET_CHECK(r.x1 > r.x0 && r.y1 > r.y0, argument_error,
                "extract_face: box (" + std::to_string(b.x1) + ", " + std::to_string(b.y1) + ", " + std::to_string(b.x2) +
                    ", " + std::to_string(b.y2) + ") has no pixels inside the " + std::to_string(img.width) + "x" +
                    std::to_string(img.height) + " image");
  return data::resize_bilinear_pil(img, r, opt.image_size, opt.image_size);
}

// ArcFace / InsightFace's five points in unit coordinates (their 112x112 template / 112).
inline const landmarks& arcface_unit_template() {
  static const landmarks unit = [] {
    landmarks t = {{{38.2946f, 51.6963f}, {73.5318f, 51.5014f}, {56.0252f, 71.7366f}, {41.5493f, 92.3655f}, {70.7299f, 92.2041f}}};
    for (auto& p : t) p = {p[0] / 112.0f, p[1] / 112.0f};
    return t;
  }();
  return unit;
}

// A unit-coordinate template ([0, 1] across the crop) in pixels of a `size` x `size` crop.
inline landmarks scale_template(const landmarks& unit, int size) {
  FACENET_CHECK(size > 0, argument_error, "scale_template: size " + std::to_string(size));
  landmarks t = unit;
  for (auto& p : t) p = {p[0] * static_cast<float>(size), p[1] * static_cast<float>(size)};
  return t;
}

// ArcFace's 112x112 template scaled to `size` x `size`.
inline landmarks canonical_template(int size) { return scale_template(arcface_unit_template(), size); }

// Least-squares similarity mapping src onto dst: minimises sum |dst_i - (s R src_i + t)|^2 over
// rotations R, scales s > 0 and translations t. This is Umeyama's (1991) solution, which in 2D has
// a closed form: with both point sets centred, s R = [[a, -b], [b, a]] where
// a = sum(p . q) / sum |p|^2 and b = sum(p x q) / sum |p|^2 (no SVD needed, reflections impossible).
// Returns the src -> dst map.
inline data::affine2d similarity_transform(const landmarks& src, const landmarks& dst) {
  constexpr int n = 5;
  double mx = 0, my = 0, ux = 0, uy = 0;
  for (int i = 0; i < n; ++i) {
    mx += src[i][0], my += src[i][1];
    ux += dst[i][0], uy += dst[i][1];
  }
  mx /= n, my /= n, ux /= n, uy /= n;
  double dot = 0, cross = 0, norm = 0;
  for (int i = 0; i < n; ++i) {
    const double px = src[i][0] - mx, py = src[i][1] - my, qx = dst[i][0] - ux, qy = dst[i][1] - uy;
    dot += px * qx + py * qy;
    cross += px * qy - py * qx;
    norm += px * px + py * py;
  }
  FACENET_CHECK(norm > 1e-12 && std::isfinite(norm), numeric_error,
                "similarity_transform: source landmarks are degenerate (all points coincide or are not finite)");
  const double a = dot / norm, b = cross / norm;
  return {a, -b, ux - (a * mx - b * my), b, a, uy - (b * mx + a * my)};
}

// 5-point alignment: warps `img` so the landmarks land on `unit_template` (ArcFace's by default; a
// model trained on other crops carries its own, see loaded_model::align_template) at size x size.
inline data::image align_face(const data::image& img, const landmarks& points, int size = 160,
                              const landmarks& unit_template = arcface_unit_template()) {
  FACENET_CHECK(!img.empty(), argument_error, "align_face: empty image");
  for (const auto& p : points)
    FACENET_CHECK(std::isfinite(p[0]) && std::isfinite(p[1]), argument_error, "align_face: non-finite landmark");
  const data::affine2d to_template = similarity_transform(points, scale_template(unit_template, size));
  return data::warp_affine(img, data::invert(to_template), size, size);
}

}  // namespace facenet::detect
