// Peak FMA throughput of this machine: the denominator for every other benchmark's %peak.
#include "bench_common.hpp"

namespace {

template <class T>
void bm_fma_peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  constexpr std::int64_t iterations = 1'000'000;
  double flops = 0;
  for (auto _ : state) flops = facenet::bench::fma_chains_parallel<T>(iterations, threads);
  state.counters["GFLOP"] = benchmark::Counter(flops * 1e-9 * static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
  state.counters["threads"] = threads;
  state.SetLabel(facenet::simd::arch_name());
}

// The figure every other benchmark divides by (best of many short bursts, see bench_common.hpp).
void bm_measured_peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(facenet::bench::measured_peak_gflops(threads));
  state.counters["peak_GFLOPs"] = facenet::bench::measured_peak_gflops(threads);
  state.counters["threads"] = threads;
}

}  // namespace

BENCHMARK_TEMPLATE(bm_fma_peak, float)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(bm_fma_peak, double)->Arg(1)->Arg(2)->UseRealTime()->Unit(benchmark::kMillisecond);

BENCHMARK(bm_measured_peak)->Arg(1)->Arg(2)->Iterations(1);

BENCHMARK_MAIN();
