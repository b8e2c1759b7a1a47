// The non-GEMM kernels (batch norm, activations, pooling, LRN, concat, pad, residual, softmax,
// L2 normalisation, dropout, linear) at the shapes where NN4-small2 (96x96 input, OpenFace) and
// Inception-ResNet-v1 (160x160, facenet-pytorch) use them, forward and backward, batch 1 (both
// cores inside one image) and 16. Memory-bound kernels report GB/s (bytes each pass must read and
// write once); the linear layer reports GFLOP/s and %peak through bench_common.hpp.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "facenet/kernels/activation.hpp"
#include "facenet/kernels/batch_norm.hpp"
#include "facenet/kernels/concat.hpp"
#include "facenet/kernels/dropout.hpp"
#include "facenet/kernels/l2_normalize.hpp"
#include "facenet/kernels/linear.hpp"
#include "facenet/kernels/lrn.hpp"
#include "facenet/kernels/pad.hpp"
#include "facenet/kernels/pool.hpp"
#include "facenet/kernels/residual.hpp"
#include "facenet/kernels/softmax.hpp"

namespace {

namespace fk = facenet::kernels;
using facenet::shape;
using facenet::Tensor;
using fk::pool2d_params;

Tensor<float> filled(const shape& s, float lo = -1.0f, float hi = 1.0f, unsigned seed = 1) {
  Tensor<float> t = Tensor<float>::uninitialized(s);
  unsigned state = seed * 2654435761u + 12345u;
  for (float& v : t) {
    state = state * 1664525u + 1013904223u;
    v = lo + (hi - lo) * static_cast<float>(state >> 8) * (1.0f / 16777216.0f);
  }
  return t;
}

double bytes_of(const shape& s) { return static_cast<double>(s.numel()) * sizeof(float); }

// Times `f` and reports GB/s (mean) and best_GBs (fastest iteration; the machine is shared).
void run_bytes(benchmark::State& state, double bytes, const std::function<void()>& f) {
  f();  // warm-up: outputs allocate once
  double seconds = 0, best = 1e30;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    seconds += s;
    best = std::min(best, s);
  }
  state.counters["GB/s"] =
      benchmark::Counter(bytes * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  if (best < 1e30) state.counters["best_GBs"] = bytes * 1e-9 / best;
}

// One benchmark: a name and a factory that builds inputs and returns (bytes per pass, pass).
struct bench_case {
  std::string name;
  std::function<std::pair<double, std::function<void()>>(std::int64_t batch)> make;
};

// Feature-map shapes [C, H, W] per network stage.
struct site {
  const char* name;
  std::int64_t c, h, w;
};
const site bn_sites[] = {{"irv1_conv2d_1a_32x79", 32, 79, 79}, {"irv1_conv2d_4b_256x17", 256, 17, 17},
                         {"nn4_conv1_64x48", 64, 48, 48}, {"nn4_conv3_192x24", 192, 24, 24}};

std::vector<bench_case> cases() {
  std::vector<bench_case> v;
  for (const site& s : bn_sites) {
    const std::string at = std::string("/") + s.name;
    v.push_back({"batch_norm_forward_inference" + at, [s](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, s.c, s.h, s.w}));
                   auto g = std::make_shared<Tensor<float>>(filled(shape{s.c}, 0.5f, 1.5f));
                   auto var = std::make_shared<Tensor<float>>(filled(shape{s.c}, 0.5f, 1.5f));
                   auto y = std::make_shared<Tensor<float>>();
                   return std::make_pair(2 * bytes_of(x->shape()), std::function<void()>([=] {
                     fk::batch_norm_forward_inference(*x, *g, *g, *g, *var, 1e-3f, *y);
                   }));
                 }});
    v.push_back({"batch_norm_forward_training" + at, [s](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, s.c, s.h, s.w}));
                   auto g = std::make_shared<Tensor<float>>(filled(shape{s.c}, 0.5f, 1.5f));
                   auto rm = std::make_shared<Tensor<float>>(filled(shape{s.c}));
                   auto rv = std::make_shared<Tensor<float>>(filled(shape{s.c}, 0.5f, 1.5f));
                   auto y = std::make_shared<Tensor<float>>(), sm = std::make_shared<Tensor<float>>(),
                        si = std::make_shared<Tensor<float>>();
                   return std::make_pair(4 * bytes_of(x->shape()), std::function<void()>([=] {
                     fk::batch_norm_forward_training(*x, *g, *g, 1e-3f, 0.1f, *y, *sm, *si, *rm, *rv);
                   }));
                 }});
    v.push_back({"batch_norm_backward" + at, [s](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, s.c, s.h, s.w}));
                   auto dy = std::make_shared<Tensor<float>>(filled(x->shape(), -1, 1, 2));
                   auto g = std::make_shared<Tensor<float>>(filled(shape{s.c}, 0.5f, 1.5f));
                   auto dx = std::make_shared<Tensor<float>>(), dg = std::make_shared<Tensor<float>>(),
                        db = std::make_shared<Tensor<float>>();
                   return std::make_pair(5 * bytes_of(x->shape()), std::function<void()>([=] {
                     fk::batch_norm_backward(*dy, *x, *g, *g, *g, *dx, *dg, *db);
                   }));
                 }});
    v.push_back({"relu_forward" + at, [s](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, s.c, s.h, s.w}));
                   auto y = std::make_shared<Tensor<float>>();
                   return std::make_pair(2 * bytes_of(x->shape()), std::function<void()>([=] { fk::relu_forward(*x, *y); }));
                 }});
    v.push_back({"relu_backward" + at, [s](std::int64_t n) {
                   auto y = std::make_shared<Tensor<float>>(filled(shape{n, s.c, s.h, s.w}));
                   auto dx = std::make_shared<Tensor<float>>();
                   return std::make_pair(3 * bytes_of(y->shape()),
                                         std::function<void()>([=] { fk::relu_backward(*y, *y, *dx); }));
                 }});
  }
  // MTCNN PNet: PReLU after conv1 (10 channels) on a 12-pixel-scale pyramid level.
  v.push_back({"prelu_forward/mtcnn_pnet_10x178x298", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 10, 178, 298}));
                 auto a = std::make_shared<Tensor<float>>(filled(shape{10}, 0, 0.3f));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(2 * bytes_of(x->shape()), std::function<void()>([=] { fk::prelu_forward(*x, *a, *y); }));
               }});
  v.push_back({"prelu_backward/mtcnn_pnet_10x178x298", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 10, 178, 298}));
                 auto a = std::make_shared<Tensor<float>>(filled(shape{10}, 0, 0.3f));
                 auto dx = std::make_shared<Tensor<float>>(), da = std::make_shared<Tensor<float>>();
                 return std::make_pair(3 * bytes_of(x->shape()),
                                       std::function<void()>([=] { fk::prelu_backward(*x, *x, *a, *dx, *da); }));
               }});

  struct pool_site {
    const char* name;
    std::int64_t c, h, w;
    pool2d_params p;
    int kind;  // 0 max, 1 avg, 2 l2
  };
  const pool_site pools[] = {
      {"max_3x3s2/irv1_maxpool_3a_64x73", 64, 73, 73, pool2d_params::square(3, 2), 0},
      {"max_3x3s2/irv1_block35_branch_192x35", 192, 35, 35, pool2d_params::square(3, 2), 0},
      {"max_3x3s2p1/nn4_pool1_64x48", 64, 48, 48, pool2d_params::square(3, 2, 1), 0},
      {"max_3x3s2p1/nn4_pool2_192x24", 192, 24, 24, pool2d_params::square(3, 2, 1), 0},
      {"max_3x3s1p1/nn4_3a_192x12", 192, 12, 12, pool2d_params::square(3, 1, 1), 0},
      {"l2_3x3s1p1/nn4_3b_256x12", 256, 12, 12, pool2d_params::square(3, 1, 1), 2},
      {"l2_3x3s1p1/nn4_4a_320x6", 320, 6, 6, pool2d_params::square(3, 1, 1), 2},
      {"avg_3x3s1p1/irv1_like_256x17", 256, 17, 17, pool2d_params::square(3, 1, 1, false, false), 1},
  };
  for (const pool_site& ps : pools) {
    const char* kinds[] = {"max_pool2d", "avg_pool2d", "l2_pool2d"};
    v.push_back({std::string(kinds[ps.kind]) + "_forward/" + ps.name, [ps](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, ps.c, ps.h, ps.w}));
                   auto y = std::make_shared<Tensor<float>>();
                   auto idx = std::make_shared<Tensor<std::int32_t>>();
                   const double bytes = bytes_of(x->shape()) + 2 * bytes_of(fk::pool2d_output_shape(x->shape(), ps.p));
                   return std::make_pair(bytes, std::function<void()>([=] {
                     if (ps.kind == 0) fk::max_pool2d_forward(*x, ps.p, *y, *idx);
                     if (ps.kind == 1) fk::avg_pool2d_forward(*x, ps.p, *y);
                     if (ps.kind == 2) fk::l2_pool2d_forward(*x, ps.p, *y);
                   }));
                 }});
    if (ps.kind == 0)  // inference: no indices
      v.push_back({std::string("max_pool2d_infer/") + ps.name, [ps](std::int64_t n) {
                     auto x = std::make_shared<Tensor<float>>(filled(shape{n, ps.c, ps.h, ps.w}));
                     auto y = std::make_shared<Tensor<float>>();
                     const double bytes = bytes_of(x->shape()) + bytes_of(fk::pool2d_output_shape(x->shape(), ps.p));
                     return std::make_pair(bytes, std::function<void()>([=] { fk::max_pool2d_forward(*x, ps.p, *y); }));
                   }});
    v.push_back({std::string(kinds[ps.kind]) + "_backward/" + ps.name, [ps](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, ps.c, ps.h, ps.w}));
                   auto y = std::make_shared<Tensor<float>>(), dx = std::make_shared<Tensor<float>>();
                   auto idx = std::make_shared<Tensor<std::int32_t>>();
                   fk::max_pool2d_forward(*x, ps.p, *y, *idx);
                   if (ps.kind == 2) fk::l2_pool2d_forward(*x, ps.p, *y);
                   auto dy = std::make_shared<Tensor<float>>(filled(y->shape()));
                   const double bytes = 2 * bytes_of(x->shape()) + 2 * bytes_of(y->shape());
                   return std::make_pair(bytes, std::function<void()>([=] {
                     if (ps.kind == 0) fk::max_pool2d_backward(*dy, *idx, x->shape(), ps.p, *dx);
                     if (ps.kind == 1) fk::avg_pool2d_backward(*dy, x->shape(), ps.p, *dx);
                     if (ps.kind == 2) fk::l2_pool2d_backward(*dy, *x, *y, ps.p, *dx);
                   }));
                 }});
  }
  v.push_back({"global_avg_pool_forward/irv1_1792x3", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 1792, 3, 3}));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(bytes_of(x->shape()), std::function<void()>([=] { fk::global_avg_pool_forward(*x, *y); }));
               }});

  for (const site& s : {site{"nn4_norm1_64x24", 64, 24, 24}, site{"nn4_norm2_192x24", 192, 24, 24}}) {
    v.push_back({std::string("lrn_cross_channel_forward/") + s.name, [s](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, s.c, s.h, s.w}));
                   auto y = std::make_shared<Tensor<float>>();
                   return std::make_pair(2 * bytes_of(x->shape()), std::function<void()>([=] {
                     fk::lrn_cross_channel_forward(*x, 5, 1e-4f, 0.75f, 1.0f, *y);
                   }));
                 }});
    v.push_back({std::string("lrn_cross_channel_backward/") + s.name, [s](std::int64_t n) {
                   auto x = std::make_shared<Tensor<float>>(filled(shape{n, s.c, s.h, s.w}));
                   auto dx = std::make_shared<Tensor<float>>();
                   return std::make_pair(3 * bytes_of(x->shape()), std::function<void()>([=] {
                     fk::lrn_cross_channel_backward(*x, *x, 5, 1e-4f, 0.75f, 1.0f, *dx);
                   }));
                 }});
  }

  // Block35: three branches of 32, 32 and 64 channels at 17x17 (concat), then scale-add 0.17 + ReLU.
  v.push_back({"concat_channels/irv1_block35_32+32+64x17", [](std::int64_t n) {
                 auto a = std::make_shared<Tensor<float>>(filled(shape{n, 32, 17, 17}));
                 auto b = std::make_shared<Tensor<float>>(filled(shape{n, 32, 17, 17}));
                 auto c = std::make_shared<Tensor<float>>(filled(shape{n, 64, 17, 17}));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(2 * bytes_of(shape{n, 128, 17, 17}), std::function<void()>([=] {
                   fk::concat_channels<float>({a.get(), b.get(), c.get()}, *y);
                 }));
               }});
  // NN4 inception 3c: stride-2 branches (6x6) beside the pooled branch, depth-concatenated.
  v.push_back({"depth_concat_forward/nn4_3c_256+64+320x6", [](std::int64_t n) {
                 auto a = std::make_shared<Tensor<float>>(filled(shape{n, 256, 6, 6}));
                 auto b = std::make_shared<Tensor<float>>(filled(shape{n, 64, 6, 6}));
                 auto c = std::make_shared<Tensor<float>>(filled(shape{n, 320, 5, 5}));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(2 * bytes_of(shape{n, 640, 6, 6}), std::function<void()>([=] {
                   fk::depth_concat_forward<float>({a.get(), b.get(), c.get()}, *y);
                 }));
               }});
  v.push_back({"pad2d_forward/nn4_conv1_3x96", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 3, 96, 96}));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(bytes_of(x->shape()) + bytes_of(shape{n, 3, 102, 102}),
                                       std::function<void()>([=] { fk::pad2d_forward(*x, 3, 3, 3, 3, *y); }));
               }});
  v.push_back({"scale_add_forward_relu/irv1_block35_256x17", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 256, 17, 17}));
                 auto b = std::make_shared<Tensor<float>>(filled(shape{n, 256, 17, 17}));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(3 * bytes_of(x->shape()),
                                       std::function<void()>([=] { fk::scale_add_forward(*x, *b, 0.17f, *y, true); }));
               }});
  v.push_back({"scale_add_backward_relu/irv1_block35_256x17", [](std::int64_t n) {
                 auto y = std::make_shared<Tensor<float>>(filled(shape{n, 256, 17, 17}));
                 auto dx = std::make_shared<Tensor<float>>(), db = std::make_shared<Tensor<float>>();
                 return std::make_pair(4 * bytes_of(y->shape()), std::function<void()>([=] {
                   fk::scale_add_backward(*y, *y, 0.17f, *dx, *db, true);
                 }));
               }});
  v.push_back({"softmax_forward/mtcnn_pnet_prob_2x178x298", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 2, 178, 298}, -4, 4));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(2 * bytes_of(x->shape()), std::function<void()>([=] { fk::softmax_forward(*x, *y); }));
               }});
  v.push_back({"log_softmax_forward/casia_classifier_10575", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 10575}, -4, 4));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(2 * bytes_of(x->shape()),
                                       std::function<void()>([=] { fk::log_softmax_forward(*x, *y); }));
               }});
  v.push_back({"log_softmax_backward/casia_classifier_10575", [](std::int64_t n) {
                 auto y = std::make_shared<Tensor<float>>(filled(shape{n, 10575}, -12, -8));
                 auto dx = std::make_shared<Tensor<float>>();
                 return std::make_pair(3 * bytes_of(y->shape()),
                                       std::function<void()>([=] { fk::log_softmax_backward(*y, *y, *dx); }));
               }});
  v.push_back({"l2_normalize_forward/irv1_512", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 512}));
                 auto y = std::make_shared<Tensor<float>>();
                 return std::make_pair(2 * bytes_of(x->shape()), std::function<void()>([=] { fk::l2_normalize_forward(*x, *y); }));
               }});
  v.push_back({"dropout_forward_train/irv1_1792", [](std::int64_t n) {
                 auto x = std::make_shared<Tensor<float>>(filled(shape{n, 1792}));
                 auto y = std::make_shared<Tensor<float>>(), m = std::make_shared<Tensor<float>>();
                 return std::make_pair(3 * bytes_of(x->shape()),
                                       std::function<void()>([=] { fk::dropout_forward(*x, 0.4f, 7, true, *y, *m); }));
               }});
  return v;
}

// Linear layers: IRv1 last_linear 1792 -> 512, NN4-small2 736 -> 128; GFLOP/s and %peak.
void linear_bench(benchmark::State& state, std::int64_t in, std::int64_t out, int which) {
  const std::int64_t n = state.range(0);
  const auto x = filled(shape{n, in}), w = filled(shape{out, in}), b = filled(shape{out}), dy = filled(shape{n, out});
  Tensor<float> y, dx, dw, db;
  const double flops = 2.0 * static_cast<double>(n * in * out);
  facenet::bench::run_timed(state, flops, facenet::parallel::max_threads(), [&] {
    if (which == 0) fk::linear_forward(x, w, b, y);
    if (which == 1) fk::linear_backward_data(dy, x, w, dx);
    if (which == 2) fk::linear_backward_weight(dy, x, dw, db);
  });
}

const int registered = [] {
  for (const bench_case& c : cases())
    benchmark::RegisterBenchmark(c.name.c_str(),
                                 [c](benchmark::State& state) {
                                   auto [bytes, f] = c.make(state.range(0));
                                   run_bytes(state, bytes, f);
                                 })
        ->ArgName("batch")
        ->Arg(1)
        ->Arg(16)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  const char* passes[] = {"linear_forward", "linear_backward_data", "linear_backward_weight"};
  for (int which = 0; which < 3; ++which) {
    benchmark::RegisterBenchmark((std::string(passes[which]) + "/irv1_1792to512").c_str(), linear_bench, 1792, 512, which)
        ->ArgName("batch")->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark((std::string(passes[which]) + "/nn4_736to128").c_str(), linear_bench, 736, 128, which)
        ->ArgName("batch")->Arg(1)->Arg(16)->UseRealTime()->Unit(benchmark::kMicrosecond);
  }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
