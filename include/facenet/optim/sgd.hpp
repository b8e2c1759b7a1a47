// SGD with momentum, dampening and Nesterov, as torch.optim.SGD:
//   d = g + wd w;  buf = d (first step) | momentum buf + (1 - dampening) d;
//   d = nesterov ? d + momentum buf : buf;  w -= lr d
#pragma once

#include "facenet/optim/optimizer.hpp"

namespace facenet::optim {

struct sgd_options {
  double lr = 1e-3;
  double momentum = 0;
  double dampening = 0;
  bool nesterov = false;
  double weight_decay = 5e-4;
};

class sgd : public optimizer {
 public:
  sgd(std::vector<parameter> params, const sgd_options& o) : optimizer(std::move(params), o.lr, o.weight_decay), o_(o) {
    FACENET_CHECK(o.momentum >= 0, argument_error, "sgd: negative momentum " + format_double(o.momentum));
    FACENET_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), argument_error,
                  "sgd: Nesterov momentum requires momentum > 0 and zero dampening");
  }
  const char* type() const override { return "sgd"; }

 protected:
  const std::vector<std::string>& buffer_names() const override {
    static const std::vector<std::string> with = {"momentum_buffer"}, without;
    return o_.momentum != 0 ? with : without;
  }
  void update(slot& s, float* w, const float* g, float wd, std::int64_t begin, std::int64_t end) override {
    const float rate = f(lr()), m = f(o_.momentum), keep = f(1 - o_.dampening);
    float* buf = o_.momentum != 0 ? s.buffers[0].data() : nullptr;
    for (std::int64_t i = begin; i < end; ++i) {
      float d = wd != 0 ? g[i] + wd * w[i] : g[i];
      if (buf) {
        buf[i] = s.step == 1 ? d : buf[i] * m + keep * d;
        d = o_.nesterov ? d + m * buf[i] : buf[i];
      }
      w[i] = w[i] + -rate * d;
    }
  }

 private:
  sgd_options o_;
};

}  // namespace facenet::optim
