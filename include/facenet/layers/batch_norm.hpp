// BatchNorm1d/2d with PyTorch semantics (biased batch variance in training, unbiased running
// variance, momentum 0.1). Names: weight, bias, running_mean, running_var.
#pragma once

#include <string>
#include <vector>

#include "facenet/kernels/batch_norm.hpp"
#include "facenet/layers/module.hpp"

namespace facenet::layers {

template <class T>
class batch_norm final : public module<T> {
 public:
  batch_norm(std::int64_t channels, double eps, double momentum = 0.1)
      : weight(Tensor<T>::full(shape{channels}, T(1))),
        bias(shape{channels}),
        running_mean(shape{channels}),
        running_var(Tensor<T>::full(shape{channels}, T(1))),
        eps_(static_cast<T>(eps)),
        momentum_(static_cast<T>(momentum)) {}

  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) override {
    x_ = x;
    training_ = training;
    if (training)
      kernels::batch_norm_forward_training(x, weight, bias, eps_, momentum_, y, saved_mean_, saved_invstd_,
                                           running_mean, running_var);
    else
      kernels::batch_norm_forward_inference(x, weight, bias, running_mean, running_var, eps_, y);
  }

  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(x_, "batch_norm");
    if (training_)
      kernels::batch_norm_backward(dy, x_, weight, saved_mean_, saved_invstd_, dx, weight_grad, bias_grad);
    else
      kernels::batch_norm_backward_inference(dy, x_, weight, running_mean, running_var, eps_, dx, weight_grad,
                                             bias_grad);
  }

  // Standalone inference (BN not folded into a preceding layer): frozen statistics.
  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>&) const override {
    kernels::batch_norm_forward_inference(x, weight, bias, running_mean, running_var, eps_, y);
  }

  void collect(const std::string& prefix, std::vector<parameter<T>>& out) override {
    out.push_back({join_name(prefix, "weight"), &weight, &weight_grad});
    out.push_back({join_name(prefix, "bias"), &bias, &bias_grad});
    out.push_back({join_name(prefix, "running_mean"), &running_mean, nullptr});
    out.push_back({join_name(prefix, "running_var"), &running_var, nullptr});
  }
  void clear_cache() override { x_ = Tensor<T>(); }
  // Once folded into the preceding layer's packed weights, nothing reads them.
  void release_parameters() {
    weight = bias = running_mean = running_var = weight_grad = bias_grad = Tensor<T>();
    clear_cache();
  }

  // Folds this BN (frozen statistics) into a preceding layer's weight [O, ...] and optional bias.
  void fold_into(const Tensor<T>& w, const Tensor<T>& b, Tensor<T>& out_w, Tensor<T>& out_b) const {
    kernels::batch_norm_fold(w, b, weight, bias, running_mean, running_var, eps_, out_w, out_b);
  }

  std::int64_t channels() const { return weight.numel(); }
  T eps() const noexcept { return eps_; }

  Tensor<T> weight, bias, running_mean, running_var;
  Tensor<T> weight_grad, bias_grad;

 private:
  T eps_, momentum_;
  bool training_ = false;
  Tensor<T> x_, saved_mean_, saved_invstd_;
};

}  // namespace facenet::layers
