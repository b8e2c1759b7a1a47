// Whole-model throughput: inference through the embedder (BN folded, packed weights) at batch 1, 16
// and 64, and a training step (train-mode forward + backward). Counters: images/s and GFLOP/s, with
// 2 flops per MAC (IRv1 1.418 GMAC per 160x160 image, NN4-small2 0.200 GMAC per 96x96 image;
// backward counted as twice the forward). Weights are random: speed does not depend on them.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>

#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/nn4_small2.hpp"

using namespace facenet;

namespace {

template <class M>
struct spec;
template <>
struct spec<models::nn4_small2<float>> {
  static constexpr double gmac = 0.200;
};
template <>
struct spec<models::inception_resnet_v1<float>> {
  static constexpr double gmac = 1.418;
};

template <class M>
M& shared_model() {
  static std::unique_ptr<M> m = [] {
    auto model = std::make_unique<M>();
    std::mt19937 rng(1);
    for (auto& p : model->parameters()) {
      const bool var = p.name.find("running_var") != std::string::npos;
      std::uniform_real_distribution<float> dist(var ? 0.5f : -0.05f, var ? 1.5f : 0.05f);
      for (auto& v : *p.value) v = dist(rng);
    }
    return model;
  }();
  return *m;
}

template <class M>
Tensor<float> input(std::int64_t batch) {
  const std::int64_t s = M::input_size;
  Tensor<float> x(shape{batch, 3, s, s});
  std::mt19937 rng(2);
  std::uniform_real_distribution<float> dist(-1, 1);
  for (auto& v : x) v = dist(rng);
  return x;
}

void set_counters(benchmark::State& state, std::int64_t batch, double gmac_per_image, double passes) {
  const double images = static_cast<double>(state.iterations() * batch);
  state.counters["images/s"] = benchmark::Counter(images, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(images * gmac_per_image * 2 * passes, benchmark::Counter::kIsRate);
}

template <class M>
void BM_embed(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  static models::embedder<float> e(shared_model<M>());
  const Tensor<float> x = input<M>(batch);
  Tensor<float> y;
  e.embed(x, y);  // warm-up: workspace sized, weights already packed
  for (auto _ : state) {
    e.embed(x, y);
    benchmark::DoNotOptimize(y.data());
  }
  set_counters(state, batch, spec<M>::gmac, 1);
}

template <class M>
void BM_train_step(benchmark::State& state) {
  const std::int64_t batch = state.range(0);
  M& m = shared_model<M>();
  const Tensor<float> x = input<M>(batch);
  Tensor<float> y;
  m.forward(x, y, true);
  const Tensor<float> dy = Tensor<float>::full(y.shape(), 1e-3f);
  for (auto _ : state) {
    m.forward(x, y, true);
    m.backward_params(dy);  // as training runs it: no gradient for the input images
    benchmark::DoNotOptimize(y.data());
  }
  m.clear_cache();
  set_counters(state, batch, spec<M>::gmac, 3);
}

}  // namespace

BENCHMARK_TEMPLATE(BM_embed, models::nn4_small2<float>)->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_embed, models::inception_resnet_v1<float>)->Arg(1)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_train_step, models::nn4_small2<float>)->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_TEMPLATE(BM_train_step, models::inception_resnet_v1<float>)->Arg(16)->Arg(32)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
