// Define a small custom Inception network from the library's layers and blocks, run it, and train
// one step: the building blocks NN4-small2 is made of, recombined.
#include <cstdio>
#include <memory>

#include "facenet/blocks/basic_conv.hpp"
#include "facenet/blocks/inception.hpp"
#include "facenet/layers/linear.hpp"
#include "facenet/layers/normalize.hpp"
#include "facenet/layers/pool.hpp"
#include "facenet/layers/sequential.hpp"

int main() {
  using facenet::layers::pool_kind;
  facenet::layers::sequential<float> net;
  // Stem: 7x7/2 conv + BN + ReLU, then 3x3/2 max pool: 64x64 -> 32x32 -> 16x16.
  net.add("", facenet::blocks::nn4_conv<float>("conv1", "bn1", 3, 32, 7, 2));
  net.add("", std::make_unique<facenet::layers::pool2d<float>>(pool_kind::max, 3, 2, 1));
  // Two Inception modules, in the table format of nn4_small2_inceptions():
  //  name, in, 3x3 reduce, 3x3 out, 5x5 reduce, 5x5 out, stride, pool, pool k, pool s, pool proj, 1x1 out
  net.add("", facenet::blocks::make_inception<float>({"mix_a", 32, 16, 32, 8, 16, 1, pool_kind::max, 3, 2, 16, 32}));
  net.add("", facenet::blocks::make_inception<float>({"mix_b", 96, 32, 64, 0, 0, 2, pool_kind::max, 3, 2, 0, 0}));
  // mix_b: stride 2 -> 8x8, channels 64 (3x3) + 96 (pool pass-through) = 160.
  net.add("", std::make_unique<facenet::layers::pool2d<float>>(pool_kind::avg, 8, 1));
  net.add("dense", std::make_unique<facenet::layers::linear<float>>(160, 64, true));
  net.add("", std::make_unique<facenet::layers::l2_normalize<float>>());

  std::vector<facenet::layers::parameter<float>> params;
  net.collect("", params);
  std::int64_t count = 0;
  for (auto& p : params) {
    // Small deterministic weights; running variances and BN scales 1.
    const bool ones = p.name.find("running_var") != std::string::npos || (p.value->rank() == 1 && p.name.find("weight") != std::string::npos);
    std::int64_t i = 0;
    for (float& v : *p.value) v = ones ? 1.0f : 0.05f * static_cast<float>(((i++ * 7919) % 201) - 100) / 100.0f;
    if (p.grad) count += p.value->numel();
  }
  std::printf("custom network: %zu tensors, %lld trainable parameters\n", params.size(), static_cast<long long>(count));

  facenet::Tensor<float> x({4, 3, 64, 64}), y, dx;
  std::int64_t i = 0;
  for (float& v : x) v = static_cast<float>((i++ % 255) / 255.0);
  net.forward(x, y, true);  // training mode: batch statistics
  std::printf("forward: %s -> %s\n", x.shape().str().c_str(), y.shape().str().c_str());

  facenet::Tensor<float> dy(y.shape());
  for (float& v : dy) v = 0.01f;
  net.backward(dy, dx);  // fills every parameter's grad
  double g = 0;
  for (auto& p : params)
    if (p.grad)
      for (float v : *p.grad) g += static_cast<double>(v) * v;
  std::printf("backward: gradient norm %.6g over all parameters, input gradient %s\n", std::sqrt(g), dx.shape().str().c_str());

  net.prepare_inference();  // folds BN into the convolutions for fast inference
  facenet::layers::workspace<float> ws;
  facenet::Tensor<float> z;
  net.infer(x, z, ws);
  std::printf("inference: %s, first value %.6f\n", z.shape().str().c_str(), z.data()[0]);
  return 0;
}
