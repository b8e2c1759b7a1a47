// LFW verification protocol, matching davidsandberg's lfw.evaluate / validate_on_lfw: 10-fold
// accuracy with the threshold chosen on the other 9 folds (thresholds 0:0.01:4), VAL at FAR = 1e-3
// (thresholds 0:0.001:4, interpolated), AUC and EER of the mean ROC.
//
// Pairs files: View 2 "pairs.txt" starts with "<folds> <n>" followed, per fold, by n same-person
// lines "name i j" and n different-person lines "name1 i name2 j". View 1 "pairsDevTest.txt" starts
// with "<n>" followed by n same then n different lines; we deal those into balanced folds (fold f gets
// the f-th block of each kind) because contiguous folds of the file order would each hold one class.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/eval/metrics.hpp"
#include "facenet/eval/roc.hpp"

namespace facenet::eval {

struct lfw_pair {
  std::string name1;
  int index1 = 0;
  std::string name2;
  int index2 = 0;
  bool same = false;
};

struct lfw_pairs {
  std::vector<lfw_pair> pairs;  // fold-major: contiguous equal folds, as evaluation expects
  int folds = 10;
  int view = 2;
};

namespace detail {

inline lfw_pair parse_pair_line(const std::string& line, const std::string& where) {
  std::istringstream in(line);
  std::vector<std::string> f;
  for (std::string s; in >> s;) f.push_back(s);
  lfw_pair p;
  try {
    if (f.size() == 3) {
      p = {f[0], std::stoi(f[1]), f[0], std::stoi(f[2]), true};
    } else if (f.size() == 4) {
      p = {f[0], std::stoi(f[1]), f[2], std::stoi(f[3]), false};
    } else {
      throw format_error(where + ": expected 3 fields (same) or 4 fields (different), got " + std::to_string(f.size()));
    }
  } catch (const std::logic_error&) {
    throw format_error(where + ": image numbers must be integers in '" + line + "'");
  }
  return p;
}

// Reads `count` pair lines of one kind, checking the kind.
inline void read_block(std::istream& in, const std::string& path, int& line_no, int count, bool same,
                       std::vector<lfw_pair>& out) {
  for (int i = 0; i < count; ++i) {
    std::string line;
    FACENET_CHECK(static_cast<bool>(std::getline(in, line)), format_error,
                  path + ": ended at line " + std::to_string(line_no) + ", expected more pairs");
    ++line_no;
    const lfw_pair p = parse_pair_line(line, path + ":" + std::to_string(line_no));
    FACENET_CHECK(p.same == same, format_error,
                  path + ":" + std::to_string(line_no) + ": expected a " + (same ? "same" : "different") + "-person pair");
    out.push_back(p);
  }
}

}  // namespace detail

// Parses a pairs file from a stream; `path` names it in errors.
inline lfw_pairs parse_lfw_pairs(std::istream& in, const std::string& path, int view1_folds = 10) {
  std::string header;
  std::getline(in, header);
  std::istringstream h(header);
  std::vector<long> nums;
  for (long v; h >> v;) nums.push_back(v);
  // Counts must fit an int: a count that wrapped to zero or below would make the block loops below
  // read nothing and spin through billions of folds.
  const auto count_ok = [](long v) { return v > 0 && v <= std::numeric_limits<int>::max(); };
  FACENET_CHECK((nums.size() == 1 || nums.size() == 2) && count_ok(nums[0]) && (nums.size() == 1 || count_ok(nums[1])),
                format_error, path + ":1: expected '<n>' (View 1) or '<folds> <n>' (View 2) with counts in [1, 2^31), got '" +
                                  header + "'");
  lfw_pairs r;
  int line_no = 1;
  if (nums.size() == 2) {
    r.view = 2;
    r.folds = static_cast<int>(nums[0]);
    for (int f = 0; f < r.folds; ++f) {
      detail::read_block(in, path, line_no, static_cast<int>(nums[1]), true, r.pairs);
      detail::read_block(in, path, line_no, static_cast<int>(nums[1]), false, r.pairs);
    }
  } else {
    r.view = 1;
    r.folds = view1_folds;
    const int n = static_cast<int>(nums[0]);
    FACENET_CHECK(n >= view1_folds, format_error, path + ": " + std::to_string(n) + " pairs per class is fewer than the folds");
    std::vector<lfw_pair> same, diff;
    detail::read_block(in, path, line_no, n, true, same);
    detail::read_block(in, path, line_no, n, false, diff);
    const auto blocks = kfold(static_cast<std::size_t>(n), view1_folds);
    for (const fold_split& b : blocks) {
      for (std::size_t i : b.test) r.pairs.push_back(same[i]);
      for (std::size_t i : b.test) r.pairs.push_back(diff[i]);
    }
  }
  for (std::string rest; std::getline(in, rest);)
    FACENET_CHECK(rest.find_first_not_of(" \t\r") == std::string::npos, format_error,
                  path + ":" + std::to_string(++line_no) + ": unexpected content after the last pair");
  return r;
}

inline lfw_pairs read_lfw_pairs(const std::string& path, int view1_folds = 10) {
  std::ifstream in(path);
  FACENET_CHECK(in.good(), io_error, "cannot open LFW pairs file '" + path + "'");
  return parse_lfw_pairs(in, path, view1_folds);
}

// <dir>/<name>/<name>_<index, 4 digits>.<ext>
inline std::string lfw_image_path(const std::string& dir, const std::string& name, int index, const std::string& ext = "jpg") {
  char num[16];
  std::snprintf(num, sizeof num, "%04d", index);
  return (std::filesystem::path(dir) / name / (name + "_" + num + "." + ext)).string();
}

struct lfw_paths {
  std::vector<std::string> paths;  // two per kept pair: first, second
  std::vector<bool> same;
  std::size_t skipped = 0;  // pairs with a missing image (get_paths drops them too)
};

inline lfw_paths resolve_lfw_paths(const std::string& dir, const lfw_pairs& pairs, const std::string& ext = "jpg") {
  lfw_paths r;
  for (const lfw_pair& p : pairs.pairs) {
    const std::string a = lfw_image_path(dir, p.name1, p.index1, ext), b = lfw_image_path(dir, p.name2, p.index2, ext);
    if (!std::filesystem::exists(a) || !std::filesystem::exists(b)) {
      ++r.skipped;
      continue;
    }
    r.paths.push_back(a);
    r.paths.push_back(b);
    r.same.push_back(p.same);
  }
  return r;
}

struct lfw_options {
  int folds = 10;
  distance_metric metric = distance_metric::squared_l2;
  bool subtract_mean = false;  // subtract the training folds' mean embedding first
  double far_target = 1e-3;
};

struct lfw_metrics {
  double accuracy = 0, accuracy_std = 0, val = 0, val_std = 0, far = 0, auc = 0, eer = 0, threshold = 0;
  roc_result roc;
};

namespace detail {

// Distances per fold: one shared vector unless the training folds' mean embedding is subtracted.
template <class T>
std::vector<std::vector<double>> fold_distances(const Tensor<T>& e1, const Tensor<T>& e2, const std::vector<fold_split>& splits,
                                                const lfw_options& opt) {
  if (!opt.subtract_mean) return {pair_distances(e1, e2, opt.metric)};
  const std::int64_t d = e1.size(1);
  std::vector<std::vector<double>> out;
  for (const fold_split& f : splits) {
    std::vector<double> mean(static_cast<std::size_t>(d), 0.0);
    for (std::size_t i : f.train)
      for (std::int64_t k = 0; k < d; ++k) mean[k] += static_cast<double>(e1(i, k)) + static_cast<double>(e2(i, k));
    for (double& m : mean) m /= 2.0 * static_cast<double>(f.train.size());
    out.push_back(pair_distances(e1, e2, opt.metric, mean));
  }
  return out;
}

inline double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
inline double std_of(const std::vector<double>& v) {  // np.std: population
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

}  // namespace detail

// embeddings: [2P, D], rows 2i and 2i+1 are pair i (the order resolve_lfw_paths returns).
template <class T>
lfw_metrics evaluate_lfw(const Tensor<T>& embeddings, const std::vector<bool>& same, const lfw_options& opt = {}) {
  FACENET_CHECK(embeddings.rank() == 2 && embeddings.size(0) == 2 * static_cast<std::int64_t>(same.size()), shape_error,
                "evaluate_lfw: expected [" + std::to_string(2 * same.size()) + ", D] embeddings for " +
                    std::to_string(same.size()) + " pairs, got " + embeddings.shape().str());
  const std::int64_t n = static_cast<std::int64_t>(same.size()), d = embeddings.size(1);
  Tensor<T> e1({n, d}), e2({n, d});
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t k = 0; k < d; ++k) e1(i, k) = embeddings(2 * i, k), e2(i, k) = embeddings(2 * i + 1, k);
  const std::vector<std::vector<double>> dist = detail::fold_distances(e1, e2, kfold(same.size(), opt.folds), opt);
  auto fold_dist = [&](int f) -> const std::vector<double>& { return dist[dist.size() == 1 ? 0 : f]; };

  lfw_metrics m;
  m.roc = calculate_roc(arange_thresholds(4, 0.01), fold_dist, same, opt.folds);
  const val_result v = calculate_val(arange_thresholds(4, 0.001), fold_dist, same, opt.far_target, opt.folds);
  m.accuracy = detail::mean_of(m.roc.accuracy);
  m.accuracy_std = detail::std_of(m.roc.accuracy);
  m.threshold = detail::mean_of(m.roc.best_threshold);
  m.val = v.val, m.val_std = v.val_std, m.far = v.far;
  m.auc = auc(m.roc.fpr, m.roc.tpr);
  m.eer = equal_error_rate(m.roc.fpr, m.roc.tpr);
  return m;
}

// {"accuracy": ..., "accuracy_std": ..., "val": ..., "val_std": ..., "far": ..., "auc": ..., "eer": ..., "threshold": ...}
inline std::string to_json(const lfw_metrics& m) {
  std::ostringstream o;
  o.precision(17);
  auto num = [&](double v) -> std::ostringstream& {
    if (std::isfinite(v)) o << v;
    else o << "null";
    return o;
  };
  o << "{\"accuracy\": ";
  num(m.accuracy) << ", \"accuracy_std\": ";
  num(m.accuracy_std) << ", \"val\": ";
  num(m.val) << ", \"val_std\": ";
  num(m.val_std) << ", \"far\": ";
  num(m.far) << ", \"auc\": ";
  num(m.auc) << ", \"eer\": ";
  num(m.eer) << ", \"threshold\": ";
  num(m.threshold) << "}";
  return o.str();
}

}  // namespace facenet::eval
