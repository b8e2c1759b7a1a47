// Box arithmetic of MTCNN, exactly as facenet-pytorch's detect_face does it (float32, in the same
// order of operations): P-Net proposal generation, regression (bbreg), squaring (rerec) and the
// integer crop window (pad). Boxes are (x1, y1, x2, y2) in image pixels.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "facenet/data/image.hpp"

namespace facenet::detect {

struct box {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  float width() const noexcept { return x2 - x1; }
  float height() const noexcept { return y2 - y1; }
  float area() const noexcept { return (x2 - x1) * (y2 - y1); }
};

// Five facial landmarks (x, y): left eye, right eye, nose, left and right mouth corner, in image order.
using landmarks = std::array<std::array<float, 2>, 5>;

// One detection: box, face probability from O-Net, landmarks.
struct face {
  box b;
  float prob = 0;
  detect::landmarks points{};
};

// A box moving through the cascade: score, pending regression offsets, image of the batch.
struct candidate {
  box b;
  float score = 0;
  std::array<float, 4> reg{};
  int image = 0;
};

// P-Net proposals for one image: every cell of the probability map with prob >= threshold becomes
// the 12x12 window it sees, mapped back to the original image (stride 2, cell 12) and floored.
// `prob` and `reg` are the face-probability plane and the 4 regression planes (each h x w).
inline void generate_proposals(const float* prob, const float* reg, int h, int w, double scale, float threshold,
                               int image, std::vector<candidate>& out) {
  const float s = static_cast<float>(scale);
  const std::int64_t plane = static_cast<std::int64_t>(h) * w;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const std::int64_t i = static_cast<std::int64_t>(y) * w + x;
      if (!(prob[i] >= threshold)) continue;
      candidate c;
      const float fx = static_cast<float>(x), fy = static_cast<float>(y);
      c.b.x1 = std::floor((2.0f * fx + 1.0f) / s);
      c.b.y1 = std::floor((2.0f * fy + 1.0f) / s);
      c.b.x2 = std::floor((2.0f * fx + 12.0f - 1.0f + 1.0f) / s);
      c.b.y2 = std::floor((2.0f * fy + 12.0f - 1.0f + 1.0f) / s);
      c.score = prob[i];
      for (int k = 0; k < 4; ++k) c.reg[k] = reg[k * plane + i];
      c.image = image;
      out.push_back(c);
    }
}

// First-stage regression: offsets scaled by the width/height without +1.
inline box regress_proposal(const box& b, const std::array<float, 4>& r) {
  const float w = b.x2 - b.x1, h = b.y2 - b.y1;
  return {b.x1 + r[0] * w, b.y1 + r[1] * h, b.x2 + r[2] * w, b.y2 + r[3] * h};
}

// bbreg: later-stage regression, offsets scaled by the width/height + 1.
inline box bbreg(const box& b, const std::array<float, 4>& r) {
  const float w = b.x2 - b.x1 + 1.0f, h = b.y2 - b.y1 + 1.0f;
  return {b.x1 + r[0] * w, b.y1 + r[1] * h, b.x2 + r[2] * w, b.y2 + r[3] * h};
}

// rerec: the square of side max(w, h) with the same centre.
inline box rerec(const box& b) {
  const float h = b.y2 - b.y1, w = b.x2 - b.x1, l = std::max(w, h);
  box o;
  o.x1 = b.x1 + w * 0.5f - l * 0.5f;
  o.y1 = b.y1 + h * 0.5f - l * 0.5f;
  o.x2 = o.x1 + l;
  o.y2 = o.y1 + l;
  return o;
}

// pad + the slice facenet-pytorch takes: coordinates truncated towards zero, then the rows
// (y - 1) .. ey and columns (x - 1) .. ex with x, y clamped to >= 1 and ex, ey to <= the image
// size. Returns an empty rect when nothing of the box is inside the image.
inline data::rect crop_window(const box& b, int img_w, int img_h) {
  const int x = std::max(static_cast<int>(std::trunc(b.x1)), 1);
  const int y = std::max(static_cast<int>(std::trunc(b.y1)), 1);
  const int ex = std::min(static_cast<int>(std::trunc(b.x2)), img_w);
  const int ey = std::min(static_cast<int>(std::trunc(b.y2)), img_h);
  if (!(ey > y - 1 && ex > x - 1)) return {};
  return {x - 1, y - 1, ex, ey};
}

// Intersection over union; `plus_one` counts pixels inclusively (the MATLAB/numpy convention),
// otherwise areas are continuous (torchvision).
inline float iou(const box& a, const box& b, bool plus_one = false) {
  const float one = plus_one ? 1.0f : 0.0f;
  const float w = std::max(0.0f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1) + one);
  const float h = std::max(0.0f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1) + one);
  const float inter = w * h;
  const float area_a = (a.x2 - a.x1 + one) * (a.y2 - a.y1 + one), area_b = (b.x2 - b.x1 + one) * (b.y2 - b.y1 + one);
  return inter / (area_a + area_b - inter);
}

}  // namespace facenet::detect
