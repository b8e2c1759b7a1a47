// 2-D pooling module: max, average, or L2 (Torch SpatialLPPooling p=2: sqrt(sum x^2) over the
// window, NN4's "L2 pool"). kernel 0 = global average pooling (AdaptiveAvgPool2d(1)). Max pooling caches
// its argmax indices, L2 pooling its input and output.
#pragma once

#include <string>

#include "facenet/kernels/pool.hpp"
#include "facenet/layers/module.hpp"

namespace facenet::layers {

enum class pool_kind { max, avg, l2 };

template <class T>
class pool2d final : public module<T> {
 public:
  pool2d(pool_kind kind, std::int64_t kernel, std::int64_t stride, std::int64_t pad = 0, bool ceil_mode = false)
      : kind_(kind), kernel_(kernel), stride_(stride), pad_(pad), ceil_mode_(ceil_mode) {
    FACENET_CHECK(kernel >= 0 && stride > 0 && pad >= 0 && (kernel > 0 || kind == pool_kind::avg), argument_error,
                  "pool2d: kernel " + std::to_string(kernel) + ", stride " + std::to_string(stride) + ", pad " +
                      std::to_string(pad) + " are invalid");
  }

  void forward(const Tensor<T>& x, Tensor<T>& y, bool) override {
    run(x, y, &indices_);
    x_ = x;
    y_ = y;
  }

  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(x_, "pool2d");
    if (kernel_ == 0) return kernels::global_avg_pool_backward(dy, x_.shape(), dx);
    const auto p = params_for(x_);
    switch (kind_) {
      case pool_kind::max: kernels::max_pool2d_backward(dy, indices_, x_.shape(), p, dx); break;
      case pool_kind::avg: kernels::avg_pool2d_backward(dy, x_.shape(), p, dx); break;
      case pool_kind::l2: kernels::l2_pool2d_backward(dy, x_, y_, p, dx); break;
    }
  }

  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>&) const override { run(x, y, nullptr); }
  void clear_cache() override {
    x_ = y_ = Tensor<T>();
    indices_ = Tensor<std::int32_t>();
  }

 private:
  kernels::pool2d_params params_for(const Tensor<T>& x) const {
    check_rank(x, 4, "pool2d input");
    kernels::pool2d_params p;
    p.kernel_h = p.kernel_w = kernel_;
    p.stride_h = p.stride_w = stride_;
    p.pad_top = p.pad_bottom = p.pad_left = p.pad_right = pad_;
    p.ceil_mode = ceil_mode_;
    return p;
  }
  // Training keeps the argmax indices for backward; inference takes the SIMD path that needs none.
  void run(const Tensor<T>& x, Tensor<T>& y, Tensor<std::int32_t>* indices) const {
    if (kernel_ == 0) return kernels::global_avg_pool_forward(x, y);
    const auto p = params_for(x);
    switch (kind_) {
      case pool_kind::max:
        if (indices)
          kernels::max_pool2d_forward(x, p, y, *indices);
        else
          kernels::max_pool2d_forward(x, p, y);
        break;
      case pool_kind::avg: kernels::avg_pool2d_forward(x, p, y); break;
      case pool_kind::l2: kernels::l2_pool2d_forward(x, p, y); break;
    }
  }

  pool_kind kind_;
  std::int64_t kernel_, stride_, pad_;
  bool ceil_mode_;
  Tensor<T> x_, y_;
  Tensor<std::int32_t> indices_;
};

}  // namespace facenet::layers
