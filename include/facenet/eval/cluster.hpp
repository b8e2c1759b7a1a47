// Clustering face embeddings into identities: Chinese Whispers (as dlib's chinese_whispers, the
// method of dlib's face clustering example) and DBSCAN (as sklearn.cluster.DBSCAN). Both work on the
// Euclidean distance of embeddings, the same number `verify` and `identify` compare with their
// threshold (pipeline.hpp embedding_distance), and treat "distance <= threshold" as "same person",
// so one threshold means the same thing in every command.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::eval {

// labels[i] is the cluster of row i (0 = the largest cluster) or -1 (DBSCAN noise); clusters[k] lists
// the rows of cluster k in increasing order. Clusters are sorted by size, ties by their first row,
// so the result does not depend on how the algorithm happened to number them.
struct clustering {
  std::vector<std::int64_t> labels;
  std::vector<std::vector<std::int64_t>> clusters;
  std::vector<std::int64_t> noise;
};

struct chinese_whispers_options {
  double threshold = 1.1;        // rows at distance <= threshold are joined by an edge
  std::int64_t iterations = 100;  // dlib's default: N * iterations random node updates
  std::uint64_t seed = 0;        // the result is a function of (embeddings, options)
};

struct dbscan_options {
  double eps = 1.1;              // neighbourhood radius (distance <= eps, as sklearn)
  std::int64_t min_samples = 3;  // neighbours incl. the point itself that make a core point
};

struct neighbor {
  std::int64_t index;
  double distance;
};

namespace detail {

// Rejects what would silently give nonsense: not N x D, NaN/Inf rows, a negative/NaN radius.
template <class T>
void check_cluster_input(const Tensor<T>& e, double radius, const char* who, const char* radius_name) {
  FACENET_CHECK(e.rank() == 2, shape_error,
                std::string(who) + ": embeddings must be an N x D matrix, got " + e.shape().str());
  FACENET_CHECK(e.size(0) == 0 || e.size(1) > 0, shape_error,
                std::string(who) + ": embeddings of width 0 (" + e.shape().str() + ")");
  FACENET_CHECK(std::isfinite(radius) && radius >= 0, argument_error,
                std::string(who) + ": " + radius_name + " must be a finite number >= 0, got " + std::to_string(radius));
  for (std::int64_t i = 0; i < e.size(0); ++i)
    for (std::int64_t k = 0; k < e.size(1); ++k)
      FACENET_CHECK(std::isfinite(static_cast<double>(e(i, k))), numeric_error,
                    std::string(who) + ": embedding row " + std::to_string(i) + " has a non-finite value at column " +
                        std::to_string(k));
}

// Turns arbitrary cluster ids (-1 = noise) into the canonical clustering described above.
inline clustering canonical_clustering(const std::vector<std::int64_t>& ids) {
  std::map<std::int64_t, std::vector<std::int64_t>> members;
  clustering c;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0) c.noise.push_back(static_cast<std::int64_t>(i));
    else members[ids[i]].push_back(static_cast<std::int64_t>(i));
  }
  for (auto& m : members) c.clusters.push_back(std::move(m.second));
  std::stable_sort(c.clusters.begin(), c.clusters.end(), [](const auto& a, const auto& b) {
    return a.size() != b.size() ? a.size() > b.size() : a.front() < b.front();
  });
  c.labels.assign(ids.size(), -1);
  for (std::size_t k = 0; k < c.clusters.size(); ++k)
    for (std::int64_t i : c.clusters[k]) c.labels[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(k);
  return c;
}

}  // namespace detail

// Euclidean distance of rows i and j, accumulated in double (the same number as embedding_distance).
template <class T>
double row_distance(const Tensor<T>& e, std::int64_t i, std::int64_t j) {
  double s = 0;
  for (std::int64_t k = 0; k < e.size(1); ++k) {
    const double v = static_cast<double>(e(i, k)) - static_cast<double>(e(j, k));
    s += v * v;
  }
  return std::sqrt(s);
}

namespace detail {

template <class T>
std::vector<std::vector<neighbor>> neighbor_graph(const Tensor<T>& e, double radius) {
  const std::int64_t n = e.size(0);
  std::vector<std::vector<neighbor>> out(static_cast<std::size_t>(n));
  parallel::parallel_for(0, n, [&](std::int64_t i) {
    for (std::int64_t j = 0; j < n; ++j) {
      if (j == i) continue;
      const double d = row_distance(e, i, j);
      if (d <= radius) out[static_cast<std::size_t>(i)].push_back({j, d});
    }
  });
  return out;
}

}  // namespace detail

// For every row, the other rows within `radius` (distance <= radius), by increasing index. O(N^2 D)
// distance evaluations spread over the threads; rows are independent so the result is deterministic.
template <class T>
std::vector<std::vector<neighbor>> radius_neighbors(const Tensor<T>& e, double radius) {
  detail::check_cluster_input(e, radius, "radius_neighbors", "radius");
  return detail::neighbor_graph(e, radius);
}

// dlib's chinese_whispers over the graph "distance <= threshold" with unit edge weights and a self
// loop on every node (as dlib's face clustering example builds it, so a lone face keeps its own
// label): every node starts in its own cluster; N * iterations times a random node takes the label
// with the largest summed edge weight among its neighbours (ties: the smaller label, as dlib's
// std::map scan). A seeded mt19937_64 replaces dlib::rand, so results are reproducible but not
// bit-identical to dlib's.
template <class T>
clustering chinese_whispers(const Tensor<T>& e, const chinese_whispers_options& opt = {}) {
  FACENET_CHECK(opt.iterations >= 0, argument_error,
                "chinese_whispers: iterations must be >= 0, got " + std::to_string(opt.iterations));
  detail::check_cluster_input(e, opt.threshold, "chinese_whispers", "threshold");
  const auto graph = detail::neighbor_graph(e, opt.threshold);
  const std::int64_t n = e.size(0);
  std::vector<std::int64_t> labels(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = i;
  if (n == 0) return detail::canonical_clustering(labels);
  std::mt19937_64 rng(opt.seed);
  std::map<std::int64_t, double> weight;
  for (std::int64_t step = 0; step < n * opt.iterations; ++step) {
    const auto node = static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(n));
    weight.clear();
    weight[labels[node]] += 1.0;  // the self loop
    for (const neighbor& nb : graph[node]) weight[labels[static_cast<std::size_t>(nb.index)]] += 1.0;
    double best = -std::numeric_limits<double>::infinity();
    for (const auto& [label, w] : weight)
      if (w > best) best = w, labels[node] = label;
  }
  return detail::canonical_clustering(labels);
}

// sklearn's DBSCAN (metric euclidean): a core point has >= min_samples rows (itself included) within
// eps; clusters are the connected core points plus the non-core points within eps of one. A border
// point within eps of several clusters joins its nearest core point's (ties: the lower row), not
// whichever cluster a scan order reaches first, so the labels do not depend on row order. Rows near
// no core point are noise (label -1).
template <class T>
clustering dbscan(const Tensor<T>& e, const dbscan_options& opt = {}) {
  FACENET_CHECK(opt.min_samples >= 1, argument_error,
                "dbscan: min_samples must be >= 1, got " + std::to_string(opt.min_samples));
  detail::check_cluster_input(e, opt.eps, "dbscan", "eps");
  const auto graph = detail::neighbor_graph(e, opt.eps);
  const std::size_t n = graph.size();
  std::vector<char> core(n);
  for (std::size_t i = 0; i < n; ++i) core[i] = static_cast<std::int64_t>(graph[i].size()) + 1 >= opt.min_samples;
  std::vector<std::int64_t> ids(n, -1);
  std::int64_t next = 0;
  std::vector<std::size_t> stack;
  for (std::size_t seed = 0; seed < n; ++seed) {  // flood fill over core points only
    if (!core[seed] || ids[seed] >= 0) continue;
    ids[seed] = next;
    for (stack.assign(1, seed); !stack.empty();) {
      const std::size_t p = stack.back();
      stack.pop_back();
      for (const neighbor& nb : graph[p]) {
        const auto q = static_cast<std::size_t>(nb.index);
        if (core[q] && ids[q] < 0) ids[q] = next, stack.push_back(q);
      }
    }
    ++next;
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (core[i]) continue;
    double best = std::numeric_limits<double>::infinity();
    for (const neighbor& nb : graph[i])  // by increasing index: strict < keeps the lower row on ties
      if (core[static_cast<std::size_t>(nb.index)] && nb.distance < best)
        best = nb.distance, ids[i] = ids[static_cast<std::size_t>(nb.index)];
  }
  return detail::canonical_clustering(ids);
}

}  // namespace facenet::eval
