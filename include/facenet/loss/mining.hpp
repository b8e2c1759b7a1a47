// Online triplet mining inside a batch of P identities x K images, from the pairwise squared
// distances of its (L2-normalized) embeddings.
//
//   semi_hard        FaceNet paper, as TF's triplet_semihard_loss: for every ordered anchor-positive
//                    pair the closest negative that is farther than the positive; when none is,
//                    the farthest negative.
//   batch_hard       Hermans et al.: per anchor, its farthest positive and closest negative.
//   batch_all        every valid triplet (ordered anchor-positive pairs x negatives) that violates the
//                    margin; the loss then averages over those, i.e. over the non-zero terms.
//   random_negative  davidsandberg select_triplets / OpenFace: for every anchor-positive pair with
//                    anchor < positive, one random negative with d_an - d_ap < alpha (none: skipped).
//
// Identities with a single image in the batch act as negatives only.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/triplet.hpp"

namespace facenet::loss {

using kernels::triplet;

enum class mining_strategy { semi_hard, batch_hard, batch_all, random_negative };

inline const char* mining_strategy_name(mining_strategy s) noexcept {
  switch (s) {
    case mining_strategy::semi_hard: return "semi-hard";
    case mining_strategy::batch_hard: return "batch-hard";
    case mining_strategy::batch_all: return "batch-all";
    case mining_strategy::random_negative: return "random";
  }
  return "unknown";
}

// Accepts the CLI spellings ("semi-hard", "batch-hard", "batch-all", "random").
inline mining_strategy parse_mining_strategy(const std::string& s) {
  for (mining_strategy m : {mining_strategy::semi_hard, mining_strategy::batch_hard, mining_strategy::batch_all,
                            mining_strategy::random_negative})
    if (s == mining_strategy_name(m)) return m;
  throw argument_error("unknown mining strategy '" + s + "' (expected semi-hard, batch-hard, batch-all or random)");
}

struct mining_options {
  mining_strategy strategy = mining_strategy::semi_hard;
  double alpha = 0.2;
  // Collapse: the mean off-diagonal squared distance fell below this (unit embeddings spread out
  // give ~2; a collapsed network maps every face to one point).
  double collapse_threshold = 1e-3;
};

struct mining_result {
  std::vector<triplet> triplets;
  std::int64_t candidates = 0;  // triplets the active fraction is measured over
  std::int64_t active = 0;      // of those, how many have a non-zero loss
  double active_fraction = 0;
  double mean_distance = 0;  // mean off-diagonal squared distance
  bool collapsed = false;
};

namespace detail {

inline void check_mining_input(std::int64_t rows, std::int64_t cols, std::size_t labels) {
  FACENET_CHECK(rows == cols, shape_error,
                "mine_triplets: distances must be square [N, N], got [" + std::to_string(rows) + ", " + std::to_string(cols) + "]");
  FACENET_CHECK(static_cast<std::int64_t>(labels) == rows, shape_error,
                "mine_triplets: " + std::to_string(labels) + " labels for " + std::to_string(rows) + " embeddings");
}

// One batch's mining state: distances read in double, triplets and counters accumulated in `r`.
template <class T>
struct miner {
  const Tensor<T>& dist;
  const std::vector<int>& labels;
  double alpha;
  mining_result r;

  double d(std::int64_t i, std::int64_t j) const { return static_cast<double>(dist(i, j)); }
  bool negative(std::int64_t a, std::int64_t k) const { return labels[k] != labels[a]; }
  std::int64_t n() const { return dist.size(0); }

  void emit(std::int64_t a, std::int64_t p, std::int64_t ng) {
    r.triplets.push_back({a, p, ng});
    ++r.candidates;
    r.active += d(a, p) - d(a, ng) + alpha > 0;
  }

  void batch_hard(std::int64_t a) {
    std::int64_t hard_p = -1, hard_n = -1;
    for (std::int64_t k = 0; k < n(); ++k) {
      if (k != a && !negative(a, k) && (hard_p < 0 || d(a, k) > d(a, hard_p))) hard_p = k;
      if (negative(a, k) && (hard_n < 0 || d(a, k) < d(a, hard_n))) hard_n = k;
    }
    if (hard_p >= 0 && hard_n >= 0) emit(a, hard_p, hard_n);
  }

  void batch_all(std::int64_t a, std::int64_t p) {
    for (std::int64_t k = 0; k < n(); ++k) {
      if (!negative(a, k)) continue;
      ++r.candidates;
      if (d(a, p) - d(a, k) + alpha > 0) {
        ++r.active;
        r.triplets.push_back({a, p, k});
      }
    }
  }

  void semi_hard(std::int64_t a, std::int64_t p) {
    std::int64_t semi = -1, far = -1;
    for (std::int64_t k = 0; k < n(); ++k) {
      if (!negative(a, k)) continue;
      if (d(a, k) > d(a, p) && (semi < 0 || d(a, k) < d(a, semi))) semi = k;
      if (far < 0 || d(a, k) > d(a, far)) far = k;
    }
    if (far >= 0) emit(a, p, semi >= 0 ? semi : far);
  }

  void random_negative(std::int64_t a, std::int64_t p, std::mt19937_64& rng) {
    std::vector<std::int64_t> inside;
    for (std::int64_t k = 0; k < n(); ++k)
      if (negative(a, k) && d(a, k) - d(a, p) < alpha) inside.push_back(k);
    if (inside.empty()) return;
    std::uniform_int_distribution<std::size_t> pick(0, inside.size() - 1);
    emit(a, p, inside[pick(rng)]);
  }

  void summarize(double collapse_threshold) {
    r.active_fraction = r.candidates ? static_cast<double>(r.active) / static_cast<double>(r.candidates) : 0.0;
    double sum = 0;
    for (std::int64_t i = 0; i < n(); ++i)
      for (std::int64_t j = 0; j < n(); ++j) sum += i != j ? d(i, j) : 0.0;
    r.mean_distance = n() > 1 ? sum / static_cast<double>(n() * (n() - 1)) : 0.0;
    r.collapsed = n() > 1 && r.mean_distance < collapse_threshold;
  }
};

}  // namespace detail

// dist: [N, N] squared distances; labels: identity of each row. Deterministic given `rng`'s state
// (only random_negative draws from it).
template <class T>
mining_result mine_triplets(const Tensor<T>& dist, const std::vector<int>& labels, const mining_options& opt,
                            std::mt19937_64& rng) {
  FACENET_CHECK(dist.rank() == 2, shape_error, "mine_triplets: distances must be [N, N], got " + dist.shape().str());
  detail::check_mining_input(dist.size(0), dist.size(1), labels.size());
  FACENET_CHECK(opt.alpha >= 0, argument_error, "mine_triplets: negative margin alpha " + std::to_string(opt.alpha));
  const std::int64_t n = dist.size(0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      FACENET_CHECK(std::isfinite(static_cast<double>(dist(i, j))), numeric_error,
                    "mine_triplets: distance between embeddings " + std::to_string(i) + " and " + std::to_string(j) +
                        " is not finite (NaN/Inf embeddings)");
  detail::miner<T> m{dist, labels, opt.alpha, {}};
  for (std::int64_t a = 0; a < n; ++a) {
    if (opt.strategy == mining_strategy::batch_hard) {
      m.batch_hard(a);
      continue;
    }
    // davidsandberg pairs each anchor with the positives after it; the others use ordered pairs.
    const std::int64_t first_p = opt.strategy == mining_strategy::random_negative ? a + 1 : 0;
    for (std::int64_t p = first_p; p < n; ++p) {
      if (p == a || labels[p] != labels[a]) continue;
      if (opt.strategy == mining_strategy::batch_all) m.batch_all(a, p);
      if (opt.strategy == mining_strategy::semi_hard) m.semi_hard(a, p);
      if (opt.strategy == mining_strategy::random_negative) m.random_negative(a, p, rng);
    }
  }
  m.summarize(opt.collapse_threshold);
  return std::move(m.r);
}

}  // namespace facenet::loss
