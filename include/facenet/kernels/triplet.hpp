// Triplet loss kernels on embeddings [N, D] (rows are usually L2-normalized):
//   loss = mean over the M selected triplets of max(0, |a-p|^2 - |a-n|^2 + alpha)
// (davidsandberg's triplet_loss: the mean runs over every selected triplet, inactive ones included),
// plus the pairwise squared-distance matrix that online mining reads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/simd.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::kernels {

// Row indices into the embedding matrix.
struct triplet {
  std::int64_t anchor, positive, negative;
  bool operator==(const triplet& o) const noexcept {
    return anchor == o.anchor && positive == o.positive && negative == o.negative;
  }
};

namespace detail {

template <class T>
void check_embeddings(const Tensor<T>& emb, const char* kernel) {
  FACENET_CHECK(emb.rank() == 2, shape_error,
                std::string(kernel) + ": embeddings must be [N, D], got " + emb.shape().str());
  emb.require_contiguous(kernel);
}

inline void check_triplets(const std::vector<triplet>& triplets, std::int64_t n, const char* kernel) {
  for (std::size_t t = 0; t < triplets.size(); ++t) {
    const triplet& x = triplets[t];
    const bool ok = x.anchor >= 0 && x.anchor < n && x.positive >= 0 && x.positive < n && x.negative >= 0 && x.negative < n;
    FACENET_CHECK(ok, argument_error,
                  std::string(kernel) + ": triplet " + std::to_string(t) + " (" + std::to_string(x.anchor) + ", " +
                      std::to_string(x.positive) + ", " + std::to_string(x.negative) + ") indexes outside " +
                      std::to_string(n) + " embeddings");
  }
}

// sum_k (x_k - y_k)^2 over d elements.
template <class T>
T squared_distance(const T* x, const T* y, std::int64_t d) {
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  simd::batch<T> acc = simd::broadcast(T(0));
  std::int64_t k = 0;
  for (; k + w <= d; k += w) {
    const auto diff = simd::load(x + k) - simd::load(y + k);
    acc = simd::fma(diff, diff, acc);
  }
  T s = simd::reduce_add(acc);
  for (; k < d; ++k) s += (x[k] - y[k]) * (x[k] - y[k]);
  return s;
}

// out += scale * (x - y) over d elements.
template <class T>
void add_scaled_difference(T* out, const T* x, const T* y, T scale, std::int64_t d) {
  constexpr std::int64_t w = static_cast<std::int64_t>(simd::width<T>);
  const auto s = simd::broadcast(scale);
  std::int64_t k = 0;
  for (; k + w <= d; k += w) simd::store(out + k, simd::fma(s, simd::load(x + k) - simd::load(y + k), simd::load(out + k)));
  for (; k < d; ++k) out[k] += scale * (x[k] - y[k]);
}

// For each embedding row, the triplets that touch it and in which role (0 anchor, 1 positive,
// 2 negative), in triplet order: lets the backward pass own one output row per thread (no atomics,
// deterministic sums).
struct row_uses {
  std::vector<std::int64_t> start;  // size n + 1
  std::vector<std::int64_t> entry;  // 3 * triplet + role
};

inline row_uses index_row_uses(const std::vector<triplet>& triplets, std::int64_t n) {
  row_uses u;
  u.start.assign(static_cast<std::size_t>(n + 1), 0);
  for (const triplet& x : triplets) {
    ++u.start[x.anchor + 1];
    ++u.start[x.positive + 1];
    ++u.start[x.negative + 1];
  }
  for (std::int64_t i = 0; i < n; ++i) u.start[i + 1] += u.start[i];
  u.entry.resize(3 * triplets.size());
  std::vector<std::int64_t> fill(u.start.begin(), u.start.end() - 1);
  for (std::size_t t = 0; t < triplets.size(); ++t) {
    const std::int64_t base = 3 * static_cast<std::int64_t>(t);
    u.entry[fill[triplets[t].anchor]++] = base;
    u.entry[fill[triplets[t].positive]++] = base + 1;
    u.entry[fill[triplets[t].negative]++] = base + 2;
  }
  return u;
}

}  // namespace detail

// dist[i, j] = |e_i - e_j|^2 for embeddings [N, D]; dist is resized to [N, N]. Each pair is computed
// once (row i owns j > i and mirrors it), so the matrix is exactly symmetric.
template <class T>
void pairwise_squared_distance_forward(const Tensor<T>& embeddings, Tensor<T>& dist) {
  detail::check_embeddings(embeddings, "pairwise_squared_distance_forward");
  const std::int64_t n = embeddings.size(0), d = embeddings.size(1);
  dist.resize({n, n});
  const T* e = embeddings.data();
  T* out = dist.data();
  parallel::parallel_for(
      0, n,
      [&](std::int64_t i) {
        out[i * n + i] = T(0);
        for (std::int64_t j = i + 1; j < n; ++j) out[i * n + j] = out[j * n + i] = detail::squared_distance(e + i * d, e + j * d, d);
      },
      8);
}

// per_triplet[t] = max(0, |a-p|^2 - |a-n|^2 + alpha); returns the mean over triplets (0 when none).
template <class T>
T triplet_loss_forward(const Tensor<T>& embeddings, const std::vector<triplet>& triplets, T alpha,
                       Tensor<T>& per_triplet) {
  detail::check_embeddings(embeddings, "triplet_loss_forward");
  const std::int64_t n = embeddings.size(0), d = embeddings.size(1);
  detail::check_triplets(triplets, n, "triplet_loss_forward");
  const std::int64_t m = static_cast<std::int64_t>(triplets.size());
  per_triplet.resize({m});
  const T* e = embeddings.data();
  T* out = per_triplet.data();
  auto hinge = [&](std::int64_t t, T ap, T an) {
    const T v = ap - an + alpha;
    out[t] = v < T(0) ? T(0) : v;  // NaN propagates (like tf.maximum), so a broken step shows
  };
  if (2 * m > n * (n - 1) / 2) {
    // More distances than pairs (batch-all): compute each pair once. squared_distance is symmetric
    // bit for bit, so both paths give identical results.
    Tensor<T> dist;
    pairwise_squared_distance_forward(embeddings, dist);
    const T* dm = dist.data();
    for (std::int64_t t = 0; t < m; ++t) {
      const triplet& x = triplets[t];
      hinge(t, dm[x.anchor * n + x.positive], dm[x.anchor * n + x.negative]);
    }
  } else {
    parallel::parallel_for(
        0, m,
        [&](std::int64_t t) {
          const triplet& x = triplets[t];
          hinge(t, detail::squared_distance(e + x.anchor * d, e + x.positive * d, d),
                detail::squared_distance(e + x.anchor * d, e + x.negative * d, d));
        },
        64);
  }
  T sum = 0;  // serial so the result does not depend on the thread count
  for (std::int64_t t = 0; t < m; ++t) sum += out[t];
  return m ? sum / static_cast<T>(m) : T(0);
}

namespace detail {

// Few triplets: each output row sums the contributions of the triplets that touch it.
template <class T>
void triplet_backward_sparse(const T* e, std::int64_t n, std::int64_t d, const std::vector<triplet>& triplets, const T* loss,
                             T scale, T* g) {
  const row_uses uses = index_row_uses(triplets, n);
  parallel::parallel_for(
      0, n,
      [&](std::int64_t row) {
        T* out = g + row * d;
        for (std::int64_t k = uses.start[row]; k < uses.start[row + 1]; ++k) {
          const std::int64_t t = uses.entry[k] / 3, role = uses.entry[k] % 3;
          if (!(loss[t] > T(0))) continue;
          const T* a = e + triplets[t].anchor * d;
          const T* p = e + triplets[t].positive * d;
          const T* ng = e + triplets[t].negative * d;
          if (role == 0) add_scaled_difference(out, ng, p, scale, d);
          if (role == 1) add_scaled_difference(out, p, a, scale, d);
          if (role == 2) add_scaled_difference(out, a, ng, scale, d);
        }
      },
      4);
}

// Many triplets (batch-all: M >> N): fold them into pair weights w[i][j] (+s for anchor-positive,
// -s for anchor-negative, symmetrized) so the gradient is g_i = sum_j w[i][j] (e_i - e_j): O(M + N^2 D)
// instead of O(M D).
template <class T>
void triplet_backward_dense(const T* e, std::int64_t n, std::int64_t d, const std::vector<triplet>& triplets, const T* loss,
                            T scale, T* g) {
  std::vector<T> w(static_cast<std::size_t>(n * n), T(0));
  for (std::size_t t = 0; t < triplets.size(); ++t) {
    if (!(loss[t] > T(0))) continue;
    const triplet& x = triplets[t];
    w[x.anchor * n + x.positive] += scale, w[x.positive * n + x.anchor] += scale;
    w[x.anchor * n + x.negative] -= scale, w[x.negative * n + x.anchor] -= scale;
  }
  parallel::parallel_for(
      0, n,
      [&](std::int64_t i) {
        T* out = g + i * d;
        for (std::int64_t j = 0; j < n; ++j)
          if (w[i * n + j] != T(0)) add_scaled_difference(out, e + i * d, e + j * d, w[i * n + j], d);
      },
      4);
}

}  // namespace detail

// Gradient of grad_loss * mean_t per_triplet[t] w.r.t. the embeddings (overwrites grad_embeddings,
// resized to [N, D]). Active triplet t contributes 2s(n-p) to a, 2s(p-a) to p, 2s(a-n) to n with
// s = grad_loss / M.
template <class T>
void triplet_loss_backward(const Tensor<T>& embeddings, const std::vector<triplet>& triplets,
                           const Tensor<T>& per_triplet, T grad_loss, Tensor<T>& grad_embeddings) {
  detail::check_embeddings(embeddings, "triplet_loss_backward");
  const std::int64_t n = embeddings.size(0), d = embeddings.size(1);
  detail::check_triplets(triplets, n, "triplet_loss_backward");
  const std::int64_t m = static_cast<std::int64_t>(triplets.size());
  check_shape(per_triplet, shape{m}, "triplet_loss_backward: per_triplet");
  grad_embeddings.resize({n, d});
  grad_embeddings.zero();
  if (m == 0) return;
  const T scale = T(2) * grad_loss / static_cast<T>(m);
  // Sparse costs ~3 M D, dense ~N^2 D once the pair weights are folded.
  if (3 * m > n * n)
    detail::triplet_backward_dense(embeddings.data(), n, d, triplets, per_triplet.data(), scale, grad_embeddings.data());
  else
    detail::triplet_backward_sparse(embeddings.data(), n, d, triplets, per_triplet.data(), scale, grad_embeddings.data());
}

}  // namespace facenet::kernels
