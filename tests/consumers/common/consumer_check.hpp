// What every consumer project runs: a little of each part of the library, so a consumer only passes
// when the headers, xsimd, OpenMP and Eigen all arrive the way its packaging promised, and when a bad
// call still ends in a facenet error rather than a crash.
#pragma once

#include <cstdint>
#include <cstdio>

#include <facenet/core/eigen.hpp>  // not in the umbrella header
#include <facenet/facenet.hpp>

namespace consumer {

// Sum of a contiguous range through facenet::simd, with a partial load for the tail.
inline float simd_sum(const float* p, std::int64_t n) {
  constexpr auto w = static_cast<std::int64_t>(facenet::simd::width<float>);
  auto acc = facenet::simd::broadcast(0.0f);
  std::int64_t i = 0;
  for (; i + w <= n; i += w) acc = acc + facenet::simd::load(p + i);
  if (i < n) acc = acc + facenet::simd::load_partial(p + i, static_cast<std::size_t>(n - i));
  return facenet::simd::reduce_add(acc);
}

inline bool fail(const char* what) {
  std::fprintf(stderr, "consumer check failed: %s\n", what);
  return false;
}

inline bool check_tensor_simd_openmp() {
  // 3x5x7 = 105 values per image: not a multiple of any SIMD width, so the tail path runs too.
  facenet::Tensor<float> x({2, 3, 5, 7});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.at_flat(i) = static_cast<float>(i % 7) - 3.0f;
  facenet::Tensor<float> sums({2});
  facenet::parallel::parallel_for(0, 2, [&](std::int64_t b) {
    const facenet::Tensor<float> image = x.batch(b);
    sums(b) = simd_sum(image.data(), image.numel());
  });
  for (std::int64_t b = 0; b < 2; ++b) {
    float expected = 0.0f;  // small integers: exact in float whatever the summation order
    for (float v : x.batch(b).clone()) expected += v;
    if (sums(b) != expected) return fail("simd/parallel sum differs from the scalar sum");
  }
  return true;
}

inline bool check_eigen() {
  const float a[6] = {1, 2, 3, 4, 5, 6};     // 2x3
  const float b[6] = {7, 8, 9, 10, 11, 12};  // 3x2
  const float expected[4] = {58, 64, 139, 154};
  float c[4] = {};
  facenet::eigen::gemm(a, b, c, 2, 2, 3);
  for (int i = 0; i < 4; ++i)
    if (c[i] != expected[i]) return fail("eigen::gemm gave a wrong product");
  return true;
}

// Double precision through the library's own GEMM: consumers build without -march, i.e. for SSE2, where
// no register holds a 4-double panel - the GEMM once failed to compile there.
inline bool check_double_gemm() {
  const double a[6] = {1, 2, 3, 4, 5, 6};     // 2x3
  const double b[6] = {7, 8, 9, 10, 11, 12};  // 3x2
  const double expected[4] = {58, 64, 139, 154};
  double c[4] = {};
  facenet::kernels::gemm<double>(false, false, 2, 2, 3, 1.0, a, 3, b, 2, 0.0, c, 2);
  for (int i = 0; i < 4; ++i)
    if (c[i] != expected[i]) return fail("kernels::gemm<double> gave a wrong product");
  return true;
}

inline bool check_errors() {
  try {
    facenet::Tensor<float>({2, 3}).reshape({7});
  } catch (const facenet::shape_error&) {
    return true;
  }
  return fail("reshape of 6 elements to [7] did not throw facenet::shape_error");
}

// Runs every check and prints one line naming how the library was consumed; returns main's status.
inline int run(const char* how) {
  if (!check_tensor_simd_openmp() || !check_eigen() || !check_double_gemm() || !check_errors()) return 1;
  std::printf("facenet %s via %s: ok (simd %s, %d threads)\n", facenet::version_string(), how,
              facenet::simd::arch_name(), facenet::parallel::max_threads());
  return 0;
}

}  // namespace consumer
