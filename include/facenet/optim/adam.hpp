// Adam (optionally AMSGrad), as torch.optim.Adam with L2 weight decay folded into the gradient:
//   g += wd w;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
//   w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
#pragma once

#include <cmath>

#include "facenet/optim/optimizer.hpp"

namespace facenet::optim {

struct adam_options {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 5e-4;
  bool amsgrad = false;
};

class adam : public optimizer {
 public:
  adam(std::vector<parameter> params, const adam_options& o) : optimizer(std::move(params), o.lr, o.weight_decay), o_(o) {
    FACENET_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, argument_error,
                  "adam: betas must lie in [0, 1), got (" + format_double(o.beta1) + ", " + format_double(o.beta2) + ")");
    FACENET_CHECK(o.eps >= 0, argument_error, "adam: negative eps");
  }
  const char* type() const override { return o_.amsgrad ? "adam-amsgrad" : "adam"; }

 protected:
  const std::vector<std::string>& buffer_names() const override {
    static const std::vector<std::string> plain = {"exp_avg", "exp_avg_sq"}, ams = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"};
    return o_.amsgrad ? ams : plain;
  }
  void update(slot& s, float* w, const float* g, float wd, std::int64_t begin, std::int64_t end) override {
    const double t = static_cast<double>(s.step);
    const float step_size = f(lr() / (1 - std::pow(o_.beta1, t)));
    const float bc2_sqrt = f(std::sqrt(1 - std::pow(o_.beta2, t)));
    const float b1 = f(o_.beta1), b2 = f(o_.beta2), c1 = f(1 - o_.beta1), c2 = f(1 - o_.beta2), eps = f(o_.eps);
    float* m = s.buffers[0].data();
    float* v = s.buffers[1].data();
    float* vmax = o_.amsgrad ? s.buffers[2].data() : nullptr;
    for (std::int64_t i = begin; i < end; ++i) {
      const float gi = wd != 0 ? g[i] + wd * w[i] : g[i];
      m[i] = m[i] * b1 + c1 * gi;
      v[i] = v[i] * b2 + c2 * (gi * gi);
      float second = v[i];
      if (vmax) second = vmax[i] = std::max(vmax[i], v[i]);
      const float denom = std::sqrt(second) / bc2_sqrt + eps;
      w[i] = w[i] + -step_size * (m[i] / denom);
    }
  }

 private:
  adam_options o_;
};

}  // namespace facenet::optim
