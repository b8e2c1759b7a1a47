// Center loss (Wen et al. 2016) as davidsandberg's facenet.center_loss: per-class centers that are
// not trained by gradient but pulled towards the features, and
//   loss = mean over all N*D elements of (f - c_y)^2,  d loss / d f = 2 (f - c_y) / (N D).
// After each step update() moves every center: c_y -= (1 - alfa) sum_{i: y_i = y} (c_y - f_i)
// (tf.scatter_sub semantics: duplicates in the batch accumulate).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::loss {

template <class T>
class center_loss {
 public:
  center_loss(std::int64_t classes, std::int64_t dim, double alfa = 0.95) : centers_({classes, dim}), alfa_(alfa) {
    FACENET_CHECK(classes > 0 && dim > 0, argument_error, "center_loss: classes and dim must be positive");
    FACENET_CHECK(alfa >= 0 && alfa <= 1, argument_error, "center_loss: alfa must lie in [0, 1], got " + std::to_string(alfa));
  }

  // Returns the loss with the current centers and writes its gradient w.r.t. the features.
  T forward_backward(const Tensor<T>& features, const std::vector<int>& labels, Tensor<T>& grad_features) const {
    check(features, labels, "center_loss");
    const std::int64_t n = features.size(0), d = features.size(1);
    grad_features.resize({n, d});
    const T scale = T(2) / static_cast<T>(n * d);
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = 0; k < d; ++k) {
        const T diff = features(i, k) - centers_(labels[i], k);
        sum += static_cast<double>(diff) * static_cast<double>(diff);
        grad_features(i, k) = scale * diff;
      }
    return static_cast<T>(sum / static_cast<double>(n * d));
  }

  void update(const Tensor<T>& features, const std::vector<int>& labels) {
    check(features, labels, "center_loss::update");
    const std::int64_t n = features.size(0), d = features.size(1);
    const Tensor<T> before = centers_.clone();  // every diff uses the pre-update centers
    const T rate = static_cast<T>(1 - alfa_);
    for (std::int64_t i = 0; i < n; ++i)
      for (std::int64_t k = 0; k < d; ++k) centers_(labels[i], k) -= rate * (before(labels[i], k) - features(i, k));
  }

  Tensor<T>& centers() noexcept { return centers_; }
  const Tensor<T>& centers() const noexcept { return centers_; }

 private:
  void check(const Tensor<T>& f, const std::vector<int>& labels, const char* what) const {
    FACENET_CHECK(f.rank() == 2 && f.size(1) == centers_.size(1), shape_error,
                  std::string(what) + ": features must be [N, " + std::to_string(centers_.size(1)) + "], got " + f.shape().str());
    FACENET_CHECK(static_cast<std::int64_t>(labels.size()) == f.size(0), shape_error,
                  std::string(what) + ": " + std::to_string(labels.size()) + " labels for " + std::to_string(f.size(0)) + " rows");
    for (std::size_t i = 0; i < labels.size(); ++i)
      FACENET_CHECK(labels[i] >= 0 && labels[i] < centers_.size(0), argument_error,
                    std::string(what) + ": label " + std::to_string(labels[i]) + " of row " + std::to_string(i) + " outside [0, " +
                        std::to_string(centers_.size(0)) + ")");
  }

  Tensor<T> centers_;
  double alfa_;
};

}  // namespace facenet::loss
