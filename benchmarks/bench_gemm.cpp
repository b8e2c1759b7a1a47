// Our SGEMM vs Eigen's at 512^3 and at Inception-ResNet-v1's 1x1-convolution GEMMs (160x160 input,
// facenet-pytorch shapes: M = output channels, K = input channels, N = H*W, one GEMM per image), at 1 and
// 2 threads. Eigen parallelises its GEMM with OpenMP too, so both run at the same thread count.
// GCC 12 reports a false -Wmaybe-uninitialized inside Eigen's AVX-512 packing (_mm512_undefined_ps in
// its transposes); it is the baseline's code, not ours, so silence that one diagnostic in this file.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <vector>

#include "bench_common.hpp"
#include "facenet/core/eigen.hpp"
#include "facenet/kernels/gemm.hpp"

namespace {

struct gemm_dims {
  const char* name;
  std::int64_t m, n, k;
};

// 160x160 input: conv2d_3b at 38x38, Block35 at 17x17, Block17 at 8x8, Block8 at 3x3.
const gemm_dims kShapes[] = {
    {"square_512", 512, 512, 512},
    {"conv2d_3b_64to80_38x38", 80, 38 * 38, 64},
    {"block35_branch_256to32_17x17", 32, 17 * 17, 256},
    {"block35_up_96to256_17x17", 256, 17 * 17, 96},
    {"block17_branch_896to128_8x8", 128, 8 * 8, 896},
    {"block17_up_256to896_8x8", 896, 8 * 8, 256},
    {"block8_branch_1792to192_3x3", 192, 3 * 3, 1792},
    {"block8_up_384to1792_3x3", 1792, 3 * 3, 384},
};

enum class impl { facenet, eigen };

void bm_gemm(benchmark::State& state, gemm_dims d, impl which, int batch, int threads) {
  std::vector<float> a(static_cast<std::size_t>(d.m * d.k), 0.5f);
  std::vector<float> b(static_cast<std::size_t>(d.k * d.n * batch), 0.25f);
  std::vector<float> c(static_cast<std::size_t>(d.m * d.n * batch));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i % 7) * 0.1f;
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<float>(i % 5) * 0.1f;
  const double flops = 2.0 * static_cast<double>(d.m * d.n * d.k) * batch;
  facenet::bench::run_timed(state, flops, threads, [&] {
    for (int i = 0; i < batch; ++i) {
      const float* bi = b.data() + d.k * d.n * i;
      float* ci = c.data() + d.m * d.n * i;
      if (which == impl::facenet)
        facenet::kernels::gemm<float>(false, false, d.m, d.n, d.k, 1.f, a.data(), d.k, bi, d.n, 0.f, ci, d.n);
      else
        facenet::eigen::gemm<float>(a.data(), bi, ci, d.m, d.n, d.k);
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  });
}

const int kRegistered = [] {
  for (const auto& d : kShapes)
    for (int batch : {1, 16}) {
      if (d.m * d.n * d.k >= 512 * 512 * 512 && batch > 1) continue;
      for (int threads : {2, 1})
        for (impl which : {impl::facenet, impl::eigen}) {
          const std::string name = std::string(which == impl::facenet ? "facenet/" : "eigen/") + d.name + "/batch" +
                                   std::to_string(batch) + "/threads" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), bm_gemm, d, which, batch, threads)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
    }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
