// P x K batch sampler for triplet training: P identities with K images each, plus optional
// single-image identities: as negatives only, or (extra_views >= 2) each as several copies of its
// one photo, which the loader augments independently, so they are also positives for each other.
//
// Choice for identities with fewer than K images: those with >= 2 images are drawn like the rest
// and fill their K slots with replacement (augmentation makes the repeats differ); those with one
// image never anchor a batch (no positive) and are used only as the extra negatives.
//
// Batch b is a pure function of (seed, b): the identity order is reshuffled every epoch from
// (seed, epoch) and image choice is seeded from (seed, epoch, position), so resuming at any step
// reproduces the same batches.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/data/dataset.hpp"

namespace facenet::data {

// SplitMix64 finalizer: decorrelated seeds from (seed, a, b) tuples.
inline std::uint64_t mix_seed(std::uint64_t seed, std::uint64_t a, std::uint64_t b = 0) {
  auto mix = [](std::uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  return mix(mix(mix(seed) ^ a) ^ b);
}

// Uniform integer in [0, n) from a 64-bit engine, identical on every standard library (unlike
// std::uniform_int_distribution). The tiny modulo bias is irrelevant for sampling.
inline std::size_t draw_index(std::mt19937_64& rng, std::size_t n) { return static_cast<std::size_t>(rng() % n); }

struct pk_options {
  int p = 24;                 // identities per batch
  int k = 4;                  // images per identity
  int extra_negatives = 0;    // single-image identities appended to each batch
  std::uint64_t seed = 0;
  int extra_views = 1;        // copies of each extra identity's photo (>= 2: also anchors and positives)
};

// Not thread-safe (it caches the current epoch's order); batch_loader calls it under its lock.
class pk_sampler {
 public:
  pk_sampler(const face_dataset& ds, const pk_options& o) : ds_(&ds), o_(o) {
    FACENET_CHECK(o.p >= 2 && o.k >= 2 && o.extra_negatives >= 0, argument_error,
                  "pk_sampler: need P >= 2 identities and K >= 2 images per batch (got P=" + std::to_string(o.p) +
                      ", K=" + std::to_string(o.k) + ")");
    FACENET_CHECK(o.extra_views >= 1, argument_error,
                  "pk_sampler: extra identities need >= 1 view each (got " + std::to_string(o.extra_views) + ")");
    // Sized in 64 bits first: batch_size() is an int, and absurd flags must not overflow it.
    const std::int64_t size = std::int64_t{o.p} * o.k + std::int64_t{o.extra_negatives} * o.extra_views;
    FACENET_CHECK(size <= std::numeric_limits<int>::max(), argument_error,
                  "pk_sampler: a batch of " + std::to_string(size) + " images is too large");
    for (std::size_t i = 0; i < ds.identities().size(); ++i)
      (ds.identities()[i].images.size() >= 2 ? multi_ : single_).push_back(static_cast<int>(i));
    FACENET_CHECK(static_cast<int>(multi_.size()) >= o.p, argument_error,
                  "pk_sampler: " + std::to_string(multi_.size()) + " identities have >= 2 images, fewer than P=" + std::to_string(o.p));
    FACENET_CHECK(o.extra_negatives == 0 || !single_.empty(), argument_error,
                  "pk_sampler: extra negatives requested but no identity has exactly one image");
  }

  std::int64_t batches_per_epoch() const noexcept { return static_cast<std::int64_t>(multi_.size()) / o_.p; }
  int batch_size() const noexcept { return o_.p * o_.k + o_.extra_negatives * o_.extra_views; }
  const pk_options& options() const noexcept { return o_; }

  // Batch number `b` counted from the start of training.
  std::vector<sample> batch(std::int64_t b) const {
    FACENET_CHECK(b >= 0, argument_error, "pk_sampler: negative batch index");
    const std::int64_t epoch = b / batches_per_epoch(), pos = b % batches_per_epoch();
    const std::vector<int>& order = epoch_order(epoch);
    std::mt19937_64 rng(mix_seed(o_.seed, static_cast<std::uint64_t>(epoch) + 1, static_cast<std::uint64_t>(pos)));
    std::vector<sample> out;
    for (int i = 0; i < o_.p; ++i) {
      const int label = order[static_cast<std::size_t>(pos * o_.p + i)];
      const auto& imgs = ds_->identities()[label].images;
      std::vector<std::size_t> pick(imgs.size());
      std::iota(pick.begin(), pick.end(), 0);
      for (int j = 0; j < o_.k; ++j) {
        std::size_t idx;
        if (imgs.size() >= static_cast<std::size_t>(o_.k)) {  // without replacement: partial Fisher-Yates
          std::swap(pick[j], pick[j + draw_index(rng, pick.size() - j)]);
          idx = pick[j];
        } else {
          idx = draw_index(rng, imgs.size());
        }
        out.push_back({imgs[idx], label});
      }
    }
    for (int i = 0; i < o_.extra_negatives; ++i) {
      const int label = single_[draw_index(rng, single_.size())];
      out.insert(out.end(), static_cast<std::size_t>(o_.extra_views), {ds_->identities()[label].images[0], label});
    }
    return out;
  }

 private:
  const std::vector<int>& epoch_order(std::int64_t epoch) const {
    if (cached_epoch_ != epoch) {
      order_ = multi_;
      std::mt19937_64 rng(mix_seed(o_.seed, 0, static_cast<std::uint64_t>(epoch)));
      for (std::size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[draw_index(rng, i)]);
      cached_epoch_ = epoch;
    }
    return order_;
  }

  const face_dataset* ds_;
  pk_options o_;
  std::vector<int> multi_, single_;
  mutable std::vector<int> order_;
  mutable std::int64_t cached_epoch_ = -1;
};

}  // namespace facenet::data
