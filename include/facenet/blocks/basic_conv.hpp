// conv -> BN -> ReLU, the unit both networks are built from. Names: facenet-pytorch's BasicConv2d
// uses "conv"/"bn" under the block name; NN4 (Keras-OpenFace) uses flat names such as
// "inception_3a_3x3_conv1"/"inception_3a_3x3_bn1" with no block component.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "facenet/layers/activation.hpp"
#include "facenet/layers/batch_norm.hpp"
#include "facenet/layers/conv2d.hpp"

namespace facenet::blocks {

template <class T>
class basic_conv final : public layers::module<T> {
 public:
  basic_conv(const layers::conv2d_options& conv, double bn_eps, std::string conv_name = "conv",
             std::string bn_name = "bn")
      : conv_(conv), bn_(conv.out_channels, bn_eps), conv_name_(std::move(conv_name)), bn_name_(std::move(bn_name)) {}

  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) override {
    conv_.forward(x, conv_out_, training);
    bn_.forward(conv_out_, y, training);
    relu_.forward(y, y, training);  // in place: backward needs only the ReLU output
  }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    backward_to_conv(dy);
    conv_.backward(grad_bn_, dx);
  }
  void backward_params(const Tensor<T>& dy) override {
    backward_to_conv(dy);
    conv_.backward_params(grad_bn_);
  }
  void prepare_inference() override {
    if (!stacked_) conv_.prepare_fused(&bn_, true);
  }
  void convert_to_inference() override {
    prepare_inference();
    conv_.release_parameters();
    bn_.release_parameters();  // folded into the conv's packed weights
    clear_cache();
  }
  void infer(const Tensor<T>& x, Tensor<T>& y, layers::workspace<T>& ws) const override { conv_.infer(x, y, ws); }

  void collect(const std::string& prefix, std::vector<layers::parameter<T>>& out) override {
    conv_.collect(layers::join_name(prefix, conv_name_), out);
    bn_.collect(layers::join_name(prefix, bn_name_), out);
  }
  void conv_kernels(std::vector<shape>& out) const override { conv_.conv_kernels(out); }
  void clear_cache() override {
    conv_.clear_cache();
    bn_.clear_cache();
    relu_.clear_cache();
    conv_out_ = Tensor<T>();
    grad_ = Tensor<T>();
    grad_bn_ = Tensor<T>();
  }

  // 1x1, stride 1, unpadded: a convolution a concat may stack with its siblings' into one.
  bool pointwise() const noexcept {
    const layers::conv2d_options& o = conv_.options();
    return o.kernel_h == 1 && o.kernel_w == 1 && o.stride_h == 1 && o.stride_w == 1 && o.pad_h == 0 && o.pad_w == 0;
  }
  // The convolution with BN folded in, as inference packs it; false once the weights were released.
  bool fold(Tensor<T>& w, Tensor<T>& b) const {
    if (conv_.weight.empty() || bn_.weight.empty()) return false;
    bn_.fold_into(conv_.weight, conv_.bias, w, b);
    return true;
  }
  // A concat runs this conv inside a stacked one: inference packs no weights of its own for it.
  void run_stacked() {
    stacked_ = true;
    conv_.release_plan();
  }

  layers::conv2d<T>& conv() noexcept { return conv_; }
  layers::batch_norm<T>& bn() noexcept { return bn_; }

 private:
  void backward_to_conv(const Tensor<T>& dy) {
    relu_.backward(dy, grad_);
    bn_.backward(grad_, grad_bn_);
  }

  layers::conv2d<T> conv_;
  layers::batch_norm<T> bn_;
  layers::relu<T> relu_;
  std::string conv_name_, bn_name_;
  Tensor<T> conv_out_, grad_, grad_bn_;
  bool stacked_ = false;
};

}  // namespace facenet::blocks
