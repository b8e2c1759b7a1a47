// Scalar twins of kernels/triplet.hpp: the test oracle (plain loops, one triplet at a time).
#pragma once

#include <cstdint>
#include <vector>

#include "facenet/kernels/triplet.hpp"

namespace facenet::kernels::reference {

using facenet::kernels::triplet;

template <class T>
void pairwise_squared_distance_forward(const Tensor<T>& embeddings, Tensor<T>& dist) {
  kernels::detail::check_embeddings(embeddings, "pairwise_squared_distance_forward");
  const std::int64_t n = embeddings.size(0), d = embeddings.size(1);
  dist.resize({n, n});
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      T s = 0;
      for (std::int64_t k = 0; k < d; ++k) s += (embeddings(i, k) - embeddings(j, k)) * (embeddings(i, k) - embeddings(j, k));
      dist(i, j) = s;
    }
}

template <class T>
T triplet_loss_forward(const Tensor<T>& embeddings, const std::vector<triplet>& triplets, T alpha,
                       Tensor<T>& per_triplet) {
  kernels::detail::check_embeddings(embeddings, "triplet_loss_forward");
  const std::int64_t d = embeddings.size(1);
  kernels::detail::check_triplets(triplets, embeddings.size(0), "triplet_loss_forward");
  const std::int64_t m = static_cast<std::int64_t>(triplets.size());
  per_triplet.resize({m});
  T sum = 0;
  for (std::int64_t t = 0; t < m; ++t) {
    T ap = 0, an = 0;
    for (std::int64_t k = 0; k < d; ++k) {
      const T a = embeddings(triplets[t].anchor, k);
      ap += (a - embeddings(triplets[t].positive, k)) * (a - embeddings(triplets[t].positive, k));
      an += (a - embeddings(triplets[t].negative, k)) * (a - embeddings(triplets[t].negative, k));
    }
    per_triplet(t) = ap - an + alpha < T(0) ? T(0) : ap - an + alpha;
    sum += per_triplet(t);
  }
  return m ? sum / static_cast<T>(m) : T(0);
}

template <class T>
void triplet_loss_backward(const Tensor<T>& embeddings, const std::vector<triplet>& triplets,
                           const Tensor<T>& per_triplet, T grad_loss, Tensor<T>& grad_embeddings) {
  kernels::detail::check_embeddings(embeddings, "triplet_loss_backward");
  const std::int64_t n = embeddings.size(0), d = embeddings.size(1);
  kernels::detail::check_triplets(triplets, n, "triplet_loss_backward");
  const std::int64_t m = static_cast<std::int64_t>(triplets.size());
  check_shape(per_triplet, shape{m}, "triplet_loss_backward: per_triplet");
  grad_embeddings.resize({n, d});
  grad_embeddings.zero();
  for (std::int64_t t = 0; t < m; ++t) {
    if (!(per_triplet(t) > T(0))) continue;
    const T s = T(2) * grad_loss / static_cast<T>(m);
    const auto [a, p, ng] = triplets[t];
    for (std::int64_t k = 0; k < d; ++k) {
      const T ea = embeddings(a, k), ep = embeddings(p, k), en = embeddings(ng, k);
      grad_embeddings(a, k) += s * (en - ep);
      grad_embeddings(p, k) += s * (ep - ea);
      grad_embeddings(ng, k) += s * (ea - en);
    }
  }
}

}  // namespace facenet::kernels::reference
