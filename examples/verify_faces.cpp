// Are two aligned face images the same person? Embeds both and thresholds their distance.
//   verify_faces WEIGHTS.safetensors FACE1 FACE2 [THRESHOLD=1.1]
// Faces are already aligned crops (e.g. from `facenet align`); they are resized to the network input.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "facenet/data/image_io.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/nn4_small2.hpp"

namespace fn = facenet;

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: verify_faces WEIGHTS.safetensors FACE1 FACE2 [THRESHOLD=1.1]\n");
    return 2;
  }
  try {
    const double threshold = argc == 5 ? std::stod(argv[4]) : 1.1;
    const fn::io::tensor_map weights = fn::io::load_safetensors(argv[1]);
    const bool nn4 = weights.metadata.count("architecture") && weights.metadata.at("architecture") == "nn4_small2";
    std::unique_ptr<fn::models::model<float>> net;
    if (nn4)
      net = std::make_unique<fn::models::nn4_small2<float>>();
    else
      net = std::make_unique<fn::models::inception_resnet_v1<float>>();
    net->load(weights);
    const int size = static_cast<int>(net->info().input_size);

    fn::Tensor<float> x({2, 3, size, size});
    for (int i = 0; i < 2; ++i) {
      const fn::data::image img = fn::data::load_image(argv[2 + i]);
      fn::data::to_tensor(fn::data::resize_bilinear_pil(img, fn::data::full_rect(img), size, size), x, i);
    }
    fn::data::standardize(x, nn4 ? fn::data::standardization::unit : fn::data::standardization::fixed);
    const fn::Tensor<float> e = fn::models::embedder<float>(*net).embed(x);  // rows are unit vectors

    double d2 = 0;
    for (std::int64_t k = 0; k < e.size(1); ++k) d2 += std::pow(e.data()[k] - e.data()[e.size(1) + k], 2);
    const double d = std::sqrt(d2);
    std::printf("distance %.4f (threshold %.2f): %s\n", d, threshold, d <= threshold ? "same person" : "different people");
    return 0;
  } catch (const fn::error& e) {
    std::fprintf(stderr, "verify_faces: %s\n", e.what());
    return 1;
  }
}
