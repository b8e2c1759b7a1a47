// Pair distances and ROC summaries as davidsandberg's validate_on_lfw computes them:
// squared L2 (distance_metric 0) or arccos(cosine similarity) / pi (distance_metric 1), AUC by the
// trapezoid rule over (fpr, tpr), EER where fpr = 1 - tpr on the linearly interpolated ROC.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/l2_normalize.hpp"

namespace facenet::eval {

enum class distance_metric { squared_l2, cosine };

inline distance_metric parse_distance_metric(const std::string& s) {
  if (s == "squared-l2" || s == "euclidean" || s == "0") return distance_metric::squared_l2;
  if (s == "cosine" || s == "1") return distance_metric::cosine;
  throw argument_error("unknown distance metric '" + s + "' (expected squared-l2 or cosine)");
}

// Distance between rows i of a and b ([N, D] each), in double.
template <class T>
std::vector<double> pair_distances(const Tensor<T>& a, const Tensor<T>& b, distance_metric metric,
                                   const std::vector<double>& mean = {}) {
  FACENET_CHECK(a.rank() == 2 && a.shape() == b.shape(), shape_error,
                "pair_distances: embeddings must be two [N, D] tensors of one shape, got " + a.shape().str() + " and " +
                    b.shape().str());
  const std::int64_t n = a.size(0), d = a.size(1);
  FACENET_CHECK(mean.empty() || static_cast<std::int64_t>(mean.size()) == d, shape_error,
                "pair_distances: mean of size " + std::to_string(mean.size()) + " for embeddings of width " + std::to_string(d));
  std::vector<double> out(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    double ss = 0, dot = 0, na = 0, nb = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      const double m = mean.empty() ? 0.0 : mean[static_cast<std::size_t>(k)];
      const double x = static_cast<double>(a(i, k)) - m, y = static_cast<double>(b(i, k)) - m;
      ss += (x - y) * (x - y);
      dot += x * y, na += x * x, nb += y * y;
    }
    if (metric == distance_metric::squared_l2) {
      out[static_cast<std::size_t>(i)] = ss;
    } else {
      // Clamped: rounding can push |cos| past 1 where numpy would return NaN.
      const double c = dot / std::sqrt(na * nb);
      out[static_cast<std::size_t>(i)] = std::acos(std::max(-1.0, std::min(1.0, c))) / M_PI;
    }
  }
  return out;
}

// sklearn.metrics.auc(fpr, tpr) for a monotonic x (either direction).
inline double auc(const std::vector<double>& x, const std::vector<double>& y) {
  FACENET_CHECK(x.size() == y.size() && x.size() >= 2, argument_error, "auc: need two equal-length curves of >= 2 points");
  bool up = true, down = true;
  for (std::size_t i = 1; i < x.size(); ++i) up &= x[i] >= x[i - 1], down &= x[i] <= x[i - 1];
  FACENET_CHECK(up || down, argument_error, "auc: x is neither increasing nor decreasing");
  double area = 0;
  for (std::size_t i = 1; i < x.size(); ++i) area += (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2;
  return up ? area : -area;
}

// Equal error rate: the fpr x where 1 - x = tpr(x), walking the ROC polyline (fpr, tpr) ordered by
// threshold (both non-decreasing). A crossing on a vertical segment lands on its fpr, where
// brentq on the interpolated curve converges too. NaN when the curve never reaches fpr + tpr = 1.
inline double equal_error_rate(const std::vector<double>& fpr, const std::vector<double>& tpr) {
  FACENET_CHECK(fpr.size() == tpr.size() && !fpr.empty(), argument_error, "equal_error_rate: fpr and tpr differ in length");
  for (std::size_t i = 1; i < fpr.size(); ++i) {
    const double s0 = fpr[i - 1] + tpr[i - 1] - 1, s1 = fpr[i] + tpr[i] - 1;
    if (s0 <= 0 && s1 >= 0) {
      if (s1 == s0) return fpr[i - 1];
      return fpr[i - 1] + (fpr[i] - fpr[i - 1]) * (-s0) / (s1 - s0);
    }
  }
  return std::nan("");
}

enum class flip_mode { none, concat, sum };

inline flip_mode parse_flip_mode(const std::string& s) {
  if (s == "none") return flip_mode::none;
  if (s == "concat") return flip_mode::concat;
  if (s == "sum") return flip_mode::sum;
  throw argument_error("unknown flip mode '" + s + "' (expected none, concat or sum)");
}

// Combines each image's embedding with its horizontally-flipped twin: [e, e_flip] (validate_on_lfw's
// use_flipped_images) or e + e_flip. With `unit`, each row is rescaled to length 1 so distances stay
// on the scale of single unit embeddings and a model's threshold still applies.
template <class T>
Tensor<T> combine_flipped(const Tensor<T>& e, const Tensor<T>& flipped, flip_mode mode, bool unit = false) {
  FACENET_CHECK(e.rank() == 2 && e.shape() == flipped.shape(), shape_error,
                "combine_flipped: embeddings " + e.shape().str() + " and flipped " + flipped.shape().str() + " differ");
  if (mode == flip_mode::none) return e.clone();
  const std::int64_t n = e.size(0), d = e.size(1);
  Tensor<T> out({n, mode == flip_mode::concat ? 2 * d : d});
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) {
      if (mode == flip_mode::concat) {
        out(i, k) = e(i, k);
        out(i, d + k) = flipped(i, k);
      } else {
        out(i, k) = e(i, k) + flipped(i, k);
      }
    }
  if (unit) kernels::l2_normalize_forward(out, out);
  return out;
}

}  // namespace facenet::eval
