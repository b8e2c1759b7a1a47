// Triplet objective for one batch: mine triplets from the embeddings' pairwise distances, then the
// loss and its gradient w.r.t. the embeddings (the caller chains it back through L2 normalization).
#pragma once

#include <random>
#include <vector>

#include "facenet/kernels/triplet.hpp"
#include "facenet/loss/mining.hpp"

namespace facenet::loss {

template <class T>
struct triplet_loss_result {
  T loss = 0;
  mining_result mining;
};

// Reusable buffers so a training loop does not allocate per step.
template <class T>
class triplet_loss {
 public:
  explicit triplet_loss(mining_options options = {}) : options_(options) {}

  // embeddings [N, D], labels[N]; writes d loss / d embeddings into grad (resized to [N, D]).
  triplet_loss_result<T> operator()(const Tensor<T>& embeddings, const std::vector<int>& labels, std::mt19937_64& rng,
                                    Tensor<T>& grad) {
    kernels::pairwise_squared_distance_forward(embeddings, dist_);
    triplet_loss_result<T> r;
    r.mining = mine_triplets(dist_, labels, options_, rng);
    const T alpha = static_cast<T>(options_.alpha);
    r.loss = kernels::triplet_loss_forward(embeddings, r.mining.triplets, alpha, per_triplet_);
    kernels::triplet_loss_backward(embeddings, r.mining.triplets, per_triplet_, T(1), grad);
    return r;
  }

  const mining_options& options() const noexcept { return options_; }

 private:
  mining_options options_;
  Tensor<T> dist_, per_triplet_;
};

}  // namespace facenet::loss
