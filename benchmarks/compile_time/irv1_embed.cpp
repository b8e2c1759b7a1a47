// Issue #7's compile-time case: one translation unit that includes the whole library (the umbrella
// header) and runs Inception-ResNet-v1 on one image. benchmarks/compile_time/run.sh times its build.
#include <cstdio>

#include "facenet/facenet.hpp"

int main() {
  auto net = std::make_unique<facenet::models::inception_resnet_v1<float>>();
  const facenet::models::embedder<float> embedder(std::move(net));
  const facenet::Tensor<float> x({1, 3, 160, 160});
  const facenet::Tensor<float> y = embedder.embed(x);
  std::printf("embedding of %lld values\n", static_cast<long long>(y.numel()));
}
