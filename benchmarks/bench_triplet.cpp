// Triplet objective cost per training step at the batch (P=24 x K=4, 128-d embeddings):
// pairwise distances, mining per strategy, loss forward/backward, SIMD kernels vs scalar twins.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include <cstdlib>
#include <filesystem>

#include "facenet/data/loader.hpp"
#include "facenet/kernels/reference/triplet.hpp"
#include "facenet/kernels/triplet.hpp"
#include "facenet/loss/triplet.hpp"

#ifndef FACENET_SHARED_GUESS
#define FACENET_SHARED_GUESS "../shared"
#endif

namespace {

using facenet::Tensor;

Tensor<float> unit_embeddings(std::int64_t n, std::int64_t d) {
  Tensor<float> e({n, d});
  std::mt19937 rng(1);
  std::normal_distribution<float> g;
  for (std::int64_t i = 0; i < n; ++i) {
    float s = 0;
    for (std::int64_t k = 0; k < d; ++k) s += (e(i, k) = g(rng)) * e(i, k);
    for (std::int64_t k = 0; k < d; ++k) e(i, k) /= std::sqrt(s);
  }
  return e;
}

std::vector<int> pk_labels(int p, int k) {
  std::vector<int> l;
  for (int i = 0; i < p; ++i)
    for (int j = 0; j < k; ++j) l.push_back(i);
  return l;
}

void bm_pairwise_distance(benchmark::State& st) {
  const Tensor<float> e = unit_embeddings(st.range(0), 128);
  Tensor<float> d;
  for (auto _ : st) {
    facenet::kernels::pairwise_squared_distance_forward(e, d);
    benchmark::DoNotOptimize(d.data());
  }
}
void bm_pairwise_distance_reference(benchmark::State& st) {
  const Tensor<float> e = unit_embeddings(st.range(0), 128);
  Tensor<float> d;
  for (auto _ : st) {
    facenet::kernels::reference::pairwise_squared_distance_forward(e, d);
    benchmark::DoNotOptimize(d.data());
  }
}

// Whole objective (distances + mining + forward + backward) per strategy.
void bm_triplet_objective(benchmark::State& st) {
  const auto strategy = static_cast<facenet::loss::mining_strategy>(st.range(0));
  const Tensor<float> e = unit_embeddings(96, 128);
  const auto labels = pk_labels(24, 4);
  facenet::loss::triplet_loss<float> obj({strategy, 0.2});
  std::mt19937_64 rng(1);
  Tensor<float> g;
  std::int64_t triplets = 0;
  for (auto _ : st) {
    const auto r = obj(e, labels, rng, g);
    triplets = static_cast<std::int64_t>(r.mining.triplets.size());
    benchmark::DoNotOptimize(g.data());
  }
  st.SetLabel(facenet::loss::mining_strategy_name(strategy));
  st.counters["triplets"] = static_cast<double>(triplets);
}

// Loss forward + backward alone over many triplets (batch-all scale), SIMD vs scalar twin.
template <bool reference>
void bm_loss_fwd_bwd(benchmark::State& st) {
  const Tensor<float> e = unit_embeddings(96, 128);
  std::vector<facenet::kernels::triplet> t;
  std::mt19937 rng(2);
  std::uniform_int_distribution<std::int64_t> pick(0, 95);
  for (int i = 0; i < st.range(0); ++i) t.push_back({pick(rng), pick(rng), pick(rng)});
  Tensor<float> per, g;
  for (auto _ : st) {
    if constexpr (reference) {
      facenet::kernels::reference::triplet_loss_forward(e, t, 1.0f, per);
      facenet::kernels::reference::triplet_loss_backward(e, t, per, 1.0f, g);
    } else {
      facenet::kernels::triplet_loss_forward(e, t, 1.0f, per);
      facenet::kernels::triplet_loss_backward(e, t, per, 1.0f, g);
    }
    benchmark::DoNotOptimize(g.data());
  }
  st.SetItemsProcessed(st.iterations() * st.range(0));
}

// The input side of a training step: LFW JPEG decode + augmentation (128 crop -> 96) + fixed
// standardization of a 24 x 4 batch on `workers` threads (the pipeline must outrun the network).
void bm_loader_lfw(benchmark::State& st) {
  namespace fs = std::filesystem;
  const char* env = std::getenv("FACENET_SHARED");
  const fs::path root = fs::path(env ? env : FACENET_SHARED_GUESS) / "data/lfw/images_deepfunneled";
  if (!fs::is_directory(root)) {
    st.SkipWithError("LFW images not found (set FACENET_SHARED)");
    return;
  }
  static const facenet::data::face_dataset ds = facenet::data::face_dataset::from_folder(root.string(), {}, 4);
  facenet::data::pk_sampler sampler(ds, {24, 4, 0, 1});
  facenet::data::loader_options o;
  o.workers = static_cast<int>(st.range(0));
  o.augment = facenet::data::training_augmentation(96, 128);
  facenet::data::batch_loader loader(facenet::data::pk_source(sampler), o);
  facenet::data::loaded_batch b;
  for (auto _ : st) loader.next(b);
  st.SetItemsProcessed(st.iterations() * 96);
}

}  // namespace

BENCHMARK(bm_loader_lfw)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(bm_pairwise_distance)->Arg(96)->Arg(384);
BENCHMARK(bm_pairwise_distance_reference)->Arg(96)->Arg(384);
BENCHMARK(bm_triplet_objective)->DenseRange(0, 3);
BENCHMARK(bm_loss_fwd_bwd<false>)->Arg(288)->Arg(24000);
BENCHMARK(bm_loss_fwd_bwd<true>)->Arg(288)->Arg(24000);
BENCHMARK_MAIN();
