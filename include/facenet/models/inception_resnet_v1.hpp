// Inception-ResNet-v1 exactly as facenet-pytorch's InceptionResnetV1: 160x160 RGB in, 512-d
// L2-normalised embedding out (or logits with a classifier head), BN eps 1e-3 everywhere,
// 23,482,624 parameters without the head. Parameter and buffer names are its state_dict keys
// ("conv2d_1a.conv.weight", "repeat_1.0.branch1.0.bn.running_mean", "last_bn.running_var", ...).
#pragma once

#include <memory>

#include "facenet/blocks/basic_conv.hpp"
#include "facenet/blocks/inception_resnet.hpp"
#include "facenet/layers/dropout.hpp"
#include "facenet/layers/linear.hpp"
#include "facenet/layers/normalize.hpp"
#include "facenet/layers/pool.hpp"
#include "facenet/models/model.hpp"

namespace facenet::models {

struct inception_resnet_v1_options {
  std::int64_t num_classes = 0;  // > 0: a "logits" Linear(512, num_classes) head replaces the L2 norm
  double dropout = 0.6;          // before last_linear, training only
};

template <class T>
class inception_resnet_v1 final : public model<T> {
 public:
  static constexpr std::int64_t input_size = 160;
  static constexpr std::int64_t embedding_size = 512;

  explicit inception_resnet_v1(const inception_resnet_v1_options& o = {}) : opt_(o) {
    FACENET_CHECK(o.num_classes >= 0, argument_error, "inception_resnet_v1: num_classes must be >= 0");
    auto& r = this->root_;
    const auto conv = [](std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride, std::int64_t pad) {
      return std::make_unique<blocks::basic_conv<T>>(layers::conv_spec(in, out, k, stride, pad), blocks::irv1_bn_eps);
    };
    r.add("conv2d_1a", conv(3, 32, 3, 2, 0));
    r.add("conv2d_2a", conv(32, 32, 3, 1, 0));
    r.add("conv2d_2b", conv(32, 64, 3, 1, 1));
    r.add("maxpool_3a", std::make_unique<layers::pool2d<T>>(layers::pool_kind::max, 3, 2));
    r.add("conv2d_3b", conv(64, 80, 1, 1, 0));
    r.add("conv2d_4a", conv(80, 192, 3, 1, 0));
    r.add("conv2d_4b", conv(192, 256, 3, 2, 0));
    r.add("repeat_1", repeat(5, [] { return blocks::make_block35<T>(0.17); }));
    r.add("mixed_6a", blocks::make_mixed_6a<T>());
    r.add("repeat_2", repeat(10, [] { return blocks::make_block17<T>(0.10); }));
    r.add("mixed_7a", blocks::make_mixed_7a<T>());
    r.add("repeat_3", repeat(5, [] { return blocks::make_block8<T>(0.20, true); }));
    r.add("block8", blocks::make_block8<T>(1.0, false));
    r.add("avgpool_1a", std::make_unique<layers::pool2d<T>>(layers::pool_kind::avg, 0, 1));
    dropout_ = &r.add("dropout", std::make_unique<layers::dropout<T>>(o.dropout));
    r.add("", std::make_unique<layers::linear_bn<T>>(1792, embedding_size, false, blocks::irv1_bn_eps, "last_linear",
                                                      "last_bn"));
    if (o.num_classes > 0)
      r.add("logits", std::make_unique<layers::linear<T>>(embedding_size, o.num_classes, true));
    else
      r.add("", std::make_unique<layers::l2_normalize<T>>());
  }

  model_info info() const override {
    return {"inception_resnet_v1", input_size, opt_.num_classes > 0 ? opt_.num_classes : embedding_size,
            blocks::irv1_bn_eps};
  }
  std::unique_ptr<model<T>> make_like() const override { return std::make_unique<inception_resnet_v1>(opt_); }

  const inception_resnet_v1_options& options() const noexcept { return opt_; }
  void seed_dropout(std::uint64_t seed) override { dropout_->seed(seed); }

 private:
  template <class F>
  static std::unique_ptr<layers::sequential<T>> repeat(int n, F&& make) {
    auto seq = std::make_unique<layers::sequential<T>>();
    for (int i = 0; i < n; ++i) seq->add(std::to_string(i), make());
    return seq;
  }

  inception_resnet_v1_options opt_;
  layers::dropout<T>* dropout_ = nullptr;
};

}  // namespace facenet::models
