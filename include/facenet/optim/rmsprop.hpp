// RMSProp, as torch.optim.RMSprop (optionally centered, with momentum):
//   g += wd w;  sq = alpha sq + (1-alpha) g^2;  avg = sqrt(sq [- mean_g^2]) + eps;
//   momentum: buf = momentum buf + g / avg, w -= lr buf;  else w -= lr g / avg
// davidsandberg's RMSPROP is decay 0.9, momentum 0.9, eps 1.0 (TF puts eps inside the sqrt; we follow torch).
#pragma once

#include <cmath>

#include "facenet/optim/optimizer.hpp"

namespace facenet::optim {

struct rmsprop_options {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double momentum = 0;
  bool centered = false;
  double weight_decay = 5e-4;
};

class rmsprop : public optimizer {
 public:
  rmsprop(std::vector<parameter> params, const rmsprop_options& o) : optimizer(std::move(params), o.lr, o.weight_decay), o_(o) {
    FACENET_CHECK(o.alpha >= 0 && o.alpha <= 1 && o.momentum >= 0 && o.eps >= 0, argument_error,
                  "rmsprop: alpha must lie in [0, 1], momentum and eps must be >= 0");
    names_ = {"square_avg"};
    if (o.momentum > 0) names_.push_back("momentum_buffer");
    if (o.centered) names_.push_back("grad_avg");
  }
  const char* type() const override { return o_.centered ? "rmsprop-centered" : "rmsprop"; }

 protected:
  const std::vector<std::string>& buffer_names() const override { return names_; }
  void update(slot& s, float* w, const float* g, float wd, std::int64_t begin, std::int64_t end) override {
    const float a = f(o_.alpha), c = f(1 - o_.alpha), eps = f(o_.eps), rate = f(lr()), mom = f(o_.momentum);
    float* sq = s.buffers[0].data();
    float* buf = o_.momentum > 0 ? s.buffers[1].data() : nullptr;
    float* mean = o_.centered ? s.buffers.back().data() : nullptr;
    for (std::int64_t i = begin; i < end; ++i) {
      const float gi = wd != 0 ? g[i] + wd * w[i] : g[i];
      sq[i] = sq[i] * a + c * (gi * gi);
      float avg;
      if (mean) {
        mean[i] = mean[i] * a + c * gi;
        avg = std::sqrt(sq[i] + -1.0f * (mean[i] * mean[i])) + eps;
      } else {
        avg = std::sqrt(sq[i]) + eps;
      }
      if (buf) {
        buf[i] = buf[i] * mom + gi / avg;
        w[i] = w[i] + -rate * buf[i];
      } else {
        w[i] = w[i] + -rate * (gi / avg);
      }
    }
  }

 private:
  rmsprop_options o_;
  std::vector<std::string> names_;
};

}  // namespace facenet::optim
