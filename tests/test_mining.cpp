// Online mining strategies checked against brute-force definitions on random and hand-made batches.
#include <algorithm>
#include <random>
#include <set>
#include <vector>

#include "facenet/kernels/triplet.hpp"
#include "facenet/loss/mining.hpp"
#include "testing.hpp"

using facenet::Tensor;
using facenet::kernels::triplet;
using namespace facenet::loss;

namespace {

struct batch {
  Tensor<double> dist;
  std::vector<int> labels;
};

// P identities x K images of random unit-ish embeddings, plus `singles` identities with one image.
batch make_batch(int p, int k, int singles, std::uint32_t seed) {
  batch b;
  for (int i = 0; i < p; ++i)
    for (int j = 0; j < k; ++j) b.labels.push_back(i);
  for (int s = 0; s < singles; ++s) b.labels.push_back(p + s);
  const auto n = static_cast<std::int64_t>(b.labels.size());
  const Tensor<double> e = facenet::testing::random_tensor<double>({n, 8}, seed);
  facenet::kernels::pairwise_squared_distance_forward(e, b.dist);
  return b;
}

double hinge(const batch& b, const triplet& t, double alpha) {
  return b.dist(t.anchor, t.positive) - b.dist(t.anchor, t.negative) + alpha;
}

void expect_valid(const batch& b, const mining_result& r) {
  for (const triplet& t : r.triplets) {
    EXPECT_NE(t.anchor, t.positive);
    EXPECT_EQ(b.labels[t.anchor], b.labels[t.positive]);
    EXPECT_NE(b.labels[t.anchor], b.labels[t.negative]);
  }
}

mining_result mine(const batch& b, mining_strategy s, double alpha = 0.2, std::uint64_t seed = 3) {
  std::mt19937_64 rng(seed);
  return mine_triplets(b.dist, b.labels, {s, alpha}, rng);
}

}  // namespace

TEST(mining, batch_all_selects_exactly_the_violating_triplets) {
  const batch b = make_batch(4, 3, 2, 1);
  const auto r = mine(b, mining_strategy::batch_all, 0.5);
  expect_valid(b, r);
  std::int64_t valid = 0, violating = 0;
  const auto n = static_cast<std::int64_t>(b.labels.size());
  for (std::int64_t a = 0; a < n; ++a)
    for (std::int64_t p = 0; p < n; ++p)
      for (std::int64_t ng = 0; ng < n; ++ng)
        if (a != p && b.labels[a] == b.labels[p] && b.labels[ng] != b.labels[a]) {
          ++valid;
          violating += hinge(b, {a, p, ng}, 0.5) > 0;
        }
  EXPECT_EQ(r.candidates, valid);
  EXPECT_EQ(r.active, violating);
  EXPECT_EQ(static_cast<std::int64_t>(r.triplets.size()), violating);
  for (const triplet& t : r.triplets) EXPECT_GT(hinge(b, t, 0.5), 0);
  EXPECT_DOUBLE_EQ(r.active_fraction, static_cast<double>(violating) / valid);
}

TEST(mining, semi_hard_picks_closest_negative_beyond_the_positive) {
  const batch b = make_batch(3, 4, 1, 2);
  const auto r = mine(b, mining_strategy::semi_hard);
  expect_valid(b, r);
  EXPECT_EQ(r.triplets.size(), 3u * 4 * 3);  // every ordered anchor-positive pair
  for (const triplet& t : r.triplets) {
    const double ap = b.dist(t.anchor, t.positive), an = b.dist(t.anchor, t.negative);
    bool any_beyond = false;
    for (std::size_t k = 0; k < b.labels.size(); ++k) {
      if (b.labels[k] == b.labels[t.anchor]) continue;
      const double d = b.dist(t.anchor, k);
      any_beyond |= d > ap;
      if (an > ap) {
        EXPECT_FALSE(d > ap && d < an) << "a closer semi-hard negative exists";
      }
    }
    if (!any_beyond) {
      for (std::size_t k = 0; k < b.labels.size(); ++k)
        if (b.labels[k] != b.labels[t.anchor]) {
          EXPECT_GE(an, b.dist(t.anchor, k));
        }
    }
  }
}

TEST(mining, batch_hard_one_triplet_per_anchor_hardest_pair) {
  const batch b = make_batch(4, 3, 3, 4);
  const auto r = mine(b, mining_strategy::batch_hard);
  expect_valid(b, r);
  ASSERT_EQ(r.triplets.size(), 12u);  // single-image identities are negatives only
  for (const triplet& t : r.triplets)
    for (std::size_t k = 0; k < b.labels.size(); ++k) {
      if (static_cast<std::int64_t>(k) == t.anchor) continue;
      if (b.labels[k] == b.labels[t.anchor]) {
        EXPECT_LE(b.dist(t.anchor, k), b.dist(t.anchor, t.positive));
      } else {
        EXPECT_GE(b.dist(t.anchor, k), b.dist(t.anchor, t.negative));
      }
    }
}

TEST(mining, random_negative_inside_margin_is_seeded) {
  const batch b = make_batch(4, 4, 2, 5);
  const auto r = mine(b, mining_strategy::random_negative, 0.3, 9);
  expect_valid(b, r);
  std::set<std::pair<std::int64_t, std::int64_t>> pairs;
  for (const triplet& t : r.triplets) {
    EXPECT_LT(t.anchor, t.positive);
    EXPECT_LT(b.dist(t.anchor, t.negative) - b.dist(t.anchor, t.positive), 0.3);
    EXPECT_TRUE(pairs.insert({t.anchor, t.positive}).second) << "one negative per pair";
  }
  EXPECT_EQ(mine(b, mining_strategy::random_negative, 0.3, 9).triplets, r.triplets);
  const auto other = mine(b, mining_strategy::random_negative, 0.3, 10);
  EXPECT_NE(other.triplets, r.triplets);
  EXPECT_EQ(other.triplets.size(), r.triplets.size());
}

TEST(mining, random_negative_skips_pairs_without_negative_inside_margin) {
  // Two tight clusters far apart: no negative within the margin, so no triplets.
  Tensor<double> e({4, 2});
  e(0, 0) = 0, e(1, 0) = 0.01, e(2, 0) = 10, e(3, 0) = 10.01;
  Tensor<double> dist;
  facenet::kernels::pairwise_squared_distance_forward(e, dist);
  std::mt19937_64 rng(1);
  const auto r = mine_triplets(dist, {0, 0, 1, 1}, {mining_strategy::random_negative, 0.2}, rng);
  EXPECT_TRUE(r.triplets.empty());
  EXPECT_EQ(r.active_fraction, 0.0);
  EXPECT_FALSE(r.collapsed);
}

TEST(mining, detects_collapse) {
  Tensor<double> e = Tensor<double>::full({6, 4}, 0.5);
  Tensor<double> dist;
  facenet::kernels::pairwise_squared_distance_forward(e, dist);
  std::mt19937_64 rng(1);
  const auto r = mine_triplets(dist, {0, 0, 1, 1, 2, 2}, {mining_strategy::batch_hard, 0.2}, rng);
  EXPECT_TRUE(r.collapsed);
  EXPECT_EQ(r.mean_distance, 0.0);
  EXPECT_DOUBLE_EQ(r.active_fraction, 1.0);  // every triplet sits at loss = alpha
  const batch spread = make_batch(3, 2, 0, 6);
  EXPECT_FALSE(mine(spread, mining_strategy::batch_hard).collapsed);
}

TEST(mining, rejects_bad_input_and_parses_names) {
  std::mt19937_64 rng(1);
  Tensor<double> d({3, 3});
  EXPECT_THROW(mine_triplets(d, {0, 1}, {}, rng), facenet::shape_error);
  Tensor<double> r({3, 2});
  EXPECT_THROW(mine_triplets(r, {0, 1, 2}, {}, rng), facenet::shape_error);
  EXPECT_THROW(mine_triplets(d, {0, 1, 2}, {mining_strategy::semi_hard, -1.0}, rng), facenet::argument_error);
  EXPECT_EQ(parse_mining_strategy("batch-all"), mining_strategy::batch_all);
  EXPECT_EQ(parse_mining_strategy("random"), mining_strategy::random_negative);
  EXPECT_THROW(parse_mining_strategy("hardest"), facenet::argument_error);
}
