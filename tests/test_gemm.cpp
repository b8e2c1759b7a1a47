#include <cmath>
#include <limits>
#include <vector>

#include "facenet/core/parallel.hpp"
#include "facenet/kernels/gemm.hpp"
#include "facenet/kernels/reference/gemm.hpp"
#include "testing.hpp"

namespace fk = facenet::kernels;
using facenet::Tensor;
using facenet::testing::max_abs_diff;
using facenet::testing::random_tensor;

namespace {

struct gemm_case {
  bool ta, tb;
  std::int64_t m, n, k;
  double alpha, beta;
  std::int64_t pad;  // extra leading-dimension slack, to catch lda/ldb/ldc confusions
};

template <class T>
double tolerance(std::int64_t k) {
  return (std::is_same<T, float>::value ? 2e-6 : 1e-14) * static_cast<double>(k + 4);
}

// Runs both implementations on the same random data and returns max |fast - reference|.
template <class T>
double run_case(const gemm_case& g, std::uint32_t seed) {
  const std::int64_t ar = g.ta ? g.k : g.m, ac = g.ta ? g.m : g.k;
  const std::int64_t br = g.tb ? g.n : g.k, bc = g.tb ? g.k : g.n;
  const std::int64_t lda = ac + g.pad, ldb = bc + g.pad, ldc = g.n + g.pad;
  Tensor<T> a = random_tensor<T>({std::max<std::int64_t>(ar, 1), lda}, seed);
  Tensor<T> b = random_tensor<T>({std::max<std::int64_t>(br, 1), ldb}, seed + 1);
  Tensor<T> c0 = random_tensor<T>({std::max<std::int64_t>(g.m, 1), ldc}, seed + 2);
  if (g.beta == 0) c0.fill(std::numeric_limits<T>::quiet_NaN());  // beta == 0 must not read C
  Tensor<T> fast = c0.clone(), ref = c0.clone();
  if (g.beta == 0) ref.fill(0);
  fk::gemm<T>(g.ta, g.tb, g.m, g.n, g.k, T(g.alpha), a.data(), lda, b.data(), ldb, T(g.beta), fast.data(), ldc);
  fk::reference::gemm<T>(g.ta, g.tb, g.m, g.n, g.k, T(g.alpha), a.data(), lda, b.data(), ldb, T(g.beta), ref.data(), ldc);
  // Padding columns of C must be left alone.
  double worst = 0;
  for (std::int64_t i = 0; i < g.m; ++i)
    for (std::int64_t j = 0; j < ldc; ++j) {
      const double f = fast.data()[i * ldc + j];
      if (j >= g.n) {  // padding: untouched, bit for bit (NaN stays NaN)
        const double before = c0.data()[i * ldc + j];
        if (!(f == before || (std::isnan(f) && std::isnan(before)))) worst = INFINITY;
        continue;
      }
      const double d = std::abs(f - static_cast<double>(ref.data()[i * ldc + j]));
      if (!(d <= worst)) worst = d;
    }
  return worst;
}

const std::int64_t kSizes[] = {1, 3, 17, 33, 50};

template <class T>
void sweep() {
  std::uint32_t seed = 1;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (std::int64_t m : kSizes)
        for (std::int64_t n : kSizes)
          for (std::int64_t k : kSizes) {
            const gemm_case g{ta, tb, m, n, k, 1.0, 0.0, (m + n) % 3};
            EXPECT_LE(run_case<T>(g, seed++), tolerance<T>(k))
                << "ta=" << ta << " tb=" << tb << " m=" << m << " n=" << n << " k=" << k;
          }
}

}  // namespace

TEST(Gemm, FloatAllTransposesOddSizes) { sweep<float>(); }
TEST(Gemm, DoubleAllTransposesOddSizes) { sweep<double>(); }

TEST(Gemm, AlphaBeta) {
  std::uint32_t seed = 100;
  for (double alpha : {1.0, -0.5, 2.0})
    for (double beta : {0.0, 1.0, 0.25}) {
      const gemm_case g{false, true, 37, 53, 29, alpha, beta, 2};
      EXPECT_LE(run_case<float>(g, seed++), tolerance<float>(29) * 2) << "alpha=" << alpha << " beta=" << beta;
      EXPECT_LE(run_case<double>(g, seed++), tolerance<double>(29) * 2) << "alpha=" << alpha << " beta=" << beta;
    }
}

// Sizes that cross every blocking boundary (kc = 256, nc, several thread splits) with ragged edges.
TEST(Gemm, LargeBlockedAndThreaded) {
  const gemm_case cases[] = {
      {false, false, 131, 1001, 517, 1.0, 0.0, 0},   // several K blocks, N split, ragged tiles
      {true, false, 517, 67, 300, 1.5, 0.5, 1},      // M split (few N tiles)
      {false, true, 9, 2000, 257, 1.0, 1.0, 0},      // thin M, K one past a block
      {true, true, 200, 190, 513, -1.0, 0.0, 3},
      {false, false, 50, 1000, 600, 1.0, 0.5, 1},    // B read in place (small m), ragged tile, N and K blocks
      {true, false, 60, 500, 270, 2.0, 0.0, 0},      // same with A transposed and packed
      {false, false, 300, 40, 700, 1.0, 0.0, 0},     // A read in place (narrow n), B packed
      {false, false, 70, 300, 1024, 1.0, 0.0, 0},    // rows 4 KiB apart (float): A packed instead
      {false, false, 70, 300, 512, 0.5, 0.0, 0},     // rows 4 KiB apart for double
  };
  std::uint32_t seed = 200;
  for (const auto& g : cases) {
    EXPECT_LE(run_case<float>(g, seed++), tolerance<float>(g.k)) << g.m << "x" << g.n << "x" << g.k;
    EXPECT_LE(run_case<double>(g, seed++), tolerance<double>(g.k)) << g.m << "x" << g.n << "x" << g.k;
  }
}

// Few columns (n <= 12) with an untransposed A run as dot products along k: n on both sides of the
// cut-off, k with and without a partial last vector, odd m (the last row pair is half empty), C with
// padding columns, alpha/beta, B either way round, and a size that is threaded.
TEST(Gemm, FewColumnsAlongK) {
  const gemm_case cases[] = {
      {false, false, 192, 9, 1792, 1.0, 0.0, 0},  // IRv1 Block8 branch at 3x3 pixels
      {false, false, 37, 9, 33, 1.0, 0.0, 3},     // k = 2 vectors + 1
      {false, true, 21, 12, 100, -0.5, 0.25, 1},
      {false, false, 1, 1, 64, 2.0, 1.0, 0},
      {false, true, 5, 7, 45, 1.0, 0.0, 2},
      {false, false, 1001, 9, 300, 1.0, 0.5, 0},  // threaded
      {false, false, 50, 13, 200, 1.0, 0.0, 1},   // just past the cut-off: column tiles again
      {true, false, 40, 9, 200, 1.0, 0.0, 0},     // transposed A keeps the column tiles
  };
  std::uint32_t seed = 400;
  for (const auto& g : cases) {
    EXPECT_LE(run_case<float>(g, seed++), tolerance<float>(g.k) * 2) << g.m << "x" << g.n << "x" << g.k;
    EXPECT_LE(run_case<double>(g, seed++), tolerance<double>(g.k) * 2) << g.m << "x" << g.n << "x" << g.k;
  }
}

TEST(Gemm, SingleThreadMatchesThreaded) {
  const gemm_case g{false, false, 96, 700, 300, 1.0, 0.0, 0};
  const int saved = facenet::parallel::max_threads();
  facenet::parallel::set_num_threads(1);
  const double one = run_case<float>(g, 7);
  facenet::parallel::set_num_threads(saved);
  EXPECT_LE(one, tolerance<float>(g.k));
  EXPECT_LE(run_case<float>(g, 7), tolerance<float>(g.k));
}

TEST(Gemm, KZeroScalesC) {
  const gemm_case g{false, false, 5, 7, 0, 1.0, 0.5, 0};
  EXPECT_EQ(run_case<float>(g, 3), 0.0);
  const gemm_case z{false, false, 5, 7, 0, 1.0, 0.0, 0};
  EXPECT_EQ(run_case<double>(z, 3), 0.0);
}

TEST(Gemm, BadArgumentsThrow) {
  std::vector<float> a(100), b(100), c(100);
  EXPECT_THROW(fk::gemm<float>(false, false, -1, 2, 2, 1.f, a.data(), 2, b.data(), 2, 0.f, c.data(), 2),
               facenet::argument_error);
  EXPECT_THROW(fk::gemm<float>(false, false, 3, 4, 5, 1.f, a.data(), 4, b.data(), 4, 0.f, c.data(), 4),
               facenet::argument_error);  // lda < k
  EXPECT_THROW(fk::gemm<float>(false, false, 3, 4, 5, 1.f, a.data(), 5, b.data(), 3, 0.f, c.data(), 4),
               facenet::argument_error);  // ldb < n
  EXPECT_THROW(fk::gemm<float>(false, false, 3, 4, 5, 1.f, a.data(), 5, b.data(), 4, 0.f, c.data(), 3),
               facenet::argument_error);  // ldc < n
  EXPECT_THROW(fk::gemm<float>(false, false, 3, 4, 5, 1.f, nullptr, 5, b.data(), 4, 0.f, c.data(), 4),
               facenet::argument_error);
  try {
    fk::gemm<float>(true, false, 3, 4, 5, 1.f, a.data(), 2, b.data(), 4, 0.f, c.data(), 4);
    FAIL() << "expected argument_error";
  } catch (const facenet::argument_error& e) {
    EXPECT_NE(std::string(e.what()).find("lda"), std::string::npos) << e.what();
  }
}

// Pre-packed A (inference weights) times B with the whole epilogue (alpha, beta, bias, residual with
// its own stride, relu), B either way round, C with a padding column: the largest error against a
// double product.
template <class T>
double packed_gemm_error(std::int64_t m, std::int64_t n, std::int64_t k, bool tb, std::uint32_t seed) {
  namespace fd = fk::detail;
  const Tensor<T> a = random_tensor<T>({m, k}, seed), b = random_tensor<T>({k, n}, seed + 1);
  const Tensor<T> bias = random_tensor<T>({m}, seed + 2), residual = random_tensor<T>({m, n + 3}, seed + 3);
  Tensor<T> c = random_tensor<T>({m, n + 1}, seed + 4);
  const Tensor<T> c0 = c.clone();
  Tensor<T> bt({n, k});  // B transposed, for the tb case
  for (std::int64_t p = 0; p < k; ++p)
    for (std::int64_t j = 0; j < n; ++j) bt.data()[j * k + p] = b.data()[p * n + j];
  Tensor<T> packed({fd::packed_a_size<T>(m, k)});
  fd::pack_a_full(fd::a_source<T>{a.data(), k, false, nullptr}, m, k, packed.data());
  fd::gemm_epilogue<T> ep;
  ep.bias = bias.data();
  ep.residual = residual.data();
  ep.ldr = n + 3;
  ep.residual_scale = T(0.3);
  ep.relu = true;
  const T alpha = T(1.5), beta = T(0.5);
  fd::gemm_run(m, n, k, alpha, fd::a_source<T>{nullptr, 0, false, packed.data()},
               fd::b_matrix<T>{tb ? bt.data() : b.data(), tb ? k : n, tb}, beta, c.data(), n + 1, &ep);
  double err = 0;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j <= n; ++j) {
      const T got = c.data()[i * (n + 1) + j];
      if (j == n) {  // the padding column is never written
        err = std::max(err, std::abs(static_cast<double>(got - c0.data()[i * (n + 1) + j])));
        continue;
      }
      double v = 0;
      for (std::int64_t p = 0; p < k; ++p) v += static_cast<double>(a.data()[i * k + p]) * b.data()[p * n + j];
      v = alpha * v + beta * static_cast<double>(c0.data()[i * (n + 1) + j]) + bias.data()[i];
      v = std::max(0.0, residual.data()[i * (n + 3) + j] + 0.3 * v);
      err = std::max(err, std::abs(v - static_cast<double>(got)));
    }
  return err;
}

// With n <= 12 pre-packed products run panel_columns: odd m (a lone last panel, rows past m), n from
// 1 to 12, K over several blocks, threaded and not.
TEST(Gemm, PrePackedFewColumns) {
  struct shape_case {
    std::int64_t m, n, k;
    bool tb;
  };
  const shape_case cases[] = {
      {384, 9, 2304, false},  // IRv1 mixed_7a's stride-2 3x3 at 3x3 pixels (threaded)
      {19, 1, 70, false},     // linear layer at batch 1; a lone last panel
      {40, 12, 600, true},    // three K blocks
      {8, 5, 33, false},      // one panel
      {1001, 7, 300, true},   // threaded, odd pair count
      {17, 3, 257, false},
  };
  std::uint32_t seed = 900;
  for (const auto& g : cases) {
    EXPECT_LE(packed_gemm_error<float>(g.m, g.n, g.k, g.tb, seed++), tolerance<float>(g.k) * 4) << g.m << "x" << g.n << "x" << g.k;
    EXPECT_LE(packed_gemm_error<double>(g.m, g.n, g.k, g.tb, seed++), tolerance<double>(g.k) * 4) << g.m << "x" << g.n << "x" << g.k;
  }
}

// A pre-packed A block larger than half of L2 runs each A panel across all its column tiles instead
// of each B panel across all of A (gemm_block): both orders, ragged last row panel and column tile,
// K in one block and in several, threaded and not.
TEST(Gemm, PrePackedLargerThanHalfOfL2) {
  const std::int64_t l2_rows = fk::detail::l2_cache_bytes() / (256 * static_cast<std::int64_t>(sizeof(float)));
  const std::int64_t cases[][3] = {
      {l2_rows + 37, 69, 256},  // IRv1 Block17's up-projection is 896 x 64 x 256
      {2 * l2_rows + 3, 50, 600},
      {l2_rows / 2 - 5, 69, 256},  // fits: the other order
  };
  const int saved = facenet::parallel::max_threads();
  std::uint32_t seed = 930;
  for (const auto& g : cases) {
    EXPECT_LE(packed_gemm_error<float>(g[0], g[1], g[2], false, seed++), tolerance<float>(g[2]) * 4) << g[0] << "x" << g[1] << "x" << g[2];
    EXPECT_LE(packed_gemm_error<float>(g[0], g[1], g[2], true, seed++), tolerance<float>(g[2]) * 4) << g[0] << "x" << g[1] << "x" << g[2];
    facenet::parallel::set_num_threads(1);
    EXPECT_LE(packed_gemm_error<double>(g[0], g[1], g[2], false, seed++), tolerance<double>(g[2]) * 4) << g[0] << "x" << g[1] << "x" << g[2];
    facenet::parallel::set_num_threads(saved);
  }
}

// The few-column kernel must round exactly as the tiled one (a sample's embedding may not depend on
// the batch it came in): the same product with 13 more columns takes the tiled path, and its first n
// columns must equal the few-column result bit for bit - several K blocks, beta, the whole epilogue.
template <class T>
std::int64_t packed_few_columns_mismatches(std::int64_t m, std::int64_t n, std::int64_t k, std::uint32_t seed) {
  namespace fd = fk::detail;
  const std::int64_t wide = n + 13;
  const Tensor<T> a = random_tensor<T>({m, k}, seed), b = random_tensor<T>({k, wide}, seed + 1);
  const Tensor<T> bias = random_tensor<T>({m}, seed + 2), residual = random_tensor<T>({m, wide}, seed + 3);
  const Tensor<T> c0 = random_tensor<T>({m, wide}, seed + 4);
  Tensor<T> packed({fd::packed_a_size<T>(m, k)});
  fd::pack_a_full(fd::a_source<T>{a.data(), k, false, nullptr}, m, k, packed.data());
  fd::gemm_epilogue<T> ep;
  ep.bias = bias.data();
  ep.residual = residual.data();
  ep.ldr = wide;
  ep.residual_scale = T(0.3);
  ep.relu = true;
  Tensor<T> few = c0.clone(), tiled = c0.clone();
  const fd::a_source<T> as{nullptr, 0, false, packed.data()};
  fd::gemm_run(m, n, k, T(1.5), as, fd::b_matrix<T>{b.data(), wide, false}, T(0.5), few.data(), wide, &ep);
  fd::gemm_run(m, wide, k, T(1.5), as, fd::b_matrix<T>{b.data(), wide, false}, T(0.5), tiled.data(), wide, &ep);
  std::int64_t mismatches = 0;
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) mismatches += few.data()[i * wide + j] != tiled.data()[i * wide + j];
  return mismatches;
}

TEST(Gemm, PrePackedFewColumnsRoundLikeTheTiledKernel) {
  const std::int64_t cases[][3] = {{384, 9, 2304}, {19, 1, 70}, {40, 12, 600}, {1001, 7, 300}, {17, 3, 257}, {64, 2, 1792}};
  std::uint32_t seed = 950;
  for (const auto& g : cases) {
    EXPECT_EQ(packed_few_columns_mismatches<float>(g[0], g[1], g[2], seed++), 0) << g[0] << "x" << g[1] << "x" << g[2];
    EXPECT_EQ(packed_few_columns_mismatches<double>(g[0], g[1], g[2], seed++), 0) << g[0] << "x" << g[1] << "x" << g[2];
  }
}
