// Row-wise L2 normalisation of [N, E] embeddings (F.normalize(x, p=2, dim=1, eps=1e-12)).
#pragma once

#include "facenet/kernels/l2_normalize.hpp"
#include "facenet/layers/module.hpp"

namespace facenet::layers {

template <class T>
class l2_normalize final : public module<T> {
 public:
  void forward(const Tensor<T>& x, Tensor<T>& y, bool) override {
    kernels::l2_normalize_forward(x, y);
    x_ = x;
  }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(x_, "l2_normalize");
    kernels::l2_normalize_backward(dy, x_, dx);
  }
  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>&) const override { kernels::l2_normalize_forward(x, y); }
  void clear_cache() override { x_ = Tensor<T>(); }

 private:
  Tensor<T> x_;
};

}  // namespace facenet::layers
