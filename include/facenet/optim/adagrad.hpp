// AdaGrad (the FaceNet paper's optimizer), as torch.optim.Adagrad:
//   g += wd w;  sum += g^2;  w -= lr / (1 + (t-1) lr_decay) * g / (sqrt(sum) + eps)
// TensorFlow's AdagradOptimizer (davidsandberg) is initial_accumulator_value = 0.1, eps = 0.
#pragma once

#include <cmath>

#include "facenet/optim/optimizer.hpp"

namespace facenet::optim {

struct adagrad_options {
  double lr = 1e-2;
  double lr_decay = 0;
  double weight_decay = 5e-4;
  double initial_accumulator_value = 0;
  double eps = 1e-10;
};

class adagrad : public optimizer {
 public:
  adagrad(std::vector<parameter> params, const adagrad_options& o) : optimizer(std::move(params), o.lr, o.weight_decay), o_(o) {
    FACENET_CHECK(o.lr_decay >= 0 && o.initial_accumulator_value >= 0 && o.eps >= 0, argument_error,
                  "adagrad: lr_decay, initial_accumulator_value and eps must be >= 0");
  }
  const char* type() const override { return "adagrad"; }

 protected:
  const std::vector<std::string>& buffer_names() const override {
    static const std::vector<std::string> names = {"sum"};
    return names;
  }
  void init_buffers(slot& s) override { s.buffers[0].fill(f(o_.initial_accumulator_value)); }
  void update(slot& s, float* w, const float* g, float wd, std::int64_t begin, std::int64_t end) override {
    const float clr = f(lr() / (1 + static_cast<double>(s.step - 1) * o_.lr_decay)), eps = f(o_.eps);
    float* sum = s.buffers[0].data();
    for (std::int64_t i = begin; i < end; ++i) {
      const float gi = wd != 0 ? g[i] + wd * w[i] : g[i];
      sum[i] = sum[i] + gi * gi;
      w[i] = w[i] + -clr * (gi / (std::sqrt(sum[i]) + eps));
    }
  }

 private:
  adagrad_options o_;
};

}  // namespace facenet::optim
