// 2-D convolution module (PyTorch Conv2d / Torch7 SpatialConvolution): weight [O, I, kh, kw] and an
// optional bias [O]. Backward needs only the input, which is what it caches. For inference the
// weights (with a following BN folded in, and a fused ReLU / scaled residual) are packed once into a
// kernels::conv2d_plan.
#pragma once

#include <memory>
#include <optional>
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

  // The weights are packed once per call into a plan kept for the next (no allocation in steady
  // state): the batch's images then share one packing, and 3x3 layers can take Winograd.
  void forward(const Tensor<T>& x, Tensor<T>& y, bool) override {
    x_ = x;
    repacked(forward_plan_, weight, bias, params_, training_forward_algo()).forward(x, y, ws_);
    profile_flops(flops(y));
  }

  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(x_, "conv2d");
    match_grad(weight, weight_grad);
    kernels::conv2d_backward_weight(x_, dy, weight_grad, opt_.bias ? &bias_grad : nullptr, params_);
    const kernels::conv2d_algo data_grad = data_grad_algo();
    if (data_grad != kernels::conv2d_algo::gemm) {
      kernels::conv2d_flip_weights(weight, flipped_);
      repacked(data_grad_plan_, flipped_, Tensor<T>(), kernels::conv2d_data_grad_params(weight.shape(), params_), data_grad)
          .forward(dy, dx, ws_);
    } else {
      kernels::conv2d_backward_data(dy, weight, x_.shape(), dx, params_);
    }
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
    weight = bias = weight_grad = bias_grad = x_ = flipped_ = ws_ = Tensor<T>();
    forward_plan_.reset();
    data_grad_plan_.reset();
  }

  void release_plan() noexcept { plan_.reset(); }

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
  // The data gradient runs as a convolution of dy (kernels::conv2d_data_grad_is_conv) only where that
  // takes Winograd: NN4 batch 96, 2 threads, AVX2: conv3 182 -> 164 ms, inception_3a/3b 3x3 52 -> 48
  // ms; by GEMM it was slower than backward_data's grouped products (4a-5b 3x3 and 5x5: 11 -> 20 ms).
  // Training keeps F(2x2, 5x5) out of both passes. Its forward made NN4's 5x5 layers faster but the
  // whole batch-96 step 2-3% slower (facenet bench --train, 4 alternating runs: 892-906 -> 917-929
  // ms; the layers after them lost the time), and as the data gradient it was slower than
  // backward_data (inception_3b 31.1 -> 32.4 ms, 4a 8.3 -> 10.4 ms).
  kernels::conv2d_algo training_forward_algo() const {
    return opt_.kernel_h == 5 && opt_.kernel_w == 5 ? kernels::conv2d_algo::gemm : kernels::conv2d_algo::automatic;
  }
  kernels::conv2d_algo data_grad_algo() const {
    if (!kernels::conv2d_data_grad_is_conv(weight.shape(), params_)) return kernels::conv2d_algo::gemm;
    const shape flipped{weight.size(1), weight.size(0), weight.size(2), weight.size(3)};
    const kernels::conv2d_algo algo = kernels::conv2d_plan<T>::automatic_algo(
        flipped, kernels::conv2d_data_grad_params(weight.shape(), params_), x_.h(), x_.w());
    return algo == kernels::conv2d_algo::winograd_5x5 ? kernels::conv2d_algo::gemm : algo;
  }

  // The data-gradient plan is built for the algorithm chosen: an automatic plan would keep a copy of
  // the weights each step for forms it never packs.
  static kernels::conv2d_plan<T>& repacked(std::optional<kernels::conv2d_plan<T>>& plan, const Tensor<T>& w,
                                           const Tensor<T>& b, const kernels::conv2d_params& p,
                                           kernels::conv2d_algo algo = kernels::conv2d_algo::automatic) {
    if (plan)
      plan->repack(w, b);
    else
      plan.emplace(w, b, p, kernels::activation::none, algo);
    return *plan;
  }

  conv2d_options opt_;
  kernels::conv2d_params params_;
  Tensor<T> x_;
  std::shared_ptr<const kernels::conv2d_plan<T>> plan_;  // inference
  // Training: forward and data-gradient plans, the flipped weights and the kernels' workspace.
  std::optional<kernels::conv2d_plan<T>> forward_plan_, data_grad_plan_;
  Tensor<T> flipped_, ws_;
};

}  // namespace facenet::layers
