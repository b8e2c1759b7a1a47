// Shared benchmark helpers: a measured FMA peak so every kernel figure reads as a fraction of this
// machine, and GFLOP/s counters. Peak and kernels are measured in the same process (the machine is
// shared and noisy; only ratios within one run mean anything).
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>

#include "facenet/core/parallel.hpp"
#include "facenet/core/simd.hpp"

namespace facenet::bench {

// Independent FMA chains on SIMD registers: 12 chains cover 4-cycle latency x 2 FMA ports with room.
// Returns the flops performed.
template <class T>
double fma_chains(std::int64_t iterations) {
  using V = simd::batch<T>;
  constexpr int chains = 12;
  V acc[chains];
  for (int i = 0; i < chains; ++i) acc[i] = simd::broadcast(T(0.001) * T(i));
  const V x = simd::broadcast(T(0.999999)), y = simd::broadcast(T(1e-7));
  for (std::int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < chains; ++i) acc[i] = simd::fma(acc[i], x, y);
  }
  V sum = acc[0];
  for (int i = 1; i < chains; ++i) sum = sum + acc[i];
  alignas(64) T lanes[simd::width<T>];  // not simd::reduce_add: GCC 12 warns inside xsimd's hadd
  simd::store_aligned(lanes, sum);
  benchmark::DoNotOptimize(lanes);
  return 2.0 * chains * static_cast<double>(simd::width<T>) * static_cast<double>(iterations);
}

// Runs the chains on `threads` threads at once; returns total flops.
template <class T>
double fma_chains_parallel(std::int64_t iterations, int threads) {
  double flops[64] = {};
  parallel::parallel_region([&](int t, int) { flops[t] = fma_chains<T>(iterations); }, threads);
  double total = 0;
  for (int t = 0; t < std::min(threads, 64); ++t) total += flops[t];
  return total;
}

// Measured float peak in GFLOP/s for `threads` threads (cached per thread count): the best of many
// short bursts (~0.1 ms each, parallel region included), so a preempted burst cannot hide the peak
// the way one long run would. Kernels are judged the same way (best iteration), which keeps the
// ratio honest on a shared machine.
inline double measured_peak_gflops(int threads) {
  static double cache[65] = {};
  threads = std::max(1, std::min(threads, 64));
  if (cache[threads] > 0) return cache[threads];
  double best = 0;
  for (int rep = 0; rep < 400; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    const double flops = fma_chains_parallel<float>(20'000, threads);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / s * 1e-9);
  }
  cache[threads] = best;
  // With other work on the cores, threads of one region rarely run together and a multi-thread peak
  // collapses below the single-thread one; ratios against it would be meaningless, so say so.
  if (threads > 1 && best < 1.2 * measured_peak_gflops(1))
    std::fprintf(stderr,
                 "WARNING: the %d-thread FMA peak (%.1f GFLOP/s) is not above the 1-thread peak (%.1f GFLOP/s): "
                 "the machine is oversubscribed and %d-thread %%peak figures are not meaningful\n",
                 threads, best, measured_peak_gflops(1), threads);
  return best;
}

// GFLOP/s counter (flops per iteration, as a rate) plus the fraction of the measured peak at `threads`.
inline void report_flops(benchmark::State& state, double flops_per_iteration, int threads) {
  state.counters["GFLOP"] =
      benchmark::Counter(flops_per_iteration * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["threads"] = threads;
  state.counters["peak_GFLOPs"] = measured_peak_gflops(threads);
}

// Computes "%peak" from the measured rate once the benchmark loop has finished.
inline void add_peak_fraction(benchmark::State& state, double flops_per_iteration, double seconds, int threads) {
  if (seconds > 0)
    state.counters["%peak"] = 100.0 * flops_per_iteration * static_cast<double>(state.iterations()) * 1e-9 / seconds /
                              measured_peak_gflops(threads);
}

// Times the benchmark loop itself so %peak can be derived in-process (Google Benchmark computes rates
// only at report time). `f` is one iteration. Besides the mean, reports the best single iteration
// (best_GFLOPs, %peak_best): on a shared machine the fastest undisturbed iteration is the honest
// measure of the kernel, compared with the best-of-7 peak measured the same way.
template <class F>
void run_timed(benchmark::State& state, double flops_per_iteration, int threads, F&& f) {
  const int saved = parallel::max_threads();
  parallel::set_num_threads(threads);
  measured_peak_gflops(threads);  // measure before timing, never inside the loop
  f();                            // warm-up: scratch buffers grow once, caches fill
  double seconds = 0, best = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    seconds += s;
    best = std::min(best, s);
  }
  report_flops(state, flops_per_iteration, threads);
  add_peak_fraction(state, flops_per_iteration, seconds, threads);
  if (best < 1e30) {
    state.counters["best_GFLOPs"] = flops_per_iteration * 1e-9 / best;
    state.counters["%peak_best"] = 100.0 * flops_per_iteration * 1e-9 / best / measured_peak_gflops(threads);
  }
  parallel::set_num_threads(saved);
}

}  // namespace facenet::bench
