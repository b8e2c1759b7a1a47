// Inverted dropout (nn.Dropout): in training each element is zeroed with probability p and the rest
// scaled by 1 / (1 - p); identity otherwise. Each training forward draws a fresh mask from
// (seed, step), so a seed replays a whole run; the mask is what backward needs.
#pragma once

#include <cstdint>

#include "facenet/kernels/dropout.hpp"
#include "facenet/layers/module.hpp"

namespace facenet::layers {

template <class T>
class dropout final : public module<T> {
 public:
  explicit dropout(double p, std::uint64_t seed = 0x5eed) : p_(p), seed_(seed) {
    FACENET_CHECK(p >= 0 && p < 1, argument_error, "dropout: probability must be in [0, 1), got " + std::to_string(p));
  }
  void seed(std::uint64_t s) {
    seed_ = s;
    step_ = 0;
  }
  double probability() const noexcept { return p_; }

  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) override {
    active_ = training && p_ > 0;
    // Golden-ratio stride keeps the per-step seeds of one run far apart in the hash's input space.
    const std::uint64_t s = seed_ + 0x9E3779B97F4A7C15ull * step_;
    if (active_) ++step_;
    kernels::dropout_forward(x, static_cast<T>(p_), s, active_, y, mask_);
  }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    if (active_) {
      kernels::dropout_backward(dy, mask_, dx);
    } else {
      dx.resize(dy.shape());
      dx.copy_from(dy);
    }
  }
  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>&) const override {
    y.resize(x.shape());
    y.copy_from(x);
  }
  void clear_cache() override { mask_ = Tensor<T>(); }

 private:
  double p_;
  std::uint64_t seed_, step_ = 0;
  bool active_ = false;
  Tensor<T> mask_;
};

}  // namespace facenet::layers
