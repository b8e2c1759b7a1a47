// MTCNN face detection, step for step as facenet-pytorch's detect_face (v2.5):
//   1. pyramid: scales 12/min_face * factor^k while min(h, w) * scale >= 12; each level is the
//      area resize to (int(h*s+1), int(w*s+1)), standardized (x - 127.5) / 128, through P-Net;
//      cells with p >= t0 become boxes; NMS 0.5 within each scale, then 0.7 across scales;
//      regression (without +1), rerec;
//   2. 24x24 area-resized crops of the pad() windows through R-Net; p > t1; NMS 0.7; bbreg; rerec;
//   3. 48x48 crops through O-Net; p > t2; landmarks from the box before regression; bbreg;
//      NMS 0.7 with the "Min" overlap and inclusive areas.
// Faces come back highest probability first (the order of the last NMS); order_faces /
// select_faces then apply facenet-pytorch's selection methods.
//
// One deliberate difference: facenet-pytorch silently drops the crop of a box lying entirely
// outside the image but keeps the box, misaligning scores and boxes; here such boxes are dropped.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/data/image.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/detect/boxes.hpp"
#include "facenet/detect/nms.hpp"
#include "facenet/io/tensor_map.hpp"
#include "facenet/models/mtcnn.hpp"

namespace facenet::detect {

struct mtcnn_options {
  float min_face_size = 20;
  std::array<float, 3> thresholds{0.6f, 0.7f, 0.7f};
  double factor = 0.709;
  int refine_batch = 256;  // crops per R-Net / O-Net call (bounds memory on crowded images)

  void validate() const {
    FACENET_CHECK(min_face_size >= 1, argument_error, "mtcnn: min_face_size " + std::to_string(min_face_size) + " must be >= 1");
    FACENET_CHECK(factor > 0 && factor < 1, argument_error, "mtcnn: factor " + std::to_string(factor) + " must be in (0, 1)");
    for (float t : thresholds)
      FACENET_CHECK(t >= 0 && t <= 1, argument_error, "mtcnn: threshold " + std::to_string(t) + " must be in [0, 1]");
    FACENET_CHECK(refine_batch > 0, argument_error, "mtcnn: refine_batch must be positive");
  }
};

// The pyramid scales facenet-pytorch visits for an image of this size.
inline std::vector<double> pyramid_scales(int width, int height, const mtcnn_options& opt) {
  std::vector<double> scales;
  const double m = 12.0 / opt.min_face_size;
  double minl = std::min(width, height) * m, s = m;
  while (minl >= 12) {
    scales.push_back(s);
    s *= opt.factor;
    minl *= opt.factor;
  }
  return scales;
}

enum class selection_method { largest, probability, largest_over_threshold, center_weighted_size };

struct selection_options {
  selection_method method = selection_method::largest;
  float threshold = 0.9f;       // largest_over_threshold
  float center_weight = 2.0f;   // center_weighted_size
};

// Indices of `faces` best first under `opt` (facenet-pytorch's select_boxes ordering); for
// largest_over_threshold only the faces above the threshold are listed.
inline std::vector<std::size_t> order_faces(const std::vector<face>& faces, int img_w, int img_h,
                                            const selection_options& opt = {}) {
  std::vector<std::size_t> idx;
  std::vector<double> key;
  for (std::size_t i = 0; i < faces.size(); ++i) {
    const box& b = faces[i].b;
    const double size = static_cast<double>(b.area());
    double k = 0;
    switch (opt.method) {
      case selection_method::largest: k = size; break;
      case selection_method::probability: k = faces[i].prob; break;
      case selection_method::largest_over_threshold:
        if (!(faces[i].prob > opt.threshold)) continue;
        k = size;
        break;
      case selection_method::center_weighted_size: {
        const double dx = (b.x1 + b.x2) / 2.0 - img_w / 2.0, dy = (b.y1 + b.y2) / 2.0 - img_h / 2.0;
        k = size - (dx * dx + dy * dy) * opt.center_weight;
        break;
      }
    }
    idx.push_back(i);
    key.push_back(k);
  }
  std::vector<std::size_t> order(idx.size());
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key[a] > key[b]; });
  for (auto& o : order) o = idx[o];
  return order;
}

// keep_all: every face, best first; otherwise the single best face (or none).
inline std::vector<face> select_faces(const std::vector<face>& faces, int img_w, int img_h, bool keep_all,
                                      const selection_options& opt = {}) {
  std::vector<face> out;
  for (std::size_t i : order_faces(faces, img_w, img_h, opt)) {
    out.push_back(faces[i]);
    if (!keep_all) break;
  }
  return out;
}

class mtcnn {
 public:
  mtcnn(models::mtcnn_pnet pnet, models::mtcnn_rnet rnet, models::mtcnn_onet onet, mtcnn_options opt = {})
      : pnet_(std::move(pnet)), rnet_(std::move(rnet)), onet_(std::move(onet)), opt_(opt) {
    opt_.validate();
  }
  // From the three state dicts with facenet-pytorch names (conv1.weight, prelu1.weight, ...).
  static mtcnn from_weights(const io::tensor_map& pnet, const io::tensor_map& rnet, const io::tensor_map& onet,
                            mtcnn_options opt = {}) {
    return mtcnn(models::mtcnn_pnet(pnet), models::mtcnn_rnet(rnet), models::mtcnn_onet(onet), opt);
  }

  const mtcnn_options& options() const noexcept { return opt_; }
  void set_options(const mtcnn_options& opt) {
    opt.validate();
    opt_ = opt;
  }

  // All faces of one RGB image, highest probability first.
  std::vector<face> detect(const data::image& img) {
    FACENET_CHECK(!img.empty() && img.channels == 3, argument_error,
                  "mtcnn::detect: expected a non-empty RGB image, got " + std::to_string(img.width) + "x" +
                      std::to_string(img.height) + "x" + std::to_string(img.channels));
    std::vector<candidate> c = propose(img);
    c = refine(img, c, 24);
    return output(img, c);
  }

  // A batch of images (sizes may differ); element i holds the faces of image i.
  std::vector<std::vector<face>> detect(const std::vector<data::image>& batch) {
    std::vector<std::vector<face>> out;
    out.reserve(batch.size());
    for (const data::image& img : batch) out.push_back(detect(img));
    return out;
  }

 private:
  static constexpr float pixel_mean = 127.5f;
  static constexpr float pixel_scale = 0.0078125f;

  static std::vector<candidate> take(const std::vector<candidate>& c, const std::vector<std::size_t>& pick) {
    std::vector<candidate> out;
    out.reserve(pick.size());
    for (std::size_t i : pick) out.push_back(c[i]);
    return out;
  }
  static std::vector<box> boxes_of(const std::vector<candidate>& c) {
    std::vector<box> b;
    for (const auto& x : c) b.push_back(x.b);
    return b;
  }
  static std::vector<float> scores_of(const std::vector<candidate>& c) {
    std::vector<float> s;
    for (const auto& x : c) s.push_back(x.score);
    return s;
  }

  // Stage 1: P-Net over the pyramid.
  std::vector<candidate> propose(const data::image& img) {
    std::vector<candidate> all;
    std::vector<int> scale_of;
    const std::vector<double> scales = pyramid_scales(img.width, img.height, opt_);
    for (std::size_t si = 0; si < scales.size(); ++si) {
      const double s = scales[si];
      const int hs = static_cast<int>(img.height * s + 1), ws = static_cast<int>(img.width * s + 1);
      data::resize_area(img, data::full_rect(img), ws, hs, level_);
      input_.resize({1, 3, hs, ws});
      data::to_tensor(level_, input_, 0, pixel_mean, pixel_scale);
      pnet_.forward(input_, reg_, prob_);
      const std::int64_t plane = prob_.h() * prob_.w();
      generate_proposals(prob_.data() + plane, reg_.data(), static_cast<int>(prob_.h()), static_cast<int>(prob_.w()), s,
                         opt_.thresholds[0], 0, all);
      scale_of.resize(all.size(), static_cast<int>(si));
    }
    std::vector<candidate> c = take(all, nms_batched(boxes_of(all), scores_of(all), scale_of, 0.5f));
    c = take(c, nms(boxes_of(c), scores_of(c), 0.7f));
    for (auto& x : c) x.b = rerec(regress_proposal(x.b, x.reg));
    return c;
  }

  // Crops every candidate's window, area-resized to size x size, into input_ (in chunks) and runs
  // `net` on each chunk; `consume(first, count)` reads the chunk's outputs. Candidates without a
  // window inside the image are dropped from `c` first.
  template <class Net, class Consume>
  void run_crops(const data::image& img, std::vector<candidate>& c, int size, Net&& net, Consume&& consume) {
    std::vector<candidate> inside;
    std::vector<data::rect> windows;
    for (const auto& x : c) {
      const data::rect r = crop_window(x.b, img.width, img.height);
      if (r.width() <= 0 || r.height() <= 0) continue;
      inside.push_back(x);
      windows.push_back(r);
    }
    c.swap(inside);
    for (std::size_t first = 0; first < c.size(); first += static_cast<std::size_t>(opt_.refine_batch)) {
      const std::size_t count = std::min(c.size() - first, static_cast<std::size_t>(opt_.refine_batch));
      input_.resize({static_cast<std::int64_t>(count), 3, size, size});
      if (crops_.size() < count) crops_.resize(count);
      // One crop per thread: each resize is too small to split.
      parallel::parallel_for(0, static_cast<std::int64_t>(count), [&](std::int64_t k) {
        data::resize_area(img, windows[first + k], size, size, crops_[k]);
        data::to_tensor(crops_[k], input_, k, pixel_mean, pixel_scale);
      });
      net(input_);
      consume(first, count);
    }
  }

  // Stage 2: R-Net on 24x24 crops.
  std::vector<candidate> refine(const data::image& img, std::vector<candidate> c, int size) {
    std::vector<candidate> passed;
    run_crops(img, c, size, [&](const Tensor<float>& x) { rnet_.forward(x, reg_, prob_); },
              [&](std::size_t first, std::size_t count) {
                for (std::size_t k = 0; k < count; ++k) {
                  const float score = prob_(k, 1);
                  if (!(score > opt_.thresholds[1])) continue;
                  candidate x = c[first + k];
                  x.score = score;
                  for (int j = 0; j < 4; ++j) x.reg[j] = reg_(k, j);
                  passed.push_back(x);
                }
              });
    passed = take(passed, nms(boxes_of(passed), scores_of(passed), 0.7f));
    for (auto& x : passed) x.b = rerec(bbreg(x.b, x.reg));
    return passed;
  }

  // Stage 3: O-Net on 48x48 crops, landmarks, final regression and "Min" NMS.
  std::vector<face> output(const data::image& img, std::vector<candidate> c) {
    std::vector<candidate> passed;
    std::vector<landmarks> points;
    run_crops(img, c, 48, [&](const Tensor<float>& x) { onet_.forward(x, reg_, marks_, prob_); },
              [&](std::size_t first, std::size_t count) {
                for (std::size_t k = 0; k < count; ++k) {
                  const float score = prob_(k, 1);
                  if (!(score > opt_.thresholds[2])) continue;
                  candidate x = c[first + k];
                  x.score = score;
                  for (int j = 0; j < 4; ++j) x.reg[j] = reg_(k, j);
                  const float w = x.b.x2 - x.b.x1 + 1.0f, h = x.b.y2 - x.b.y1 + 1.0f;
                  landmarks p;
                  for (int j = 0; j < 5; ++j)
                    p[j] = {w * marks_(k, j) + x.b.x1 - 1.0f, h * marks_(k, 5 + j) + x.b.y1 - 1.0f};
                  x.b = bbreg(x.b, x.reg);
                  passed.push_back(x);
                  points.push_back(p);
                }
              });
    std::vector<face> faces;
    for (std::size_t i : nms_inclusive(boxes_of(passed), scores_of(passed), 0.7f, overlap::min))
      faces.push_back({passed[i].b, passed[i].score, points[i]});
    return faces;
  }

  models::mtcnn_pnet pnet_;
  models::mtcnn_rnet rnet_;
  models::mtcnn_onet onet_;
  mtcnn_options opt_;
  // Reused buffers: steady-state detection does not reallocate them.
  data::image_f level_;
  std::vector<data::image_f> crops_;
  Tensor<float> input_, reg_, prob_, marks_;
};

}  // namespace facenet::detect
