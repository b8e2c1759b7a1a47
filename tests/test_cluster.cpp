// Chinese Whispers and DBSCAN over embeddings: recovery of well separated synthetic identities
// (several seeds), DBSCAN noise and border points against a brute-force scalar reference written
// here, edge cases (no rows, one row, identical rows, threshold 0), determinism across seeds and
// thread counts, and clear errors for bad shapes, NaN and bad parameters.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "facenet/core/parallel.hpp"
#include "facenet/eval/cluster.hpp"

namespace fe = facenet::eval;
using facenet::Tensor;

namespace {

struct blobs {
  Tensor<float> points;
  std::vector<std::int64_t> truth;  // identity of each row, -1 for an outlier
};

std::vector<double> random_unit(std::mt19937& rng, int d) {
  std::normal_distribution<double> g;
  std::vector<double> v(static_cast<std::size_t>(d));
  double n = 0;
  for (auto& x : v) x = g(rng), n += x * x;
  for (auto& x : v) x /= std::sqrt(n);
  return v;
}

double distance(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (std::size_t k = 0; k < a.size(); ++k) s += (a[k] - b[k]) * (a[k] - b[k]);
  return std::sqrt(s);
}

// `k` identities of `per` L2-normalised embeddings each, like a face model's: centres on the unit
// sphere at least 1.0 apart, rows within ~0.3 of their centre, shuffled; plus `outliers` rows at
// least 1.0 from every centre.
blobs make_blobs(std::uint32_t seed, int k, int per, int outliers = 0, int d = 16) {
  std::mt19937 rng(seed);
  std::vector<std::vector<double>> centres;
  while (static_cast<int>(centres.size()) < k + outliers) {
    const auto c = random_unit(rng, d);
    bool far = true;
    for (const auto& o : centres) far &= distance(c, o) > 1.0;
    if (far) centres.push_back(c);
  }
  std::vector<std::int64_t> ids;
  for (int i = 0; i < k; ++i) ids.insert(ids.end(), static_cast<std::size_t>(per), i);
  for (int i = 0; i < outliers; ++i) ids.push_back(-1 - i);
  std::shuffle(ids.begin(), ids.end(), rng);
  std::normal_distribution<double> noise(0.0, 0.03);
  blobs b{Tensor<float>({static_cast<std::int64_t>(ids.size()), d}), {}};
  for (std::size_t r = 0; r < ids.size(); ++r) {
    const auto& c = centres[static_cast<std::size_t>(ids[r] >= 0 ? ids[r] : k - 1 - ids[r])];
    std::vector<double> v(c);
    double n = 0;
    if (ids[r] >= 0)
      for (auto& x : v) x += noise(rng);
    for (double x : v) n += x * x;
    for (int j = 0; j < d; ++j) b.points(static_cast<std::int64_t>(r), j) = static_cast<float>(v[static_cast<std::size_t>(j)] / std::sqrt(n));
    b.truth.push_back(ids[r] >= 0 ? ids[r] : -1);
  }
  return b;
}

// Same partition up to renumbering, and the same noise rows.
void expect_same_partition(const std::vector<std::int64_t>& got, const std::vector<std::int64_t>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i] < 0, want[i] < 0) << "row " << i << " noise mismatch";
    for (std::size_t j = i + 1; j < got.size(); ++j) {
      if (got[i] >= 0 && got[j] >= 0) {
        ASSERT_EQ(got[i] == got[j], want[i] == want[j]) << "rows " << i << " and " << j;
      }
    }
  }
}

// The documented canonical form: clusters largest first (ties by first row), rows ascending, labels
// matching, noise = rows labelled -1.
void expect_canonical(const fe::clustering& c) {
  std::vector<std::int64_t> noise;
  for (std::size_t i = 0; i < c.labels.size(); ++i)
    if (c.labels[i] < 0) noise.push_back(static_cast<std::int64_t>(i));
  EXPECT_EQ(c.noise, noise);
  std::size_t members = noise.size();
  for (std::size_t k = 0; k < c.clusters.size(); ++k) {
    ASSERT_FALSE(c.clusters[k].empty());
    EXPECT_TRUE(std::is_sorted(c.clusters[k].begin(), c.clusters[k].end()));
    for (std::int64_t r : c.clusters[k]) EXPECT_EQ(c.labels[static_cast<std::size_t>(r)], static_cast<std::int64_t>(k));
    if (k > 0) {
      const auto &prev = c.clusters[k - 1], &cur = c.clusters[k];
      EXPECT_TRUE(prev.size() > cur.size() || (prev.size() == cur.size() && prev.front() < cur.front())) << "cluster " << k;
    }
    members += c.clusters[k].size();
  }
  EXPECT_EQ(members, c.labels.size());
}

// DBSCAN by definition, written independently of the library: all pairwise distances, core points
// by count (self included), union-find over core pairs within eps, and each border row to its
// nearest core row (lower row on ties), the rule the library documents.
std::vector<std::int64_t> reference_dbscan(const Tensor<float>& x, double eps, std::int64_t min_samples) {
  const std::int64_t n = x.size(0), d = x.size(1);
  std::vector<std::vector<double>> dist(static_cast<std::size_t>(n), std::vector<double>(static_cast<std::size_t>(n)));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (std::int64_t k = 0; k < d; ++k) s += (double(x(i, k)) - double(x(j, k))) * (double(x(i, k)) - double(x(j, k)));
      dist[i][j] = std::sqrt(s);
    }
  std::vector<bool> core(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t count = 0;
    for (std::int64_t j = 0; j < n; ++j) count += dist[i][j] <= eps;
    core[i] = count >= min_samples;
  }
  std::vector<std::int64_t> parent(static_cast<std::size_t>(n));
  std::iota(parent.begin(), parent.end(), 0);
  const auto root = [&](std::int64_t i) {
    while (parent[i] != i) i = parent[i];
    return i;
  };
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j)
      if (core[i] && core[j] && dist[i][j] <= eps) parent[root(i)] = root(j);
  std::vector<std::int64_t> label(static_cast<std::size_t>(n), -1);
  for (std::int64_t i = 0; i < n; ++i) {
    if (core[i]) {
      label[i] = root(i);
      continue;
    }
    std::int64_t nearest = -1;
    for (std::int64_t j = 0; j < n; ++j)
      if (core[j] && dist[i][j] <= eps && (nearest < 0 || dist[i][j] < dist[i][nearest])) nearest = j;
    if (nearest >= 0) label[i] = root(nearest);
  }
  return label;
}

Tensor<float> uniform_points(std::uint32_t seed, std::int64_t n, std::int64_t d) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Tensor<float> x({n, d});
  for (auto& v : x) v = u(rng);
  return x;
}

}  // namespace

TEST(cluster, chinese_whispers_recovers_separated_identities) {
  for (std::uint32_t seed = 0; seed < 6; ++seed) {
    const blobs b = make_blobs(seed, 2 + static_cast<int>(seed), 3 + static_cast<int>(seed % 3));
    fe::chinese_whispers_options opt;
    opt.threshold = 0.7;
    opt.seed = seed;
    const fe::clustering c = fe::chinese_whispers(b.points, opt);
    SCOPED_TRACE("seed " + std::to_string(seed));
    expect_same_partition(c.labels, b.truth);
    EXPECT_EQ(c.clusters.size(), static_cast<std::size_t>(2 + seed));
    EXPECT_TRUE(c.noise.empty());
    expect_canonical(c);
  }
}

TEST(cluster, dbscan_recovers_identities_and_marks_outliers_as_noise) {
  for (std::uint32_t seed = 0; seed < 6; ++seed) {
    const blobs b = make_blobs(seed, 3, 5, 4);
    fe::dbscan_options opt;
    opt.eps = 0.7;
    opt.min_samples = 3;
    const fe::clustering c = fe::dbscan(b.points, opt);
    SCOPED_TRACE("seed " + std::to_string(seed));
    expect_same_partition(c.labels, b.truth);
    EXPECT_EQ(c.clusters.size(), 3u);
    EXPECT_EQ(c.noise.size(), 4u);
    expect_canonical(c);
    // Chinese Whispers has no noise: each outlier is a cluster of its own.
    fe::chinese_whispers_options cw;
    cw.threshold = 0.7;
    const fe::clustering w = fe::chinese_whispers(b.points, cw);
    EXPECT_EQ(w.clusters.size(), 3u + 4u);
    EXPECT_TRUE(w.noise.empty());
  }
}

TEST(cluster, dbscan_matches_brute_force_reference) {
  int clusters_seen = 0, noise_seen = 0, borders_seen = 0;
  for (std::uint32_t seed = 0; seed < 5; ++seed)
    for (double eps : {0.04, 0.08, 0.12})
      for (std::int64_t min_samples : {1, 2, 4, 7}) {
        const Tensor<float> x = uniform_points(seed, 90 + 17 * seed, 2);
        fe::dbscan_options opt;
        opt.eps = eps;
        opt.min_samples = min_samples;
        const fe::clustering c = fe::dbscan(x, opt);
        const auto want = reference_dbscan(x, eps, min_samples);
        SCOPED_TRACE("seed " + std::to_string(seed) + " eps " + std::to_string(eps) + " min_samples " +
                     std::to_string(min_samples));
        expect_same_partition(c.labels, want);
        expect_canonical(c);
        clusters_seen += c.clusters.size() > 1;
        noise_seen += !c.noise.empty();
        const auto graph = fe::radius_neighbors(x, eps);
        for (std::size_t i = 0; i < graph.size(); ++i)
          borders_seen += c.labels[i] >= 0 && static_cast<std::int64_t>(graph[i].size()) + 1 < min_samples;
      }
  // The grid must exercise what it claims to: several clusters, noise, and border points.
  EXPECT_GT(clusters_seen, 20);
  EXPECT_GT(noise_seen, 20);
  EXPECT_GT(borders_seen, 20);
}

TEST(cluster, dbscan_border_point_joins_nearest_core) {
  // Two dense groups on a line and a non-core point between them, within eps of a core point of
  // each (0.38 from the left group, 0.42 from the right one): it joins the nearer group whatever
  // the row order, where a scan-order DBSCAN gives it to whichever group it reaches first.
  const std::vector<float> xs = {0.0f, 0.05f, 0.1f, 0.15f, 0.2f, 0.58f, 1.0f, 1.05f, 1.1f, 1.15f, 1.2f};
  const int n = static_cast<int>(xs.size());
  for (int rotate = 0; rotate < n; ++rotate) {
    Tensor<float> x({n, 1});
    for (int i = 0; i < n; ++i) x(i, 0) = xs[static_cast<std::size_t>((i + rotate) % n)];
    const auto row_of = [&](int original) { return static_cast<std::size_t>((original - rotate + n) % n); };
    fe::dbscan_options opt;
    opt.eps = 0.45;
    opt.min_samples = 5;
    const fe::clustering c = fe::dbscan(x, opt);
    ASSERT_EQ(c.clusters.size(), 2u) << "rotation " << rotate;
    EXPECT_TRUE(c.noise.empty());
    EXPECT_EQ(c.labels[row_of(5)], c.labels[row_of(0)]) << "rotation " << rotate;
    EXPECT_NE(c.labels[row_of(5)], c.labels[row_of(6)]) << "rotation " << rotate;
    expect_same_partition(c.labels, [&] {
      std::vector<std::int64_t> want(static_cast<std::size_t>(n));
      for (int i = 0; i < n; ++i) want[row_of(i)] = i <= 5 ? 0 : 1;
      return want;
    }());
  }
}

TEST(cluster, chinese_whispers_is_not_connected_components) {
  // Two cliques of 6 joined by a single edge: thresholding alone (connected components) merges them,
  // the whispers keep them apart.
  Tensor<float> x({12, 1});
  for (int i = 0; i < 6; ++i) x(i, 0) = 0.1f * static_cast<float>(i), x(6 + i, 0) = 1.4f + 0.1f * static_cast<float>(i);
  fe::dbscan_options components;
  components.eps = 0.95;
  components.min_samples = 1;
  EXPECT_EQ(fe::dbscan(x, components).clusters.size(), 1u);
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    fe::chinese_whispers_options opt;
    opt.threshold = 0.95;
    opt.seed = seed;
    const fe::clustering c = fe::chinese_whispers(x, opt);
    EXPECT_EQ(c.clusters.size(), 2u) << "seed " << seed;
    expect_same_partition(c.labels, {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1});
  }
}

TEST(cluster, deterministic_for_a_seed_and_any_thread_count) {
  const blobs b = make_blobs(7, 5, 6, 3);
  fe::chinese_whispers_options opt;
  opt.threshold = 0.7;
  opt.seed = 3;
  const int saved = facenet::parallel::max_threads();
  facenet::parallel::set_num_threads(1);
  const fe::clustering one = fe::chinese_whispers(b.points, opt);
  const fe::clustering d_one = fe::dbscan(b.points);
  facenet::parallel::set_num_threads(2);
  const fe::clustering two = fe::chinese_whispers(b.points, opt);
  const fe::clustering d_two = fe::dbscan(b.points);
  facenet::parallel::set_num_threads(saved);
  EXPECT_EQ(one.labels, two.labels);
  EXPECT_EQ(one.labels, fe::chinese_whispers(b.points, opt).labels);
  EXPECT_EQ(d_one.labels, d_two.labels);
}

TEST(cluster, edge_cases) {
  const Tensor<float> none({0, 8});
  for (const fe::clustering& c : {fe::chinese_whispers(none), fe::dbscan(none)}) {
    EXPECT_TRUE(c.labels.empty());
    EXPECT_TRUE(c.clusters.empty());
    EXPECT_TRUE(c.noise.empty());
  }
  const Tensor<float> one = Tensor<float>::full({1, 8}, 0.25f);
  EXPECT_EQ(fe::chinese_whispers(one).labels, std::vector<std::int64_t>{0});
  fe::dbscan_options alone;
  alone.min_samples = 1;
  EXPECT_EQ(fe::dbscan(one, alone).labels, std::vector<std::int64_t>{0});
  EXPECT_EQ(fe::dbscan(one).labels, std::vector<std::int64_t>{-1});  // min_samples 3 > 1 row

  const Tensor<double> same = Tensor<double>::full({9, 4}, 0.5);
  fe::chinese_whispers_options zero;
  zero.threshold = 0;  // "distance <= threshold": identical rows still link
  EXPECT_EQ(fe::chinese_whispers(same, zero).labels, std::vector<std::int64_t>(9, 0));
  fe::dbscan_options dzero;
  dzero.eps = 0;
  EXPECT_EQ(fe::dbscan(same, dzero).labels, std::vector<std::int64_t>(9, 0));

  // Threshold 0 on distinct rows: every row alone, except the exact duplicates.
  Tensor<float> x({5, 2});
  const float v[5][2] = {{0, 0}, {1, 0}, {0, 0}, {0, 1e-7f}, {1, 0}};
  for (int i = 0; i < 5; ++i) x(i, 0) = v[i][0], x(i, 1) = v[i][1];
  const fe::clustering c = fe::chinese_whispers(x, zero);
  EXPECT_EQ(c.labels, (std::vector<std::int64_t>{0, 1, 0, 2, 1}));
  expect_canonical(c);
  EXPECT_EQ(fe::dbscan(x, dzero).labels, (std::vector<std::int64_t>{-1, -1, -1, -1, -1}));

  // No iterations: nothing moves, every row is its own cluster.
  fe::chinese_whispers_options still;
  still.iterations = 0;
  EXPECT_EQ(fe::chinese_whispers(same, still).clusters.size(), 9u);
}

TEST(cluster, bad_input_is_a_clear_error) {
  const auto expect_error = [](auto&& f, facenet::error_kind kind, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error; expected one mentioning '" << needle << "'";
    } catch (const facenet::error& e) {
      EXPECT_EQ(e.kind(), kind) << e.what();
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  using facenet::error_kind;
  expect_error([] { fe::chinese_whispers(Tensor<float>({6})); }, error_kind::shape, "N x D matrix, got [6]");
  expect_error([] { fe::dbscan(Tensor<float>({2, 3, 4})); }, error_kind::shape, "N x D matrix");
  expect_error([] { fe::dbscan(Tensor<float>({3, 0})); }, error_kind::shape, "width 0");
  Tensor<float> nan({4, 3});
  nan(2, 1) = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { fe::chinese_whispers(nan); }, error_kind::numeric, "row 2 has a non-finite value at column 1");
  nan(2, 1) = std::numeric_limits<float>::infinity();
  expect_error([&] { fe::dbscan(nan); }, error_kind::numeric, "row 2");
  const Tensor<float> ok({4, 3});
  expect_error([&] { fe::chinese_whispers(ok, {-0.5, 100, 0}); }, error_kind::argument, "threshold must be");
  expect_error([&] { fe::chinese_whispers(ok, {std::nan(""), 100, 0}); }, error_kind::argument, "threshold must be");
  expect_error([&] { fe::chinese_whispers(ok, {1.0, -1, 0}); }, error_kind::argument, "iterations must be >= 0");
  expect_error([&] { fe::dbscan(ok, {-1.0, 3}); }, error_kind::argument, "eps must be");
  expect_error([&] { fe::dbscan(ok, {1.0, 0}); }, error_kind::argument, "min_samples must be >= 1, got 0");
}
