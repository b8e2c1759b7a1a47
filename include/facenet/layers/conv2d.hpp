// 2-D convolution module (PyTorch Conv2d / Torch7 SpatialConvolution): weight [O, I, kh, kw] and an
// optional bias [O]. Backward needs only the input, which is what it caches. For inference the
// weights (with a following BN folded in, and a fused ReLU / scaled residual) are packed once into a
// kernels::conv2d_plan.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "facenet/kernels/conv2d.hpp"
#include "facenet/layers/batch_norm.hpp"
#include "facenet/layers/module.hpp"
#include "facenet/layers/profile.hpp"

namespace facenet::layers {

struct conv2d_options {
  std::int64_t in_channels = 0, out_channels = 0;
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;  // symmetric, as nn.Conv2d(padding=(ph, pw))
  bool bias = false;
};

// Square-kernel shorthand: conv_spec(in, out, k, stride, pad).
inline conv2d_options conv_spec(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride = 1,
                                std::int64_t pad = 0, bool bias = false) {
  return {in, out, k, k, stride, stride, pad, pad, bias};
}

template <class T>
class conv2d final : public module<T> {
 public:
  explicit conv2d(const conv2d_options& o) : opt_(o) {
    FACENET_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel_h > 0 && o.kernel_w > 0 && o.stride_h > 0 &&
                      o.stride_w > 0 && o.pad_h >= 0 && o.pad_w >= 0,
                  argument_error, "conv2d: invalid options");
    weight = Tensor<T>::zeros_on_demand(shape{o.out_channels, o.in_channels, o.kernel_h, o.kernel_w});
    if (o.bias) bias = Tensor<T>(shape{o.out_channels});
    params_ = kernels::conv2d_params::symmetric(static_cast<int>(o.pad_h), static_cast<int>(o.pad_w),
                                                static_cast<int>(o.stride_h), static_cast<int>(o.stride_w));
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, bool) override {
    x_ = x;
    kernels::conv2d_forward(x, weight, bias, y, params_);
    profile_flops(flops(y));
  }

  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(x_, "conv2d");
    match_grad(weight, weight_grad);
    kernels::conv2d_backward_weight(x_, dy, weight_grad, opt_.bias ? &bias_grad : nullptr, params_);
    kernels::conv2d_backward_data(dy, weight, x_.shape(), dx, params_);
    profile_flops(2 * flops(dy));  // weight and data gradients: one forward's worth each
  }
  void backward_params(const Tensor<T>& dy) override {
    require_forward_cache(x_, "conv2d");
    match_grad(weight, weight_grad);
    kernels::conv2d_backward_weight(x_, dy, weight_grad, opt_.bias ? &bias_grad : nullptr, params_);
    profile_flops(flops(dy));
  }

  // Packs the weights once; `bn` (may be null) is folded in, `relu` fused into the epilogue.
  void prepare_fused(const batch_norm<T>* bn, bool relu) {
    Tensor<T> w = weight, b = bias;
    if (bn) {
      w = Tensor<T>();
      b = Tensor<T>();
      bn->fold_into(weight, bias, w, b);
    }
    plan_ = std::make_shared<const kernels::conv2d_plan<T>>(
        w, b, params_, relu ? kernels::activation::relu : kernels::activation::none);
  }
  void prepare_inference() override { prepare_fused(nullptr, false); }
  void convert_to_inference() override {
    prepare_inference();
    release_parameters();
  }
  // After prepare_*: infer() reads only the packed plan.
  void release_parameters() {
    weight = bias = weight_grad = bias_grad = x_ = Tensor<T>();
  }

  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>& ws) const override { infer_residual(x, y, ws, nullptr, T(1)); }

  // y = act(residual + scale * conv(x)) in one pass (residual may be null: y = act(scale * conv(x))).
  void infer_residual(const Tensor<T>& x, Tensor<T>& y, workspace<T>& ws, const Tensor<T>* residual, T scale) const {
    FACENET_CHECK(plan_ != nullptr, argument_error, "conv2d: infer() before prepare_inference()");
    plan_->forward(x, y, ws.kernel_scratch(), residual, scale);
    profile_flops(flops(y));
  }

  void collect(const std::string& prefix, std::vector<parameter<T>>& out) override {
    out.push_back({join_name(prefix, "weight"), &weight, &weight_grad});
    if (opt_.bias) out.push_back({join_name(prefix, "bias"), &bias, &bias_grad});
  }
  void clear_cache() override { x_ = Tensor<T>(); }
  void conv_kernels(std::vector<shape>& out) const override {
    out.push_back(shape{opt_.out_channels, opt_.in_channels, opt_.kernel_h, opt_.kernel_w});
  }

  const conv2d_options& options() const noexcept { return opt_; }
  // 2 x multiply-adds of a forward pass producing `y`.
  double flops(const Tensor<T>& y) const noexcept {
    return 2.0 * static_cast<double>(y.numel()) * static_cast<double>(opt_.in_channels * opt_.kernel_h * opt_.kernel_w);
  }

  Tensor<T> weight, bias, weight_grad, bias_grad;

 private:
  conv2d_options opt_;
  kernels::conv2d_params params_;
  Tensor<T> x_;
  std::shared_ptr<const kernels::conv2d_plan<T>> plan_;
};

}  // namespace facenet::layers
