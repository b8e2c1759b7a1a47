// Softmax cross-entropy over classifier logits [N, C] with integer labels: the identity-classification
// objective of davidsandberg's train_softmax (the recipe behind the best published FaceNet models).
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

// Writes softmax(logits) into probs ([N, C]) for the backward pass; returns mean loss and accuracy.
template <class T>
classification_stats softmax_cross_entropy_forward(const Tensor<T>& logits, const std::vector<int>& labels, Tensor<T>& probs) {
  detail::check_logits(logits, labels, "softmax_cross_entropy_forward");
  const std::int64_t n = logits.size(0), c = logits.size(1);
  probs.resize({n, c});
  std::vector<double> row_loss(static_cast<std::size_t>(n));
  std::vector<char> correct(static_cast<std::size_t>(n));
  parallel::parallel_for(0, n, [&](std::int64_t i) {
    const T* z = logits.data() + i * c;
    T* p = probs.data() + i * c;
    const std::int64_t arg = std::max_element(z, z + c) - z;
    const T zmax = z[arg];
    double sum = 0;  // shifted by the max so exp never overflows
    for (std::int64_t k = 0; k < c; ++k) sum += std::exp(static_cast<double>(z[k] - zmax));
    const double log_sum = std::log(sum);
    for (std::int64_t k = 0; k < c; ++k) p[k] = static_cast<T>(std::exp(static_cast<double>(z[k] - zmax) - log_sum));
    row_loss[i] = log_sum - static_cast<double>(z[labels[i]] - zmax);
    correct[i] = arg == labels[i];
  });
  classification_stats s;
  for (std::int64_t i = 0; i < n; ++i) s.loss += row_loss[i], s.accuracy += correct[i];
  if (n) s.loss /= static_cast<double>(n), s.accuracy /= static_cast<double>(n);
  return s;
}

// grad_logits = grad_loss * (probs - onehot(labels)) / N.
template <class T>
void softmax_cross_entropy_backward(const Tensor<T>& probs, const std::vector<int>& labels, T grad_loss, Tensor<T>& grad_logits) {
  detail::check_logits(probs, labels, "softmax_cross_entropy_backward");
  const std::int64_t n = probs.size(0), c = probs.size(1);
  grad_logits.resize({n, c});
  const T scale = grad_loss / static_cast<T>(n);
  parallel::parallel_for(0, n, [&](std::int64_t i) {
    const T* p = probs.data() + i * c;
    T* g = grad_logits.data() + i * c;
    for (std::int64_t k = 0; k < c; ++k) g[k] = scale * (p[k] - (k == labels[i] ? T(1) : T(0)));
  });
}

}  // namespace facenet::loss
