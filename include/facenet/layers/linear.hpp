// Fully connected layer (nn.Linear): weight [O, I], optional bias [O]. Inputs of any rank >= 2 are
// read as [N, I] (x.view(N, -1), as after global pooling); dx gets the input's shape. For inference a
// following BatchNorm1d can be folded into the weights.
#pragma once

#include <string>
#include <vector>

#include "facenet/kernels/linear.hpp"
#include "facenet/layers/batch_norm.hpp"
#include "facenet/layers/module.hpp"
#include "facenet/layers/profile.hpp"

namespace facenet::layers {

template <class T>
class linear final : public module<T> {
 public:
  linear(std::int64_t in_features, std::int64_t out_features, bool with_bias)
      : weight(Tensor<T>::zeros_on_demand(shape{out_features, in_features})), in_features_(in_features), has_bias_(with_bias) {
    FACENET_CHECK(in_features > 0 && out_features > 0, argument_error, "linear: feature counts must be positive");
    if (with_bias) bias = Tensor<T>(shape{out_features});
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, bool) override {
    x_ = x;
    kernels::linear_forward(x, weight, bias, y);
    profile_flops(flops(y));
  }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(x_, "linear");
    // Without a bias the kernel's bias gradient lands in scratch and is dropped.
    kernels::linear_backward_weight(dy, x_, weight_grad, has_bias_ ? bias_grad : unused_bias_grad_);
    kernels::linear_backward_data(dy, x_, weight, dx);
    profile_flops(2 * flops(dy));  // weight and data gradients
  }

  // `bn` (may be null) is folded into a private, packed copy of the weights used by infer().
  void prepare_fused(const batch_norm<T>* bn) {
    plan_ = kernels::linear_plan<T>();  // the old plan's memory goes before the new one is made
    if (bn) {
      Tensor<T> folded_w, folded_b;
      bn->fold_into(weight, bias, folded_w, folded_b);
      plan_ = kernels::linear_plan<T>(folded_w, folded_b);
    } else {
      plan_ = kernels::linear_plan<T>(weight, has_bias_ ? bias : Tensor<T>());
    }
  }
  void prepare_inference() override { prepare_fused(nullptr); }
  void convert_to_inference() override {
    prepare_inference();
    release_parameters();
  }
  // After prepare_*: infer() reads only the plan.
  void release_parameters() { weight = bias = weight_grad = bias_grad = x_ = Tensor<T>(); }
  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>& ws) const override {
    FACENET_CHECK(!plan_.empty(), argument_error, "linear: infer() before prepare_inference()");
    plan_.forward(x, y, ws.kernel_scratch());
    profile_flops(flops(y));
  }

  void collect(const std::string& prefix, std::vector<parameter<T>>& out) override {
    out.push_back({join_name(prefix, "weight"), &weight, &weight_grad});
    if (has_bias_) out.push_back({join_name(prefix, "bias"), &bias, &bias_grad});
  }
  void clear_cache() override { x_ = Tensor<T>(); }

  // 2 x multiply-adds of a forward pass producing `y` [N, O].
  double flops(const Tensor<T>& y) const noexcept {
    return 2.0 * static_cast<double>(y.numel()) * static_cast<double>(in_features_);
  }

  Tensor<T> weight, bias, weight_grad, bias_grad;

 private:
  std::int64_t in_features_;
  bool has_bias_;
  Tensor<T> x_, unused_bias_grad_;
  kernels::linear_plan<T> plan_;
};

// Linear followed by BatchNorm1d (IRv1's last_linear + last_bn): one module so inference can fold.
template <class T>
class linear_bn final : public module<T> {
 public:
  linear_bn(std::int64_t in, std::int64_t out, bool with_bias, double eps, std::string linear_name, std::string bn_name)
      : linear_(in, out, with_bias), bn_(out, eps), linear_name_(std::move(linear_name)), bn_name_(std::move(bn_name)) {}

  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) override {
    linear_.forward(x, mid_, training);
    bn_.forward(mid_, y, training);
  }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    bn_.backward(dy, grad_);
    linear_.backward(grad_, dx);
  }
  void prepare_inference() override { linear_.prepare_fused(&bn_); }
  void convert_to_inference() override {
    prepare_inference();
    linear_.release_parameters();
    bn_.release_parameters();  // folded into the linear layer's copy
    clear_cache();
  }
  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>& ws) const override { linear_.infer(x, y, ws); }
  void collect(const std::string& prefix, std::vector<parameter<T>>& out) override {
    linear_.collect(join_name(prefix, linear_name_), out);
    bn_.collect(join_name(prefix, bn_name_), out);
  }
  void clear_cache() override {
    linear_.clear_cache();
    bn_.clear_cache();
    mid_ = grad_ = Tensor<T>();
  }

 private:
  linear<T> linear_;
  batch_norm<T> bn_;
  std::string linear_name_, bn_name_;
  Tensor<T> mid_, grad_;
};

}  // namespace facenet::layers
