// Background batch loading: worker threads (std::thread) decode and augment the samples of the next
// `prefetch` batches while the caller computes on the current one.
//
// Deterministic regardless of thread timing: sample j of batch b draws its augmentation from an RNG
// seeded with (seed, b, j), batches are assembled slot by slot, and next() hands them out in order.
// Decoding sits behind one function (data::load_image by default) so tests and callers can swap it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/data/augment.hpp"
#include "facenet/data/dataset.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/data/sampler.hpp"
#include "facenet/data/standardize.hpp"

namespace facenet::data {

using image_decoder = std::function<image(const std::string& path)>;
// The samples of batch b (empty = no more batches). Called under the loader's lock, in order.
using batch_source = std::function<std::vector<sample>(std::int64_t b)>;

inline image default_decoder(const std::string& path) { return load_image(path); }

// Decoded images kept in memory up to a byte budget (first come, first kept; no eviction), shared by
// the workers. Decoding dominates the per-image cost and is deterministic, so cached and uncached
// runs produce identical batches; small datasets (ORL) fit whole after the first epoch.
class image_cache {
 public:
  explicit image_cache(std::size_t budget_bytes) : budget_(budget_bytes) {}

  std::shared_ptr<const image> get(const std::string& path, const image_decoder& decode) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      const auto it = images_.find(path);
      if (it != images_.end()) {
        ++hits_;
        return it->second;
      }
    }
    auto img = std::make_shared<const image>(decode(path));  // outside the lock: workers decode in parallel
    std::lock_guard<std::mutex> lock(mu_);
    if (used_ + img->pixels.size() <= budget_ && images_.emplace(path, img).second) used_ += img->pixels.size();
    return img;
  }
  std::size_t hits() const {
    std::lock_guard<std::mutex> lock(mu_);
    return hits_;
  }
  std::size_t bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return used_;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const image>> images_;
  std::size_t budget_, used_ = 0, hits_ = 0;
};

struct loader_options {
  int workers = 2;
  int prefetch = 2;              // batches decoded ahead of the one being consumed
  bool random = true;            // draw augmentation parameters; false = identity parameters
  bool flip_all = false;         // mirror every image (flipped-image evaluation)
  augment_options augment;
  standardization standardize = standardization::fixed;
  std::uint64_t seed = 0;
  std::shared_ptr<image_cache> cache;  // optional decoded-image cache
};

struct loaded_batch {
  std::int64_t index = 0;
  Tensor<float> images;  // [B, 3, out_size, out_size]
  std::vector<int> labels;
  std::vector<std::string> paths;
};

// Decodes, augments and standardizes one sample into slot j of `images`.
inline void load_sample(const sample& s, const loader_options& o, const image_decoder& decode, std::int64_t b, std::size_t j,
                        Tensor<float>& images) {
  const std::shared_ptr<const image> held = o.cache ? o.cache->get(s.path, decode) : std::make_shared<const image>(decode(s.path));
  const image& img = *held;
  FACENET_CHECK(img.channels == 3, format_error, s.path + ": expected an RGB image, decoder returned " + std::to_string(img.channels) + " channels");
  augment_params p;
  if (o.random) {
    std::mt19937_64 rng(mix_seed(o.seed, static_cast<std::uint64_t>(b) + 1, j));
    p = draw_augment(o.augment, img.width, img.height, rng);
  }
  if (o.flip_all) p.flip = !p.flip;
  to_tensor(apply_augment(img, o.augment, p), images, static_cast<std::int64_t>(j));
  Tensor<float> slot = images.batch(static_cast<std::int64_t>(j));
  standardize(slot, o.standardize);
}

class batch_loader {
 public:
  batch_loader(batch_source source, const loader_options& o, image_decoder decode = default_decoder, std::int64_t first_batch = 0)
      : source_(std::move(source)), o_(o), decode_(std::move(decode)), next_to_plan_(first_batch) {
    FACENET_CHECK(o.workers >= 1 && o.prefetch >= 1, argument_error, "batch_loader: need >= 1 worker and prefetch >= 1");
    check_augment_options(o.augment);
    for (int i = 0; i < o.workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~batch_loader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  batch_loader(const batch_loader&) = delete;
  batch_loader& operator=(const batch_loader&) = delete;

  // The next batch in order; false when the source is exhausted. Rethrows a worker's error
  // (e.g. an undecodable file) as the facenet error it was.
  bool next(loaded_batch& out) {
    std::unique_lock<std::mutex> lock(mu_);
    plan_locked();
    cv_.notify_all();
    done_cv_.wait(lock, [&] { return pending_.empty() || pending_.front()->remaining == 0; });
    if (pending_.empty()) return false;
    std::unique_ptr<job> j = std::move(pending_.front());
    pending_.pop_front();
    plan_locked();
    cv_.notify_all();
    lock.unlock();
    if (j->error) std::rethrow_exception(j->error);
    out.index = j->index;
    out.images = j->images;
    out.labels.clear();
    out.paths.clear();
    for (const sample& s : j->samples) out.labels.push_back(s.label), out.paths.push_back(s.path);
    return true;
  }

 private:
  struct job {
    std::int64_t index;
    std::vector<sample> samples;
    Tensor<float> images;
    std::size_t next_slot = 0, remaining = 0;
    std::exception_ptr error;
  };

  // Keeps `prefetch` batches planned (caller holds the lock).
  void plan_locked() {
    while (!exhausted_ && static_cast<int>(pending_.size()) < o_.prefetch) {
      auto j = std::make_unique<job>();
      j->index = next_to_plan_;
      j->samples = source_(next_to_plan_);
      if (j->samples.empty()) {
        exhausted_ = true;
        break;
      }
      ++next_to_plan_;
      const std::int64_t s = o_.augment.out_size;
      j->images = Tensor<float>::uninitialized({static_cast<std::int64_t>(j->samples.size()), 3, s, s});
      j->remaining = j->samples.size();
      pending_.push_back(std::move(j));
    }
  }

  void work() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      job* j = nullptr;
      cv_.wait(lock, [&] {
        if (stop_) return true;
        for (auto& p : pending_)
          if (p->next_slot < p->samples.size()) return (j = p.get()) != nullptr;
        return false;
      });
      if (stop_) return;
      const std::size_t slot = j->next_slot++;
      lock.unlock();
      std::exception_ptr err;
      try {
        load_sample(j->samples[slot], o_, decode_, j->index, slot, j->images);
      } catch (...) {
        err = std::current_exception();
      }
      lock.lock();
      if (err && !j->error) j->error = err;
      if (--j->remaining == 0) done_cv_.notify_all();
    }
  }

  batch_source source_;
  loader_options o_;
  image_decoder decode_;
  std::mutex mu_;
  std::condition_variable cv_, done_cv_;
  std::deque<std::unique_ptr<job>> pending_;
  std::vector<std::thread> threads_;
  std::int64_t next_to_plan_;
  bool exhausted_ = false, stop_ = false;
};

// Source of training batches from a P x K sampler (endless; stop by step count).
inline batch_source pk_source(const pk_sampler& sampler) {
  return [&sampler](std::int64_t b) { return sampler.batch(b); };
}

// Source of consecutive slices of a fixed sample list (evaluation / embedding).
inline batch_source list_source(std::vector<sample> samples, std::size_t batch_size) {
  FACENET_CHECK(batch_size > 0, argument_error, "list_source: batch size must be > 0");
  auto all = std::make_shared<std::vector<sample>>(std::move(samples));
  return [all, batch_size](std::int64_t b) {
    const std::size_t first = static_cast<std::size_t>(b) * batch_size;
    if (first >= all->size()) return std::vector<sample>{};
    return std::vector<sample>(all->begin() + first, all->begin() + std::min(all->size(), first + batch_size));
  };
}

}  // namespace facenet::data
