// Cross-channel local response normalisation (Torch SpatialCrossMapLRN / nn.LocalResponseNorm):
// y = x / (k + alpha / size * sum_{window} x^2)^beta. NN4 uses size 5, alpha 1e-4, beta 0.75, k 1.
// Backward recomputes the window sums from the cached input.
#pragma once

#include "facenet/kernels/lrn.hpp"
#include "facenet/layers/module.hpp"

namespace facenet::layers {

template <class T>
class lrn final : public module<T> {
 public:
  lrn(std::int64_t size, double alpha, double beta, double k)
      : size_(size), alpha_(static_cast<T>(alpha)), beta_(static_cast<T>(beta)), k_(static_cast<T>(k)) {}

  void forward(const Tensor<T>& x, Tensor<T>& y, bool) override {
    kernels::lrn_cross_channel_forward(x, size_, alpha_, beta_, k_, y);
    x_ = x;
  }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_forward_cache(x_, "lrn");
    kernels::lrn_cross_channel_backward(dy, x_, size_, alpha_, beta_, k_, dx);
  }
  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>&) const override {
    kernels::lrn_cross_channel_forward(x, size_, alpha_, beta_, k_, y);
  }
  void clear_cache() override { x_ = Tensor<T>(); }

 private:
  std::int64_t size_;
  T alpha_, beta_, k_;
  Tensor<T> x_;
};

}  // namespace facenet::layers
