// Shared test helpers: seeded random tensors, comparisons, finite-difference gradient checks, and
// locating ../shared. Included by every test_*.cpp.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <random>
#include <string>

#include "facenet/core/tensor.hpp"

namespace facenet::testing {

template <class T>
Tensor<T> random_tensor(const shape& s, std::uint32_t seed, double lo = -1.0, double hi = 1.0) {
  Tensor<T> t(s);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (auto& v : t) v = static_cast<T>(dist(rng));
  return t;
}

template <class T>
void fill_random(Tensor<T>& t, std::uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (auto& v : t) v = static_cast<T>(dist(rng));
}

template <class T, class U>
double max_abs_diff(const Tensor<T>& a, const Tensor<U>& b) {
  EXPECT_EQ(a.shape(), b.shape()) << a.shape().str() << " vs " << b.shape().str();
  if (a.shape() != b.shape()) return INFINITY;
  double m = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double d = std::abs(static_cast<double>(a.data()[i]) - static_cast<double>(b.data()[i]));
    if (!(d <= m)) m = d;  // NaN propagates as a failure
  }
  return m;
}

// max |a-b| / (max |b| + tiny): a scale-aware error for gradients that can be large.
template <class T, class U>
double max_rel_diff(const Tensor<T>& a, const Tensor<U>& b) {
  double scale = 0;
  for (std::int64_t i = 0; i < b.numel(); ++i) scale = std::max(scale, std::abs(static_cast<double>(b.data()[i])));
  return max_abs_diff(a, b) / (scale + 1e-30);
}

template <class T>
double dot(const Tensor<T>& a, const Tensor<T>& b) {
  double s = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) s += static_cast<double>(a.data()[i]) * b.data()[i];
  return s;
}

// Central-difference check of d loss / d param against `analytic`. `loss` re-runs the forward pass
// with the current contents of `param`. Checks every element, or `max_checks` spread evenly.
template <class F>
void check_gradient(Tensor<double>& param, const Tensor<double>& analytic, F&& loss, const std::string& name,
                    double tol = 1e-6, double eps = 1e-6, std::int64_t max_checks = 400) {
  ASSERT_EQ(param.shape(), analytic.shape()) << name;
  const std::int64_t n = param.numel();
  const std::int64_t step = std::max<std::int64_t>(1, n / max_checks);
  double worst = 0;
  std::int64_t worst_i = -1;
  for (std::int64_t i = 0; i < n; i += step) {
    const double saved = param.data()[i];
    param.data()[i] = saved + eps;
    const double lp = loss();
    param.data()[i] = saved - eps;
    const double lm = loss();
    param.data()[i] = saved;
    const double numeric = (lp - lm) / (2 * eps);
    const double a = analytic.data()[i];
    const double err = std::abs(numeric - a) / std::max(1.0, std::abs(numeric) + std::abs(a));
    if (!(err <= worst)) {
      worst = err;
      worst_i = i;
    }
    EXPECT_LE(err, tol) << name << "[" << i << "]: analytic " << a << " numeric " << numeric;
  }
  EXPECT_LE(worst, tol) << name << ": worst element " << worst_i;
}

inline std::filesystem::path source_dir() {
#ifdef FACENET_SOURCE_DIR
  return FACENET_SOURCE_DIR;
#else
  return std::filesystem::current_path();
#endif
}

// A committed fixture: tests/fixtures/<rel>.
inline std::string fixture_path(const std::string& rel) { return (source_dir() / "tests/fixtures" / rel).string(); }

// The message of the E that f() throws; a test failure (and "") when it throws none or another type.
template <class E, class F>
std::string error_message(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected an exception";
  return {};
}

// ../shared beside the checkout, or $FACENET_SHARED. Empty path when absent.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("FACENET_SHARED")) return env;
  auto p = source_dir().parent_path() / "shared";
  return std::filesystem::exists(p) ? p : std::filesystem::path();
}

}  // namespace facenet::testing

// Skips the current test, visibly, when ../shared (or a file inside it) is missing.
#define FACENET_REQUIRE_SHARED(relative)                                                          \
  do {                                                                                            \
    if (::facenet::testing::shared_dir().empty() ||                                               \
        !std::filesystem::exists(::facenet::testing::shared_dir() / (relative)))                  \
      GTEST_SKIP() << "SKIPPED: shared data '" << (relative) << "' not found (set FACENET_SHARED)"; \
  } while (0)
