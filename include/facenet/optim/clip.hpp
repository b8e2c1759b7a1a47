// Gradient clipping by global norm (torch.nn.utils.clip_grad_norm_) and the finiteness check the
// training loop runs before every update.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/optim/optimizer.hpp"

namespace facenet::optim {

// Throws numeric_error naming the first trainable parameter whose gradient holds NaN or Inf.
inline void check_finite_gradients(const std::vector<parameter>& params, const std::string& context = "") {
  for (const parameter& p : params) {
    if (p.frozen) continue;
    const float* g = p.grad.data();
    for (std::int64_t i = 0; i < p.grad.numel(); ++i)
      FACENET_CHECK(std::isfinite(g[i]), numeric_error,
                    (context.empty() ? std::string() : context + ": ") + "gradient of '" + p.name + "' is " +
                        (std::isnan(g[i]) ? "NaN" : "infinite") + " at element " + std::to_string(i));
  }
}

// Scales the trainable gradients by min(1, max_norm / (norm + 1e-6)) where norm is the 2-norm of
// all of them together; returns that norm (before scaling).
inline double clip_grad_norm(std::vector<parameter>& params, double max_norm) {
  FACENET_CHECK(max_norm > 0, argument_error, "clip_grad_norm: max_norm must be > 0, got " + format_double(max_norm));
  double sum = 0;
  for (const parameter& p : params) {
    if (p.frozen) continue;
    double s = 0;  // per tensor first, like torch's norm of norms
    for (const float g : p.grad) s += static_cast<double>(g) * g;
    sum += s;
  }
  const double norm = std::sqrt(sum);
  FACENET_CHECK(std::isfinite(norm), numeric_error, "clip_grad_norm: the gradient norm is not finite");
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1) {
    const float c = static_cast<float>(coef);
    for (parameter& p : params)
      if (!p.frozen)
        for (float& g : p.grad) g *= c;
  }
  return norm;
}

inline double clip_grad_norm(optimizer& opt, double max_norm) { return clip_grad_norm(opt.parameters(), max_norm); }

}  // namespace facenet::optim
