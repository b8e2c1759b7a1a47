// Triplet loss kernels: SIMD/OpenMP path against the scalar twin, finite-difference gradients in
// double (directly and through an L2 normalization), and the objective wrapper.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "facenet/kernels/l2_normalize.hpp"
#include "facenet/kernels/reference/triplet.hpp"
#include "facenet/kernels/triplet.hpp"
#include "facenet/loss/triplet.hpp"
#include "testing.hpp"

namespace fk = facenet::kernels;
using facenet::Tensor;
using facenet::kernels::triplet;
using facenet::testing::max_abs_diff;
using facenet::testing::random_tensor;

namespace {

std::vector<triplet> random_triplets(std::int64_t n, std::int64_t m, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<std::int64_t> pick(0, n - 1);
  std::vector<triplet> t;
  for (std::int64_t i = 0; i < m; ++i) t.push_back({pick(rng), pick(rng), pick(rng)});
  return t;
}

}  // namespace

class triplet_sizes : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(triplet_sizes, simd_matches_reference) {
  const auto [n, d] = GetParam();
  const Tensor<float> e = random_tensor<float>({n, d}, 7 + n + d);
  Tensor<float> dist, dist_ref, per, per_ref, g, g_ref;
  fk::pairwise_squared_distance_forward(e, dist);
  fk::reference::pairwise_squared_distance_forward(e, dist_ref);
  EXPECT_LE(max_abs_diff(dist, dist_ref), 1e-4);
  // Few triplets (per-row backward) and many (pair-weight backward); a margin that leaves some
  // triplets active and some not.
  for (const std::int64_t m : {std::int64_t(n / 3 + 1), std::int64_t(n * n + 5)}) {
    const auto trip = random_triplets(n, m, 11);
    const float l = fk::triplet_loss_forward(e, trip, 0.2f, per);
    const float l_ref = fk::reference::triplet_loss_forward(e, trip, 0.2f, per_ref);
    EXPECT_NEAR(l, l_ref, 1e-4);
    EXPECT_LE(max_abs_diff(per, per_ref), 1e-4);
    fk::triplet_loss_backward(e, trip, per, 1.5f, g);
    fk::reference::triplet_loss_backward(e, trip, per_ref, 1.5f, g_ref);
    EXPECT_LE(facenet::testing::max_rel_diff(g, g_ref), 1e-5) << m << " triplets";
  }
}

INSTANTIATE_TEST_SUITE_P(odd_and_even, triplet_sizes,
                         ::testing::Values(std::pair{1, 1}, std::pair{3, 5}, std::pair{7, 13}, std::pair{24, 128},
                                           std::pair{33, 131}));

TEST(triplet_loss, hand_computed_value_and_mean_over_all_triplets) {
  // e0 = (0,0), e1 = (1,0), e2 = (0,2): |e0-e1|^2 = 1, |e0-e2|^2 = 4, |e1-e2|^2 = 5.
  Tensor<double> e({3, 2});
  e(1, 0) = 1;
  e(2, 1) = 2;
  const std::vector<triplet> t = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}};
  Tensor<double> per;
  const double l = fk::triplet_loss_forward(e, t, 0.2, per);
  EXPECT_DOUBLE_EQ(per(0), 0.0);              // 1 - 4 + 0.2 < 0
  EXPECT_NEAR(per(1), 4 - 1 + 0.2, 1e-12);    // active
  EXPECT_DOUBLE_EQ(per(2), 0.0);              // 1 - 5 + 0.2 < 0
  EXPECT_NEAR(l, 3.2 / 3, 1e-12);             // inactive triplets count in the mean
  Tensor<double> g;
  fk::triplet_loss_backward(e, t, per, 1.0, g);
  // Only triplet 1 (a=0, p=2, n=1): da = 2/3 (n-p), dp = 2/3 (p-a), dn = 2/3 (a-n).
  EXPECT_NEAR(g(0, 0), 2.0 / 3 * 1, 1e-12);
  EXPECT_NEAR(g(0, 1), 2.0 / 3 * -2, 1e-12);
  EXPECT_NEAR(g(2, 1), 2.0 / 3 * 2, 1e-12);
  EXPECT_NEAR(g(1, 0), 2.0 / 3 * -1, 1e-12);
}

TEST(triplet_loss, gradient_check_double) {
  Tensor<double> e = random_tensor<double>({9, 7}, 3);
  for (const std::int64_t m : {20, 300}) {  // per-row and pair-weight backward paths
    const auto t = random_triplets(9, m, 5);
    Tensor<double> per, g;
    fk::triplet_loss_forward(e, t, 0.5, per);
    fk::triplet_loss_backward(e, t, per, 1.0, g);
    facenet::testing::check_gradient(
        e, g, [&] { Tensor<double> p; return fk::triplet_loss_forward(e, t, 0.5, p); }, "triplet", 1e-6);
  }
}

TEST(triplet_loss, gradient_check_through_l2_normalization) {
  // The training composition: embeddings = l2_normalize(x), gradient chained through
  // kernels::l2_normalize_backward.
  Tensor<double> x = random_tensor<double>({8, 6}, 21);
  const auto t = random_triplets(8, 24, 9);
  auto loss = [&] {
    Tensor<double> y, p;
    fk::l2_normalize_forward(x, y);
    return fk::triplet_loss_forward(y, t, 1.0, p);
  };
  Tensor<double> y, per, gy, gx;
  fk::l2_normalize_forward(x, y);
  fk::triplet_loss_forward(y, t, 1.0, per);
  fk::triplet_loss_backward(y, t, per, 1.0, gy);
  fk::l2_normalize_backward(gy, x, gx);
  facenet::testing::check_gradient(x, gx, loss, "triplet through l2_normalize", 1e-6);
}

TEST(triplet_loss, rejects_bad_input) {
  Tensor<float> e({4, 3}), per, g;
  EXPECT_THROW(fk::triplet_loss_forward(e, {{0, 1, 4}}, 0.2f, per), facenet::argument_error);
  EXPECT_THROW(fk::triplet_loss_forward(e, {{-1, 1, 2}}, 0.2f, per), facenet::argument_error);
  Tensor<float> flat({12});
  EXPECT_THROW(fk::triplet_loss_forward(flat, {}, 0.2f, per), facenet::shape_error);
  Tensor<float> wrong({2});
  EXPECT_THROW(fk::triplet_loss_backward(e, {{0, 1, 2}}, wrong, 1.0f, g), facenet::shape_error);
  EXPECT_EQ(fk::triplet_loss_forward(e, {}, 0.2f, per), 0.0f);
  e(1, 2) = std::nanf("");  // a diverged network must not report a clean zero loss
  EXPECT_TRUE(std::isnan(fk::triplet_loss_forward(e, {{0, 1, 2}}, 0.2f, per)));
  EXPECT_TRUE(std::isnan(fk::reference::triplet_loss_forward(e, {{0, 1, 2}}, 0.2f, per)));
  std::mt19937_64 rng(1);
  facenet::loss::triplet_loss<float> obj;
  EXPECT_THROW(obj(e, {0, 0, 1, 1}, rng, g), facenet::numeric_error);
}

TEST(triplet_loss, objective_mines_and_differentiates) {
  // 4 identities x 3 images, embeddings normalized; batch-all selects only violating triplets.
  Tensor<double> e;
  fk::l2_normalize_forward(random_tensor<double>({12, 16}, 8), e);
  std::vector<int> labels;
  for (int i = 0; i < 12; ++i) labels.push_back(i / 3);
  facenet::loss::triplet_loss<double> obj({facenet::loss::mining_strategy::batch_all, 0.2});
  std::mt19937_64 rng(1);
  Tensor<double> g;
  const auto r = obj(e, labels, rng, g);
  ASSERT_FALSE(r.mining.triplets.empty());
  EXPECT_EQ(r.mining.active, static_cast<std::int64_t>(r.mining.triplets.size()));
  EXPECT_EQ(r.mining.candidates, 4 * 3 * 2 * 9);
  Tensor<double> per;
  EXPECT_NEAR(r.loss, fk::reference::triplet_loss_forward(e, r.mining.triplets, 0.2, per), 1e-12);
  EXPECT_GT(r.loss, 0.0);
  EXPECT_EQ(g.shape(), e.shape());
}

// The alternative objectives live here too: one loss test executable.
#include "facenet/loss/center_loss.hpp"
#include "facenet/loss/softmax_cross_entropy.hpp"

TEST(softmax_cross_entropy, hand_computed_and_gradient_checked) {
  Tensor<double> z({2, 3});
  z(0, 0) = 1, z(0, 1) = 2, z(0, 2) = 3;  // label 2
  z(1, 0) = 1000, z(1, 1) = 0, z(1, 2) = -1000;  // huge logits must not overflow; label 1
  const std::vector<int> y = {2, 1};
  Tensor<double> p, g;
  const auto s = facenet::loss::softmax_cross_entropy_forward(z, y, p);
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(s.loss, ((lse0 - 3) + 1000) / 2, 1e-9);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.5);
  Tensor<double> zs = facenet::testing::random_tensor<double>({5, 7}, 4, -3, 3);
  const std::vector<int> ys = {0, 6, 3, 3, 1};
  facenet::loss::softmax_cross_entropy_forward(zs, ys, p);
  facenet::loss::softmax_cross_entropy_backward(p, ys, 1.0, g);
  facenet::testing::check_gradient(zs, g, [&] { Tensor<double> q; return facenet::loss::softmax_cross_entropy_forward(zs, ys, q).loss; },
                                   "softmax_cross_entropy", 1e-7);
  EXPECT_THROW(facenet::loss::softmax_cross_entropy_forward(zs, {0, 1}, p), facenet::shape_error);
  EXPECT_THROW(facenet::loss::softmax_cross_entropy_forward(zs, {0, 7, 0, 0, 0}, p), facenet::argument_error);
}

TEST(center_loss, value_gradient_and_center_update) {
  facenet::loss::center_loss<double> cl(3, 4, 0.5);
  Tensor<double> f = facenet::testing::random_tensor<double>({6, 4}, 12);
  const std::vector<int> y = {0, 2, 2, 1, 0, 2};
  cl.centers() = facenet::testing::random_tensor<double>({3, 4}, 13);
  Tensor<double> g;
  const double l = cl.forward_backward(f, y, g);
  double expect = 0;
  for (int i = 0; i < 6; ++i)
    for (int k = 0; k < 4; ++k) expect += std::pow(f(i, k) - cl.centers()(y[i], k), 2) / 24;
  EXPECT_NEAR(l, expect, 1e-12);
  facenet::testing::check_gradient(f, g, [&] { Tensor<double> q; return cl.forward_backward(f, y, q); }, "center_loss", 1e-7);
  const Tensor<double> before = cl.centers().clone();
  cl.update(f, y);
  // Class 1 has one sample: its center moves halfway to it. Class 2 has three: the pulls add up.
  for (int k = 0; k < 4; ++k) {
    EXPECT_NEAR(cl.centers()(1, k), before(1, k) - 0.5 * (before(1, k) - f(3, k)), 1e-12);
    EXPECT_NEAR(cl.centers()(2, k), before(2, k) - 0.5 * (3 * before(2, k) - f(1, k) - f(2, k) - f(5, k)), 1e-12);
  }
  EXPECT_THROW(cl.forward_backward(Tensor<double>({6, 5}), y, g), facenet::shape_error);
  EXPECT_THROW(cl.update(f, {0, 0, 0, 0, 0, 3}), facenet::argument_error);
  EXPECT_THROW(facenet::loss::center_loss<double>(3, 4, 1.5), facenet::argument_error);
}

// The building blocks composed: a linear embedding trained with mined triplets, Adam and a cosine
// schedule on synthetic identities, evaluated with the LFW protocol on held-out identities.
#include "facenet/eval/lfw.hpp"
#include "facenet/optim/adam.hpp"
#include "facenet/optim/schedule.hpp"

namespace {

struct toy_identities {
  std::vector<std::vector<double>> centre;  // per identity, in input space
  double noise = 0.9;
};

// Input vectors: identity centre + isotropic noise, with a shared nuisance direction that dominates
// the raw distance so the untrained (random) projection verifies poorly.
std::vector<double> toy_input(const toy_identities& ids, int id, std::mt19937& rng) {
  std::normal_distribution<double> g(0, 1);
  std::vector<double> x(ids.centre[id]);
  const double nuisance = 4 * g(rng);
  for (std::size_t k = 0; k < x.size(); ++k) x[k] += ids.noise * g(rng) + (k < 4 ? nuisance : 0);
  return x;
}

// embeddings = l2_normalize(x W^T); `pre` receives x W^T for the backward pass.
Tensor<float> embed(const Tensor<float>& w, const std::vector<std::vector<double>>& xs, Tensor<float>* pre = nullptr) {
  const std::int64_t n = static_cast<std::int64_t>(xs.size()), d = w.size(0), in = w.size(1);
  Tensor<float> z({n, d}), e;
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < d; ++j) {
      double v = 0;
      for (std::int64_t k = 0; k < in; ++k) v += w(j, k) * xs[i][k];
      z(i, j) = static_cast<float>(v);
    }
  fk::l2_normalize_forward(z, e);
  if (pre) *pre = z;
  return e;
}

}  // namespace

TEST(triplet_training, loss_falls_and_held_out_verification_improves) {
  std::mt19937 rng(4);
  std::normal_distribution<double> g(0, 1);
  toy_identities ids;
  for (int i = 0; i < 40; ++i) {
    ids.centre.emplace_back(24);
    for (double& c : ids.centre.back()) c = 1.2 * g(rng);
  }
  // Held-out verification pairs from identities 30..39.
  std::vector<std::vector<double>> pair_inputs;
  std::vector<bool> same;
  for (int p = 0; p < 400; ++p) {
    const int a = 30 + p % 10, b = p % 2 ? a : 30 + (p % 10 + 1 + p / 10 % 9) % 10;
    pair_inputs.push_back(toy_input(ids, a, rng));
    pair_inputs.push_back(toy_input(ids, b, rng));
    same.push_back(a == b);
  }
  Tensor<float> w = facenet::testing::random_tensor<float>({8, 24}, 5, -0.3, 0.3), gw({8, 24});
  const double before = facenet::eval::evaluate_lfw(embed(w, pair_inputs), same).accuracy;

  facenet::optim::adam opt({{"embed.weight", w, gw}}, {1e-2, 0.9, 0.999, 1e-8, 0.0, false});
  const auto schedule = facenet::optim::cosine_schedule(2e-2, 150, 1e-4, 10);
  facenet::loss::triplet_loss<float> objective({facenet::loss::mining_strategy::batch_all, 0.2});
  std::mt19937_64 mining_rng(1);
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    std::vector<std::vector<double>> xs;
    std::vector<int> labels;
    for (int p = 0; p < 6; ++p) {
      const int id = (step * 6 + p) % 30;  // training identities 0..29 only
      for (int k = 0; k < 4; ++k) xs.push_back(toy_input(ids, id, rng)), labels.push_back(id);
    }
    Tensor<float> z, ge;
    const Tensor<float> e = embed(w, xs, &z);
    const auto r = objective(e, labels, mining_rng, ge);
    ASSERT_FALSE(r.mining.collapsed) << "step " << step;
    if (step < 10) first += r.loss / 10;
    if (step >= 140) last += r.loss / 10;
    // Back through the normalization and the projection.
    Tensor<float> gz;
    fk::l2_normalize_backward(ge, z, gz);
    gw.zero();
    for (std::int64_t i = 0; i < e.size(0); ++i)
      for (std::int64_t j = 0; j < 8; ++j)
        for (std::int64_t k = 0; k < 24; ++k) gw(j, k) += static_cast<float>(gz(i, j) * xs[i][k]);
    opt.set_lr(schedule.lr(step));
    opt.step();
  }
  const double after = facenet::eval::evaluate_lfw(embed(w, pair_inputs), same).accuracy;
  std::printf("toy training: loss %.4f -> %.4f, held-out accuracy %.3f -> %.3f\n", first, last, before, after);
  EXPECT_LT(last, 0.5 * first) << "mean loss of the first 10 steps " << first << ", last 10 " << last;
  EXPECT_GT(after, before + 0.15) << "held-out accuracy " << before << " -> " << after;
  EXPECT_GT(after, 0.8);
}
