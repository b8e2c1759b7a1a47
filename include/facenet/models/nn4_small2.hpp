// OpenFace nn4.small2.v1 exactly as released (not nn4.small2.def.lua; OpenFace issue #349), as the
// Keras-OpenFace port reproduces it: 96x96 RGB in, 128-d L2-normalised embedding out, Torch convs
// with bias, BN eps 1e-5, 3,733,968 parameters. Parameter names: "<Keras layer>.<torch name>",
// e.g. "conv1.weight", "bn1.running_mean", "inception_3a_pool_conv.bias", "dense.weight".
#pragma once

#include <memory>

#include "facenet/blocks/basic_conv.hpp"
#include "facenet/blocks/inception.hpp"
#include "facenet/layers/dropout.hpp"
#include "facenet/layers/linear.hpp"
#include "facenet/layers/lrn.hpp"
#include "facenet/layers/normalize.hpp"
#include "facenet/layers/pool.hpp"
#include "facenet/models/model.hpp"

namespace facenet::models {

// The released graph's seven Inception modules. Pool branches: 3a max 3x3/2 (5x5 padded to 12x12),
// 3b L2 3x3/3 (4x4 -> 12x12), 3c max 3x3/2 (5x5 -> 6x6), 4a L2 3x3/3 (2x2 -> 6x6), 4e max 3x3/2
// (2x2 -> 3x3), 5a L2 3x3/3 (1x1 -> 3x3), 5b max 3x3/2 (1x1 -> 3x3); DepthConcat centres them.
inline std::vector<blocks::inception_spec> nn4_small2_inceptions() {
  using layers::pool_kind;
  //        name            in    r3   o3   r5  o5   s  pool            pk ps  pool_out 1x1
  return {{"inception_3a", 192, 96, 128, 16, 32, 1, pool_kind::max, 3, 2, 32, 64},
          {"inception_3b", 256, 96, 128, 32, 64, 1, pool_kind::l2, 3, 3, 64, 64},
          {"inception_3c", 320, 128, 256, 32, 64, 2, pool_kind::max, 3, 2, 0, 0},
          {"inception_4a", 640, 96, 192, 32, 64, 1, pool_kind::l2, 3, 3, 128, 256},
          {"inception_4e", 640, 160, 256, 64, 128, 2, pool_kind::max, 3, 2, 0, 0},
          {"inception_5a", 1024, 96, 384, 0, 0, 1, pool_kind::l2, 3, 3, 96, 256},
          {"inception_5b", 736, 96, 384, 0, 0, 1, pool_kind::max, 3, 2, 96, 256}};
}

// The released graph has no dropout; training may add it before `dense` (a regulariser for small data).
struct nn4_small2_options {
  double dropout = 0;
};

template <class T>
class nn4_small2 final : public model<T> {
 public:
  static constexpr std::int64_t input_size = 96;
  static constexpr std::int64_t embedding_size = 128;

  explicit nn4_small2(const nn4_small2_options& o = {}) : opt_(o) {
    auto& r = this->root_;
    r.add("", blocks::nn4_conv<T>("conv1", "bn1", 3, 64, 7, 2));
    r.add("", std::make_unique<layers::pool2d<T>>(layers::pool_kind::max, 3, 2, 1));
    r.add("", make_lrn());
    r.add("", blocks::nn4_conv<T>("conv2", "bn2", 64, 64, 1));
    r.add("", blocks::nn4_conv<T>("conv3", "bn3", 64, 192, 3));
    r.add("", make_lrn());
    r.add("", std::make_unique<layers::pool2d<T>>(layers::pool_kind::max, 3, 2, 1));
    for (const auto& s : nn4_small2_inceptions()) r.add("", blocks::make_inception<T>(s));
    r.add("", std::make_unique<layers::pool2d<T>>(layers::pool_kind::avg, 3, 1));
    if (o.dropout > 0) dropout_ = &r.add("", std::make_unique<layers::dropout<T>>(o.dropout));
    r.add("dense", std::make_unique<layers::linear<T>>(736, embedding_size, true));
    r.add("", std::make_unique<layers::l2_normalize<T>>());
  }

  model_info info() const override { return {"nn4_small2", input_size, embedding_size, blocks::nn4_bn_eps}; }
  std::unique_ptr<model<T>> make_like() const override { return std::make_unique<nn4_small2>(opt_); }
  void seed_dropout(std::uint64_t seed) override {
    if (dropout_) dropout_->seed(seed);
  }

 private:
  static std::unique_ptr<layers::lrn<T>> make_lrn() { return std::make_unique<layers::lrn<T>>(5, 1e-4, 0.75, 1.0); }

  nn4_small2_options opt_;
  layers::dropout<T>* dropout_ = nullptr;
};

}  // namespace facenet::models
