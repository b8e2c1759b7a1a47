// Train NN4-small2 for a few triplet-loss steps on a folder of faces (one sub-folder per person,
// >= 2 images for the people used), then save the weights for `facenet embed --weights`.
//   train_tiny_nn4 FACES_DIR OUT.safetensors [STEPS=3]
#include <cmath>
#include <cstdio>
#include <random>
#include <string>

#include "facenet/data/dataset.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/data/sampler.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/loss/triplet.hpp"
#include "facenet/models/nn4_small2.hpp"
#include "facenet/optim/adam.hpp"

namespace fn = facenet;

// He-uniform conv / linear weights, identity batch norm.
void initialise(fn::models::model<float>& net) {
  std::mt19937 rng(1);
  for (auto& p : net.parameters()) {
    const bool scale = p.name.find("running_var") != std::string::npos || (p.value->rank() == 1 && p.name.find("weight") != std::string::npos);
    const float bound = p.value->rank() > 1 ? std::sqrt(6.0f / static_cast<float>(p.value->numel() / p.value->size(0))) : 0.0f;
    std::uniform_real_distribution<float> u(-bound, bound);
    for (float& v : *p.value) v = p.value->rank() > 1 ? u(rng) : (scale ? 1.0f : 0.0f);
  }
}

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: train_tiny_nn4 FACES_DIR OUT.safetensors [STEPS=3]\n");
    return 2;
  }
  try {
    const int steps = argc == 4 ? std::stoi(argv[3]) : 3;
    const auto people = fn::data::face_dataset::from_folder(argv[1], {}, 2);  // people with >= 2 images
    fn::data::pk_options pk;
    pk.p = 3, pk.k = 2;  // 3 people x 2 images per batch
    const fn::data::pk_sampler sampler(people, pk);

    fn::models::nn4_small2<float> net;
    initialise(net);
    fn::loss::triplet_loss<float> objective;  // semi-hard mining, margin 0.2
    std::mt19937_64 rng(7);
    std::unique_ptr<fn::optim::adam> adam;

    fn::Tensor<float> x({sampler.batch_size(), 3, 96, 96}), emb, grad, dx;
    for (int step = 0; step < steps; ++step) {
      std::vector<int> labels;
      const auto batch = sampler.batch(step);
      for (std::size_t i = 0; i < batch.size(); ++i) {
        const auto img = fn::data::load_image(batch[i].path);
        fn::data::to_tensor(fn::data::resize_bilinear_pil(img, fn::data::full_rect(img), 96, 96), x, static_cast<std::int64_t>(i));
        labels.push_back(batch[i].label);
      }
      fn::data::standardize(x, fn::data::standardization::unit);  // OpenFace's [0, 1] input
      net.forward(x, emb, true);
      const auto r = objective(emb, labels, rng, grad);
      net.backward(grad, dx);
      if (!adam) {  // gradients exist after the first backward: hand the optimizer both as handles
        std::vector<fn::optim::parameter> params;
        for (auto& p : net.parameters())
          if (p.grad) params.push_back({p.name, *p.value, *p.grad});
        adam = std::make_unique<fn::optim::adam>(std::move(params), fn::optim::adam_options{});
      }
      adam->step();
      std::printf("step %d: loss %.5f, %zu triplets\n", step + 1, static_cast<double>(r.loss), r.mining.triplets.size());
    }
    fn::io::save_safetensors(argv[2], net.export_weights());
    std::printf("saved %s (%lld parameters)\n", argv[2], static_cast<long long>(net.parameter_count()));
    return 0;
  } catch (const fn::error& e) {
    std::fprintf(stderr, "train_tiny_nn4: %s\n", e.what());
    return 1;
  }
}
