// conv2d at the shapes of Inception-ResNet-v1 (160x160 input; facenet-pytorch InceptionResnetV1 gives
// conv2d_1a 160->79, conv2d_2a 79->77, conv2d_2b 77 pad 1, conv2d_4a 38->36, conv2d_4b 36->17 stride 2,
// Block35 at 17x17, Block17 at 8x8, Block8 at 3x3, their 1x1s at batch 16 as one batched GEMM) and NN4-small2 (96x96 input). Forward through
// conv2d_plan (inference: packed weights, fused bias+relu; as chosen, and with GEMM or Winograd forced
// for the 3x3 and 5x5 stride-1 shapes) and conv2d_forward, backward data and weight, batch 1 and 16. GFLOP/s counts 2*O*C*KH*KW*OH*OW per image for every pass.
#include <string>

#include "bench_common.hpp"
#include "facenet/kernels/conv2d.hpp"

namespace {

namespace fk = facenet::kernels;
using facenet::Tensor;

struct conv_shape {
  const char* name;
  std::int64_t c, h, w, o, kh, kw;
  fk::conv2d_params p;
};

const conv_shape kShapes[] = {
    {"irv1_conv2d_1a_3to32_s2_160", 3, 160, 160, 32, 3, 3, {2, 2, 0, 0, 0, 0}},
    {"irv1_conv2d_2a_32to32_79", 32, 79, 79, 32, 3, 3, {}},
    {"irv1_conv2d_2b_32to64_p1_77", 32, 77, 77, 64, 3, 3, fk::conv2d_params::symmetric(1, 1)},
    {"irv1_conv2d_4a_80to192_38", 80, 38, 38, 192, 3, 3, {}},
    {"irv1_conv2d_4b_192to256_s2_36", 192, 36, 36, 256, 3, 3, {2, 2, 0, 0, 0, 0}},
    {"irv1_mixed_6a_3x3_256to384_s2_17", 256, 17, 17, 384, 3, 3, {2, 2, 0, 0, 0, 0}},
    {"irv1_mixed_7a_3x3_256to384_s2_8", 256, 8, 8, 384, 3, 3, {2, 2, 0, 0, 0, 0}},
    {"irv1_block35_3x3_32to32_p1_17", 32, 17, 17, 32, 3, 3, fk::conv2d_params::symmetric(1, 1)},
    {"irv1_mixed_6a_3x3_192to192_p1_17", 192, 17, 17, 192, 3, 3, fk::conv2d_params::symmetric(1, 1)},
    {"irv1_block17_1x7_128to128_8", 128, 8, 8, 128, 1, 7, fk::conv2d_params::symmetric(0, 3)},
    {"irv1_block17_7x1_128to128_8", 128, 8, 8, 128, 7, 1, fk::conv2d_params::symmetric(3, 0)},
    {"irv1_block8_1x3_192to192_3", 192, 3, 3, 192, 1, 3, fk::conv2d_params::symmetric(0, 1)},
    {"irv1_block35_1x1_256to32_17", 256, 17, 17, 32, 1, 1, {}},
    {"irv1_block35_up_96to256_17", 96, 17, 17, 256, 1, 1, {}},
    {"irv1_block17_1x1_896to128_8", 896, 8, 8, 128, 1, 1, {}},
    {"irv1_block8_1x1_1792to192_3", 1792, 3, 3, 192, 1, 1, {}},
    {"irv1_block8_up_384to1792_3", 384, 3, 3, 1792, 1, 1, {}},
    {"nn4_conv1_7x7_3to64_s2_96", 3, 96, 96, 64, 7, 7, fk::conv2d_params::symmetric(3, 3, 2, 2)},
    {"nn4_conv3_3x3_64to192_p1_24", 64, 24, 24, 192, 3, 3, fk::conv2d_params::symmetric(1, 1)},
    {"nn4_3a_3x3_96to128_p1_12", 96, 12, 12, 128, 3, 3, fk::conv2d_params::symmetric(1, 1)},
    {"nn4_3a_5x5_16to32_p2_12", 16, 12, 12, 32, 5, 5, fk::conv2d_params::symmetric(2, 2)},
    {"nn4_3c_1x1_320to128_12", 320, 12, 12, 128, 1, 1, {}},
    {"nn4_3c_5x5_32to64_s2_12", 32, 12, 12, 64, 5, 5, fk::conv2d_params::symmetric(2, 2, 2, 2)},
    {"nn4_4a_3x3_128to256_s2_12", 128, 12, 12, 256, 3, 3, fk::conv2d_params::symmetric(1, 1, 2, 2)},
    {"nn4_3b_5x5_32to64_p2_12", 32, 12, 12, 64, 5, 5, fk::conv2d_params::symmetric(2, 2)},
    {"nn4_4a_3x3_96to192_p1_6", 96, 6, 6, 192, 3, 3, fk::conv2d_params::symmetric(1, 1)},
    {"nn4_4a_5x5_32to64_p2_6", 32, 6, 6, 64, 5, 5, fk::conv2d_params::symmetric(2, 2)},
};

// plan_forward lets the plan choose; plan_gemm / plan_winograd (F(2x2, 3x3)) / plan_winograd_4x4 /
// plan_winograd_5x5 (F(2x2, 5x5)) force one algorithm (the Winograd ones stride 1, 3x3 or 5x5).
enum class pass { plan_forward, plan_gemm, plan_winograd, plan_winograd_4x4, plan_winograd_5x5, forward, backward_data, backward_weight };
const char* pass_name(pass p) {
  switch (p) {
    case pass::plan_forward: return "plan_forward";
    case pass::plan_gemm: return "plan_gemm";
    case pass::plan_winograd: return "plan_winograd";
    case pass::plan_winograd_4x4: return "plan_winograd_4x4";
    case pass::plan_winograd_5x5: return "plan_winograd_5x5";
    case pass::forward: return "forward";
    case pass::backward_data: return "backward_data";
    case pass::backward_weight: return "backward_weight";
  }
  return "?";
}

Tensor<float> filled(const facenet::shape& s, float scale) {
  Tensor<float> t(s);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<float>(i % 13) * scale - 0.5f;
  return t;
}

void bm_conv(benchmark::State& state, conv_shape cs, pass which, std::int64_t batch, int threads) {
  const Tensor<float> x = filled({batch, cs.c, cs.h, cs.w}, 0.07f);
  const Tensor<float> w = filled({cs.o, cs.c, cs.kh, cs.kw}, 0.01f);
  const Tensor<float> b = filled({cs.o}, 0.02f);
  const facenet::shape ys = fk::conv2d_output_shape(x.shape(), w.shape(), cs.p);
  const Tensor<float> dy = filled(ys, 0.03f);
  Tensor<float> y, ws, dx, dw(w.shape()), db;
  const fk::conv2d_algo algo = which == pass::plan_gemm           ? fk::conv2d_algo::gemm
                               : which == pass::plan_winograd     ? fk::conv2d_algo::winograd
                               : which == pass::plan_winograd_4x4 ? fk::conv2d_algo::winograd_4x4
                               : which == pass::plan_winograd_5x5 ? fk::conv2d_algo::winograd_5x5
                                                                  : fk::conv2d_algo::automatic;
  const fk::conv2d_plan<float> plan(w, b, cs.p, fk::activation::relu, algo);
  const double flops = 2.0 * static_cast<double>(ys.numel()) * static_cast<double>(cs.c * cs.kh * cs.kw);
  facenet::bench::run_timed(state, flops, threads, [&] {
    switch (which) {
      case pass::plan_forward:
      case pass::plan_gemm:
      case pass::plan_winograd:
      case pass::plan_winograd_4x4:
      case pass::plan_winograd_5x5: plan.forward(x, y, ws); break;
      case pass::forward: fk::conv2d_forward(x, w, b, y, cs.p); break;
      case pass::backward_data: fk::conv2d_backward_data(dy, w, x.shape(), dx, cs.p); break;
      case pass::backward_weight: fk::conv2d_backward_weight(x, dy, dw, &db, cs.p); break;
    }
    benchmark::ClobberMemory();
  });
  const fk::conv2d_algo ran = plan.algo_for(x.shape());
  state.SetLabel("out " + ys.str() + (ran == fk::conv2d_algo::winograd       ? " winograd"
                                      : ran == fk::conv2d_algo::winograd_4x4 ? " winograd 4x4"
                                      : ran == fk::conv2d_algo::winograd_5x5 ? " winograd 5x5"
                                                                             : ""));
}

const int kRegistered = [] {
  for (const auto& cs : kShapes)
    for (pass which : {pass::plan_forward, pass::plan_gemm, pass::plan_winograd, pass::plan_winograd_4x4,
                       pass::plan_winograd_5x5, pass::forward, pass::backward_data, pass::backward_weight})
      for (std::int64_t batch : {1, 16}) {
        if (which == pass::forward && batch > 1) continue;  // same engine as plan_forward
        const bool forced = which == pass::plan_gemm || which == pass::plan_winograd || which == pass::plan_winograd_4x4 ||
                            which == pass::plan_winograd_5x5;
        const bool stride_1 = cs.p.stride_h == 1 && cs.p.stride_w == 1;
        const bool square = cs.kh == cs.kw, k3 = square && cs.kh == 3, k5 = square && cs.kh == 5;
        const bool winograd_fits = stride_1 && (which == pass::plan_winograd_5x5 ? k5 : which == pass::plan_gemm ? k3 || k5 : k3);
        if (forced && (batch > 1 || !winograd_fits)) continue;
        for (int threads : {2, 1}) {
          if (threads == 1 && which != pass::plan_forward && !forced) continue;
          const std::string name = std::string(pass_name(which)) + "/" + cs.name + "/batch" + std::to_string(batch) +
                                   "/threads" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), bm_conv, cs, which, batch, threads)
              ->UseRealTime()
              ->Unit(benchmark::kMicrosecond);
        }
      }
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
