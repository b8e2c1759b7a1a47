// ReLU as a module. Backward needs only the output, so that is what it caches.
#pragma once

#include "facenet/kernels/activation.hpp"
#include "facenet/layers/module.hpp"

namespace facenet::layers {

template <class T>
class relu final : public module<T> {
 public:
  void forward(const Tensor<T>& x, Tensor<T>& y, bool) override {
    kernels::relu_forward(x, y);
    y_ = y;
  }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(y_, "relu");
    kernels::relu_backward(dy, y_, dx);
  }
  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>&) const override { kernels::relu_forward(x, y); }
  void clear_cache() override { y_ = Tensor<T>(); }

 private:
  Tensor<T> y_;
};

}  // namespace facenet::layers
