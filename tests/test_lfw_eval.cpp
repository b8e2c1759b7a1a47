// LFW evaluation: pairs-file parsing (View 1 and View 2), and the metrics against a numpy
// re-computation of davidsandberg's calculate_roc / calculate_val / validate_on_lfw (AUC, EER) run
// by Debian's python3 at test time (skipped when it or numpy is missing).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "facenet/eval/lfw.hpp"
#include "testing.hpp"

using namespace facenet::eval;
using facenet::Tensor;
namespace fs = std::filesystem;

namespace {

// numpy transcription of the published algorithms (sklearn/scipy are not installed, so KFold,
// interp1d(kind='slinear') and brentq are spelled out).
const char* reference_py = R"PY(
import sys, numpy as np
def kfold(n, k):
    sizes = np.full(k, n // k); sizes[:n % k] += 1; start = 0
    for s in sizes:
        test = np.arange(start, start + s); train = np.setdiff1d(np.arange(n), test); start += s
        yield train, test
def acc(th, d, same):
    p = np.less(d, th)
    tp = np.sum(p & same); fp = np.sum(p & ~same); tn = np.sum(~p & ~same); fn = np.sum(~p & same)
    tpr = 0 if tp + fn == 0 else tp / (tp + fn); fpr = 0 if fp + tn == 0 else fp / (fp + tn)
    return tpr, fpr, (tp + tn) / d.size
def val_far(th, d, same):
    p = np.less(d, th)
    return np.sum(p & same) / np.sum(same), np.sum(p & ~same) / np.sum(~same)
def slinear(x, y, t):  # scipy interp1d kind='slinear': B-spline of degree 1 with knots [x0, x..., xn]
    if t >= x[-1]: return y[np.searchsorted(x, x[-1], 'left')]
    l = np.searchsorted(x, t, 'right') - 1
    return y[l] + (t - x[l]) * (y[l + 1] - y[l]) / (x[l + 1] - x[l])
def dist_of(e1, e2, metric):
    if metric == 0: return np.sum(np.square(e1 - e2), 1)
    sim = np.sum(e1 * e2, 1) / (np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1))
    return np.arccos(np.clip(sim, -1, 1)) / np.pi
def run(e1, e2, same, folds, metric, subtract_mean):
    n = len(same); th = np.arange(0, 4, 0.01); tprs = np.zeros((folds, len(th))); fprs = np.zeros((folds, len(th)))
    accs = np.zeros(folds); best = np.zeros(folds)
    th2 = np.arange(0, 4, 0.001); val = np.zeros(folds); far = np.zeros(folds)
    for f, (tr, te) in enumerate(kfold(n, folds)):
        mean = np.mean(np.concatenate([e1[tr], e2[tr]]), axis=0) if subtract_mean else 0.0
        d = dist_of(e1 - mean, e2 - mean, metric)
        a = np.mean(np.less(d[tr][None, :], th[:, None]) == same[tr][None, :], 1); b = np.argmax(a); best[f] = th[b]
        for i, t in enumerate(th): tprs[f, i], fprs[f, i], _ = acc(t, d[te], same[te])
        accs[f] = acc(th[b], d[te], same[te])[2]
        neg = ~same[tr]; ft = np.sum(np.less(d[tr][neg][None, :], th2[:, None]), 1) / np.sum(neg)
        t = slinear(ft, th2, 1e-3) if np.max(ft) >= 1e-3 else 0.0
        val[f], far[f] = val_far(t, d[te], same[te])
    tpr = np.mean(tprs, 0); fpr = np.mean(fprs, 0)
    g = lambda x: 1. - x - np.interp(x, fpr, tpr)
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if g(mid) > 0: lo = mid
        else: hi = mid
    out = [np.mean(accs), np.std(accs), np.mean(val), np.std(val), np.mean(far), np.trapz(tpr, fpr), lo, np.mean(best)]
    print(' '.join('%.17g' % v for v in out)); print(' '.join('%.17g' % v for v in tpr)); print(' '.join('%.17g' % v for v in fpr))
rows = np.loadtxt(sys.argv[1], ndmin=2); folds, metric, sub = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
same = rows[:, 0] > 0.5; e = rows[:, 1:]; d = e.shape[1] // 2
run(e[:, :d], e[:, d:], same, folds, metric, sub)
)PY";

struct reference_run {
  std::vector<double> summary, tpr, fpr;
};

std::vector<double> parse_line(std::istream& in) {
  std::string line;
  std::getline(in, line);
  std::istringstream s(line);
  std::vector<double> v;
  for (double x; s >> x;) v.push_back(x);
  return v;
}

// Rows: same flag, then the two embeddings of the pair side by side.
bool run_reference(const Tensor<double>& e1, const Tensor<double>& e2, const std::vector<bool>& same, int folds, int metric,
                   bool subtract_mean, reference_run& out) {
  if (!fs::exists("/usr/bin/python3")) return false;
  const fs::path dir = fs::temp_directory_path() / ("facenet_lfw_eval_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "ref.py") << reference_py;
  {
    std::ofstream rows(dir / "rows.txt");
    rows.precision(17);
    for (std::size_t i = 0; i < same.size(); ++i) {
      rows << (same[i] ? 1 : 0);
      for (std::int64_t k = 0; k < e1.size(1); ++k) rows << ' ' << e1(i, k);
      for (std::int64_t k = 0; k < e2.size(1); ++k) rows << ' ' << e2(i, k);
      rows << '\n';
    }
  }
  const std::string cmd = "/usr/bin/python3 " + (dir / "ref.py").string() + " " + (dir / "rows.txt").string() + " " +
                          std::to_string(folds) + " " + std::to_string(metric) + " " + std::to_string(subtract_mean) + " > " +
                          (dir / "out.txt").string() + " 2>&1";
  const int rc = std::system(cmd.c_str());
  std::ifstream in(dir / "out.txt");
  out.summary = parse_line(in), out.tpr = parse_line(in), out.fpr = parse_line(in);
  fs::remove_all(dir);
  return rc == 0 && out.summary.size() == 8;
}

// Pairs whose embeddings are closer for same-person pairs, with heavy overlap so no threshold is perfect.
void synthetic(std::int64_t n, std::int64_t d, std::uint32_t seed, Tensor<double>& e1, Tensor<double>& e2, std::vector<bool>& same) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> g(0, 1);
  e1 = Tensor<double>({n, d}), e2 = Tensor<double>({n, d});
  same.clear();
  for (std::int64_t i = 0; i < n; ++i) {
    const bool s = (i / 7) % 2 == 0;  // blocks of 7 so folds hold both classes unevenly
    same.push_back(s);
    double n1 = 0, n2 = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      e1(i, k) = g(rng) + 0.3;
      e2(i, k) = (s ? 0.55 * e1(i, k) : 0.0) + g(rng);
      n1 += e1(i, k) * e1(i, k), n2 += e2(i, k) * e2(i, k);
    }
    for (std::int64_t k = 0; k < d; ++k) e1(i, k) /= std::sqrt(n1), e2(i, k) /= std::sqrt(n2);
  }
}

Tensor<double> interleave(const Tensor<double>& e1, const Tensor<double>& e2) {
  Tensor<double> e({2 * e1.size(0), e1.size(1)});
  for (std::int64_t i = 0; i < e1.size(0); ++i)
    for (std::int64_t k = 0; k < e1.size(1); ++k) e(2 * i, k) = e1(i, k), e(2 * i + 1, k) = e2(i, k);
  return e;
}

void compare_with_reference(std::int64_t n, int folds, distance_metric metric, bool subtract_mean, std::uint32_t seed) {
  Tensor<double> e1, e2;
  std::vector<bool> same;
  synthetic(n, 6, seed, e1, e2, same);
  reference_run ref;
  if (!run_reference(e1, e2, same, folds, metric == distance_metric::cosine, subtract_mean, ref))
    GTEST_SKIP() << "SKIPPED: /usr/bin/python3 with numpy not available";
  const lfw_metrics m = evaluate_lfw(interleave(e1, e2), same, {folds, metric, subtract_mean, 1e-3});
  EXPECT_NEAR(m.accuracy, ref.summary[0], 1e-12);
  EXPECT_NEAR(m.accuracy_std, ref.summary[1], 1e-12);
  EXPECT_NEAR(m.val, ref.summary[2], 1e-12);
  EXPECT_NEAR(m.val_std, ref.summary[3], 1e-12);
  EXPECT_NEAR(m.far, ref.summary[4], 1e-12);
  EXPECT_NEAR(m.auc, ref.summary[5], 1e-12);
  EXPECT_NEAR(m.eer, ref.summary[6], 1e-9);
  EXPECT_NEAR(m.threshold, ref.summary[7], 1e-12);
  ASSERT_EQ(ref.tpr.size(), m.roc.tpr.size());
  for (std::size_t i = 0; i < ref.tpr.size(); ++i) {
    EXPECT_NEAR(m.roc.tpr[i], ref.tpr[i], 1e-12) << i;
    EXPECT_NEAR(m.roc.fpr[i], ref.fpr[i], 1e-12) << i;
  }
  // Sanity: the synthetic task is learnable but not trivially separable.
  EXPECT_GT(m.accuracy, 0.6);
  EXPECT_LT(m.accuracy, 0.999);
}

fs::path write_temp(const std::string& name, const std::string& text) {
  const fs::path p = fs::temp_directory_path() / ("facenet_" + std::to_string(::getpid()) + "_" + name);
  std::ofstream(p) << text;
  return p;
}

}  // namespace

TEST(lfw_eval, squared_l2_matches_numpy_reference) { compare_with_reference(600, 10, distance_metric::squared_l2, false, 1); }
TEST(lfw_eval, uneven_folds_match_numpy_reference) { compare_with_reference(1003, 10, distance_metric::squared_l2, false, 2); }
TEST(lfw_eval, cosine_with_mean_subtraction_matches_numpy_reference) {
  compare_with_reference(400, 10, distance_metric::cosine, true, 3);
}

TEST(lfw_eval, kfold_is_sklearn_contiguous) {
  const auto f = kfold(23, 10);
  ASSERT_EQ(f.size(), 10u);
  EXPECT_EQ(f[0].test, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(f[2].test, (std::vector<std::size_t>{6, 7, 8}));
  EXPECT_EQ(f[3].test, (std::vector<std::size_t>{9, 10}));
  EXPECT_EQ(f[9].test, (std::vector<std::size_t>{21, 22}));
  EXPECT_EQ(f[9].train.size(), 21u);
  EXPECT_THROW(kfold(5, 10), facenet::argument_error);
}

TEST(lfw_eval, slinear_interpolation_with_duplicates) {
  const std::vector<double> x = {0, 0, 0.5, 0.5, 1, 1}, y = {0, 1, 2, 3, 4, 5};
  EXPECT_DOUBLE_EQ(interp_slinear(x, y, 0.25), 1 + 0.5 * (2 - 1));  // last 0 -> first 0.5
  EXPECT_DOUBLE_EQ(interp_slinear(x, y, 0.5), 3);                   // exact: last of the run
  EXPECT_DOUBLE_EQ(interp_slinear(x, y, 1), 4);                     // right end: first of the run
  EXPECT_THROW(interp_slinear(x, y, -0.1), facenet::argument_error);
}

TEST(lfw_eval, auc_and_eer_hand_computed) {
  EXPECT_DOUBLE_EQ(auc({0, 0.5, 1}, {0, 1, 1}), 0.75);
  EXPECT_DOUBLE_EQ(auc({1, 0.5, 0}, {1, 1, 0}), 0.75);
  EXPECT_THROW(auc({0, 1, 0.5}, {0, 1, 1}), facenet::argument_error);
  // ROC through (0,0) (0.2,0.6) (1,1): on the second segment tpr = 0.6 + 0.5 (fpr - 0.2), so
  // fpr + tpr = 1 at fpr = 1/3.
  EXPECT_NEAR(equal_error_rate({0, 0.2, 1}, {0, 0.6, 1}), 1.0 / 3, 1e-15);
  EXPECT_DOUBLE_EQ(equal_error_rate({0, 0.1, 0.1, 1}, {0, 0.2, 0.95, 1}), 0.1);  // vertical crossing
}

TEST(lfw_eval, distances_and_flip_combination) {
  Tensor<float> a({2, 2}), b({2, 2});
  a(0, 0) = 1, b(0, 1) = 1;  // orthogonal: squared L2 2, cosine 1/2
  a(1, 0) = 2, b(1, 0) = 3;  // parallel: squared L2 1, cosine 0
  const auto l2 = pair_distances(a, b, distance_metric::squared_l2);
  const auto cs = pair_distances(a, b, distance_metric::cosine);
  EXPECT_DOUBLE_EQ(l2[0], 2);
  EXPECT_DOUBLE_EQ(l2[1], 1);
  EXPECT_NEAR(cs[0], 0.5, 1e-12);
  EXPECT_NEAR(cs[1], 0.0, 1e-7);
  const auto cat = combine_flipped(a, b, flip_mode::concat);
  EXPECT_EQ(cat.shape(), (facenet::shape{2, 4}));
  EXPECT_EQ(cat(1, 2), 3.0f);
  const auto sum = combine_flipped(a, b, flip_mode::sum);
  EXPECT_EQ(sum(0, 1), 1.0f);
  EXPECT_THROW(pair_distances(a, Tensor<float>({3, 2}), distance_metric::cosine), facenet::shape_error);
  EXPECT_EQ(parse_distance_metric("cosine"), distance_metric::cosine);
  EXPECT_THROW(parse_distance_metric("manhattan"), facenet::argument_error);
}

TEST(lfw_eval, reads_view2_pairs) {
  const auto p = write_temp("pairs.txt", "2 1\nA\t1\t2\nB 1 C 3\nD 4 5\r\nE 1 F 1\n");
  const lfw_pairs r = read_lfw_pairs(p.string());
  fs::remove(p);
  EXPECT_EQ(r.view, 2);
  EXPECT_EQ(r.folds, 2);
  ASSERT_EQ(r.pairs.size(), 4u);
  EXPECT_TRUE(r.pairs[0].same);
  EXPECT_EQ(r.pairs[0].index2, 2);
  EXPECT_EQ(r.pairs[1].name2, "C");
  EXPECT_FALSE(r.pairs[3].same);
  EXPECT_EQ(lfw_image_path("/x", "George_W_Bush", 10), "/x/George_W_Bush/George_W_Bush_0010.jpg");
}

TEST(lfw_eval, view1_is_dealt_into_balanced_folds) {
  std::string text = "20\n";
  for (int i = 0; i < 20; ++i) text += "S" + std::to_string(i) + " 1 2\n";
  for (int i = 0; i < 20; ++i) text += "D" + std::to_string(i) + " 1 X 1\n";
  const auto p = write_temp("pairsDev.txt", text);
  const lfw_pairs r = read_lfw_pairs(p.string());
  fs::remove(p);
  EXPECT_EQ(r.view, 1);
  ASSERT_EQ(r.pairs.size(), 40u);
  const auto folds = kfold(r.pairs.size(), 10);
  for (const auto& f : folds) {
    int same = 0;
    for (std::size_t i : f.test) same += r.pairs[i].same;
    EXPECT_EQ(same, 2);
  }
  EXPECT_EQ(r.pairs[2].name1, "D0");
}

TEST(lfw_eval, malformed_pairs_files_name_the_line) {
  const auto bad_count = write_temp("bad1.txt", "1 2\nA 1 2\nB 1 C 1\n");
  try {
    read_lfw_pairs(bad_count.string());
    ADD_FAILURE() << "expected format_error";
  } catch (const facenet::format_error& e) {
    EXPECT_NE(std::string(e.what()).find(":3"), std::string::npos) << e.what();
  }
  const auto bad_kind = write_temp("bad2.txt", "1\nA 1 B 2\nB 1 C 1\n");
  EXPECT_THROW(read_lfw_pairs(bad_kind.string()), facenet::format_error);
  const auto bad_num = write_temp("bad3.txt", "1\nA x 2\nB 1 C 1\n");
  EXPECT_THROW(read_lfw_pairs(bad_num.string()), facenet::format_error);
  for (const auto& p : {bad_count, bad_kind, bad_num}) fs::remove(p);
  EXPECT_THROW(read_lfw_pairs("/nonexistent/pairs.txt"), facenet::io_error);
  EXPECT_THROW(evaluate_lfw(Tensor<float>({3, 4}), {true, false}), facenet::shape_error);
}

TEST(lfw_eval, real_view1_pairs_resolve_to_images) {
  FACENET_REQUIRE_SHARED("data/lfw/pairsDevTest.txt");
  const auto root = facenet::testing::shared_dir() / "data/lfw";
  const lfw_pairs r = read_lfw_pairs((root / "pairsDevTest.txt").string());
  EXPECT_EQ(r.pairs.size(), 1000u);
  const lfw_paths p = resolve_lfw_paths((root / "images_deepfunneled").string(), r);
  EXPECT_EQ(p.skipped, 0u);
  EXPECT_EQ(p.paths.size(), 2000u);
}

TEST(lfw_eval, json_has_the_cli_keys) {
  lfw_metrics m;
  m.accuracy = 0.5;
  m.eer = std::nan("");
  const std::string j = to_json(m);
  for (const char* k : {"\"accuracy\": 0.5", "\"accuracy_std\"", "\"val\"", "\"val_std\"", "\"far\"", "\"auc\"", "\"eer\": null", "\"threshold\""})
    EXPECT_NE(j.find(k), std::string::npos) << k << " in " << j;
}
