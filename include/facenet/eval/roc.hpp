// K-fold verification metrics on pair distances, following davidsandberg's facenet.calculate_roc /
// calculate_val (sklearn KFold without shuffling: contiguous folds, the first n % k one pair larger).
// A pair is predicted "same" when its distance is strictly below the threshold.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"

namespace facenet::eval {

// thresholds[i] = i * step for i < ceil(stop / step), like np.arange(0, stop, step).
inline std::vector<double> arange_thresholds(double stop, double step) {
  FACENET_CHECK(step > 0 && stop > 0, argument_error, "arange_thresholds: stop and step must be positive");
  const auto n = static_cast<std::int64_t>(std::ceil(stop / step));
  std::vector<double> t(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = static_cast<double>(i) * step;
  return t;
}

struct fold_split {
  std::vector<std::size_t> train, test;
};

// sklearn KFold(n_splits=k, shuffle=False).split(range(n)).
inline std::vector<fold_split> kfold(std::size_t n, int k) {
  FACENET_CHECK(k >= 2 && static_cast<std::size_t>(k) <= n, argument_error,
                "kfold: cannot split " + std::to_string(n) + " pairs into " + std::to_string(k) + " folds");
  std::vector<fold_split> folds(static_cast<std::size_t>(k));
  std::size_t start = 0;
  for (int f = 0; f < k; ++f) {
    const std::size_t size = n / k + (static_cast<std::size_t>(f) < n % k ? 1 : 0);
    for (std::size_t i = 0; i < n; ++i) (i >= start && i < start + size ? folds[f].test : folds[f].train).push_back(i);
    start += size;
  }
  return folds;
}

struct confusion {
  double tpr = 0, fpr = 0, accuracy = 0, val = 0, far = 0;
};

// calculate_accuracy + calculate_val_far over the pairs in `subset`. tpr/fpr are 0 when undefined
// (as there); val/far divide by the class counts as calculate_val_far does (NaN when a class is absent).
inline confusion confusion_at(double threshold, const std::vector<double>& dist, const std::vector<bool>& same,
                              const std::vector<std::size_t>& subset) {
  double tp = 0, fp = 0, tn = 0, fn = 0;
  for (std::size_t i : subset) {
    const bool predict = dist[i] < threshold;
    tp += predict && same[i];
    fp += predict && !same[i];
    tn += !predict && !same[i];
    fn += !predict && same[i];
  }
  confusion c;
  c.tpr = tp + fn == 0 ? 0 : tp / (tp + fn);
  c.fpr = fp + tn == 0 ? 0 : fp / (fp + tn);
  c.accuracy = (tp + tn) / static_cast<double>(subset.size());
  c.val = tp / (tp + fn);
  c.far = fp / (fp + tn);
  return c;
}

struct roc_result {
  std::vector<double> thresholds, tpr, fpr;  // tpr/fpr: mean over folds of the test-fold rates
  std::vector<double> accuracy;               // per fold, at the threshold best on the other folds
  std::vector<double> best_threshold;         // per fold
};

// `fold_distances(f)` returns the distances used in fold f (they differ per fold only when the
// embedding mean is subtracted); most callers pass the same vector for every fold.
template <class FoldDistances>
roc_result calculate_roc(const std::vector<double>& thresholds, FoldDistances&& fold_distances, const std::vector<bool>& same,
                         int folds) {
  roc_result r;
  r.thresholds = thresholds;
  const std::size_t nt = thresholds.size();
  r.tpr.assign(nt, 0.0);
  r.fpr.assign(nt, 0.0);
  const auto splits = kfold(same.size(), folds);
  for (int f = 0; f < folds; ++f) {
    const std::vector<double>& dist = fold_distances(f);
    std::size_t best = 0;
    double best_acc = -1;
    for (std::size_t t = 0; t < nt; ++t) {
      const double acc = confusion_at(thresholds[t], dist, same, splits[f].train).accuracy;
      if (acc > best_acc) best_acc = acc, best = t;  // first maximum, as np.argmax
    }
    for (std::size_t t = 0; t < nt; ++t) {
      const confusion c = confusion_at(thresholds[t], dist, same, splits[f].test);
      r.tpr[t] += c.tpr;
      r.fpr[t] += c.fpr;
    }
    r.accuracy.push_back(confusion_at(thresholds[best], dist, same, splits[f].test).accuracy);
    r.best_threshold.push_back(thresholds[best]);
  }
  for (std::size_t t = 0; t < nt; ++t) r.tpr[t] /= folds, r.fpr[t] /= folds;  // np.mean: sum, then divide
  return r;
}

// scipy interp1d(x, y, kind='slinear')(target) for non-decreasing x (duplicates allowed), target in
// [x.front(), x.back()]: linear between the last point with x <= target and the next one; at
// target == x.back() the first point of the final run of equal x.
inline double interp_slinear(const std::vector<double>& x, const std::vector<double>& y, double target) {
  const std::size_t n = x.size();
  FACENET_CHECK(n >= 2 && target >= x[0], argument_error,
                "interp_slinear: target " + std::to_string(target) + " below the first sample " + std::to_string(x.empty() ? 0.0 : x[0]));
  if (target >= x[n - 1]) return y[static_cast<std::size_t>(std::lower_bound(x.begin(), x.end(), x[n - 1]) - x.begin())];
  const std::size_t r = static_cast<std::size_t>(std::upper_bound(x.begin(), x.end(), target) - x.begin());
  const std::size_t l = r - 1;
  return y[l] + (target - x[l]) * (y[r] - y[l]) / (x[r] - x[l]);
}

struct val_result {
  double val = 0, val_std = 0, far = 0;
  std::vector<double> fold_val, fold_far, fold_threshold;
};

template <class FoldDistances>
val_result calculate_val(const std::vector<double>& thresholds, FoldDistances&& fold_distances, const std::vector<bool>& same,
                         double far_target, int folds) {
  val_result r;
  const auto splits = kfold(same.size(), folds);
  for (int f = 0; f < folds; ++f) {
    const std::vector<double>& dist = fold_distances(f);
    std::vector<double> far_train(thresholds.size());
    for (std::size_t t = 0; t < thresholds.size(); ++t) far_train[t] = confusion_at(thresholds[t], dist, same, splits[f].train).far;
    const double max_far = *std::max_element(far_train.begin(), far_train.end());
    const double threshold = max_far >= far_target ? interp_slinear(far_train, thresholds, far_target) : 0.0;
    const confusion c = confusion_at(threshold, dist, same, splits[f].test);
    r.fold_val.push_back(c.val);
    r.fold_far.push_back(c.far);
    r.fold_threshold.push_back(threshold);
  }
  for (int f = 0; f < folds; ++f) r.val += r.fold_val[f], r.far += r.fold_far[f];
  r.val /= folds;
  r.far /= folds;
  for (int f = 0; f < folds; ++f) r.val_std += (r.fold_val[f] - r.val) * (r.fold_val[f] - r.val);
  r.val_std = std::sqrt(r.val_std / folds);
  return r;
}

}  // namespace facenet::eval
