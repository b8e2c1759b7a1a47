// Non-maximum suppression in the two flavours facenet-pytorch mixes:
//  - nms: torchvision.ops.nms — continuous areas, stable descending sort by score, a box is
//    suppressed when IoU > threshold;
//  - nms_inclusive: its nms_numpy — inclusive (+1) areas, "union" or "min" overlap, a box is
//    kept when overlap <= threshold.
// Both return indices into the input, highest score first. The *_batched versions run
// independently per group (image, or image x scale), like torchvision.ops.batched_nms.
#pragma once

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/detect/boxes.hpp"

namespace facenet::detect {

enum class overlap { iou, min };

namespace detail {

inline std::vector<std::size_t> order_by_score(const std::vector<float>& scores, const std::vector<std::size_t>& subset) {
  std::vector<std::size_t> order = subset;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  return order;
}

inline float overlap_of(const box& a, const box& b, bool plus_one, overlap kind) {
  if (kind == overlap::iou) return iou(a, b, plus_one);
  const float one = plus_one ? 1.0f : 0.0f;
  const float w = std::max(0.0f, std::min(a.x2, b.x2) - std::max(a.x1, b.x1) + one);
  const float h = std::max(0.0f, std::min(a.y2, b.y2) - std::max(a.y1, b.y1) + one);
  const float area_a = (a.x2 - a.x1 + one) * (a.y2 - a.y1 + one), area_b = (b.x2 - b.x1 + one) * (b.y2 - b.y1 + one);
  return w * h / std::min(area_a, area_b);
}

// Greedy suppression over `subset`; `keep_equal` decides whether overlap == threshold survives.
inline std::vector<std::size_t> greedy(const std::vector<box>& boxes, const std::vector<float>& scores,
                                       const std::vector<std::size_t>& subset, float threshold, bool plus_one,
                                       overlap kind) {
  const std::vector<std::size_t> order = order_by_score(scores, subset);
  std::vector<char> removed(order.size(), 0);
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (removed[i]) continue;
    keep.push_back(order[i]);
    for (std::size_t j = i + 1; j < order.size(); ++j)
      if (!removed[j] && overlap_of(boxes[order[i]], boxes[order[j]], plus_one, kind) > threshold) removed[j] = 1;
  }
  return keep;
}

inline void check_sizes(const std::vector<box>& boxes, std::size_t scores, std::size_t groups, const char* what) {
  FACENET_CHECK(scores == boxes.size() && groups == boxes.size(), argument_error,
                std::string(what) + ": " + std::to_string(boxes.size()) + " boxes, " + std::to_string(scores) +
                    " scores, " + std::to_string(groups) + " group ids");
}

// Runs greedy() per group and merges the survivors, highest score first.
inline std::vector<std::size_t> batched(const std::vector<box>& boxes, const std::vector<float>& scores,
                                        const std::vector<int>& groups, float threshold, bool plus_one, overlap kind) {
  std::vector<std::size_t> all(boxes.size());
  std::iota(all.begin(), all.end(), std::size_t(0));
  std::vector<std::size_t> keep;
  std::vector<int> ids(groups);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int g : ids) {
    std::vector<std::size_t> subset;
    for (std::size_t i : all)
      if (groups[i] == g) subset.push_back(i);
    const std::vector<std::size_t> k = greedy(boxes, scores, subset, threshold, plus_one, kind);
    keep.insert(keep.end(), k.begin(), k.end());
  }
  return order_by_score(scores, keep);
}

}  // namespace detail

inline std::vector<std::size_t> nms(const std::vector<box>& boxes, const std::vector<float>& scores, float threshold) {
  detail::check_sizes(boxes, scores.size(), boxes.size(), "nms");
  return detail::batched(boxes, scores, std::vector<int>(boxes.size(), 0), threshold, false, overlap::iou);
}

inline std::vector<std::size_t> nms_batched(const std::vector<box>& boxes, const std::vector<float>& scores,
                                            const std::vector<int>& groups, float threshold) {
  detail::check_sizes(boxes, scores.size(), groups.size(), "nms_batched");
  return detail::batched(boxes, scores, groups, threshold, false, overlap::iou);
}

inline std::vector<std::size_t> nms_inclusive(const std::vector<box>& boxes, const std::vector<float>& scores,
                                              float threshold, overlap kind) {
  detail::check_sizes(boxes, scores.size(), boxes.size(), "nms_inclusive");
  return detail::batched(boxes, scores, std::vector<int>(boxes.size(), 0), threshold, true, kind);
}

inline std::vector<std::size_t> nms_inclusive_batched(const std::vector<box>& boxes, const std::vector<float>& scores,
                                                      const std::vector<int>& groups, float threshold, overlap kind) {
  detail::check_sizes(boxes, scores.size(), groups.size(), "nms_inclusive_batched");
  return detail::batched(boxes, scores, groups, threshold, true, kind);
}

}  // namespace facenet::detect
