// Softmax cross-entropy over classifier logits [N, C] with integer labels: the identity-classification
// objective of davidsandberg's train_softmax (the recipe behind the best published FaceNet models),
// on top of kernels::log_softmax_forward.
//   loss = mean_i -log softmax(z_i)[y_i];   d loss / d z_i = (softmax(z_i) - onehot(y_i)) / N
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/softmax.hpp"

namespace facenet::loss {

namespace detail {
template <class T>
void check_logits(const Tensor<T>& logits, const std::vector<int>& labels, const char* what) {
  FACENET_CHECK(logits.rank() == 2, shape_error, std::string(what) + ": logits must be [N, C], got " + logits.shape().str());
  logits.require_contiguous(what);
  FACENET_CHECK(static_cast<std::int64_t>(labels.size()) == logits.size(0), shape_error,
                std::string(what) + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(logits.size(0)) + " rows");
  for (std::size_t i = 0; i < labels.size(); ++i)
    FACENET_CHECK(labels[i] >= 0 && labels[i] < logits.size(1), argument_error,
                  std::string(what) + ": label " + std::to_string(labels[i]) + " of row " + std::to_string(i) + " outside [0, " +
                      std::to_string(logits.size(1)) + ")");
}
}  // namespace detail

struct classification_stats {
  double loss = 0;
  double accuracy = 0;  // fraction of rows whose arg-max logit is the label
};

// Writes log_softmax(logits) into log_probs ([N, C]) for the backward pass; returns the mean loss
// and the accuracy.
template <class T>
classification_stats softmax_cross_entropy_forward(const Tensor<T>& logits, const std::vector<int>& labels, Tensor<T>& log_probs) {
  detail::check_logits(logits, labels, "softmax_cross_entropy_forward");
  kernels::log_softmax_forward(logits, log_probs);
  const std::int64_t n = logits.size(0), c = logits.size(1);
  classification_stats s;
  for (std::int64_t i = 0; i < n; ++i) {
    const T* z = logits.data() + i * c;
    s.loss -= static_cast<double>(log_probs.data()[i * c + labels[i]]);
    s.accuracy += (std::max_element(z, z + c) - z) == labels[i];
  }
  if (n) s.loss /= static_cast<double>(n), s.accuracy /= static_cast<double>(n);
  return s;
}

// grad_logits = grad_loss * (exp(log_probs) - onehot(labels)) / N.
template <class T>
void softmax_cross_entropy_backward(const Tensor<T>& log_probs, const std::vector<int>& labels, T grad_loss, Tensor<T>& grad_logits) {
  detail::check_logits(log_probs, labels, "softmax_cross_entropy_backward");
  const std::int64_t n = log_probs.size(0), c = log_probs.size(1);
  grad_logits.resize({n, c});
  const T scale = grad_loss / static_cast<T>(n);
  parallel::parallel_for(0, n, [&](std::int64_t i) {
    const T* lp = log_probs.data() + i * c;
    T* g = grad_logits.data() + i * c;
    for (std::int64_t k = 0; k < c; ++k) g[k] = scale * (std::exp(lp[k]) - (k == labels[i] ? T(1) : T(0)));
  });
}

}  // namespace facenet::loss
