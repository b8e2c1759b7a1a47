// What every embedding network shares: a root module, named parameters, loading from / exporting to
// an io::tensor_map with exact name and shape checks, training passes, and the `embedder` inference
// object (BN folded, weights packed once, thread-safe concurrent embed() with pooled workspaces).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/io/tensor_map.hpp"
#include "facenet/layers/module.hpp"
#include "facenet/layers/normalize.hpp"
#include "facenet/layers/profile.hpp"
#include "facenet/layers/sequential.hpp"

namespace facenet::models {

// Static facts about an architecture, also written to weight-file metadata.
struct model_info {
  std::string architecture;  // "nn4_small2", "inception_resnet_v1"
  std::int64_t input_size = 0;
  std::int64_t embedding_size = 0;
  double bn_eps = 0;
};

namespace detail {

// PyTorch state_dicts carry BN step counters that no forward pass reads.
inline bool ignorable_tensor(const std::string& name) {
  const std::string suffix = "num_batches_tracked";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}


}  // namespace detail

template <class T>
class model {
 public:
  virtual ~model() = default;
  model(const model&) = delete;
  model& operator=(const model&) = delete;

  virtual model_info info() const = 0;
  // A new model of the same architecture and configuration (parameters not copied).
  virtual std::unique_ptr<model> make_like() const = 0;
  // Reseeds the dropout mask generator, if the model has one (reproducible training runs).
  virtual void seed_dropout(std::uint64_t /*seed*/) {}

  // x: [N, 3, S, S]; y: [N, E] (embeddings, or logits when a classifier head is configured).
  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) {
    check_input(x);
    root_.forward(x, out_, training);
    y.resize(out_.shape());
    y.copy_from(out_);  // out_ stays untouched for backward whatever the caller does with y
  }
  // dy: gradient w.r.t. the last forward's output. Overwrites every parameter gradient; dx gets the
  // gradient w.r.t. the input.
  void backward(const Tensor<T>& dy, Tensor<T>& dx) {
    FACENET_CHECK(!out_.empty(), argument_error, info().architecture + ": backward called before forward");
    check_shape(dy, out_.shape(), info().architecture + " backward dy");
    root_.backward(dy, dx);
  }
  // backward() without the gradient w.r.t. the input images, which training never reads.
  void backward_params(const Tensor<T>& dy) {
    FACENET_CHECK(!out_.empty(), argument_error, info().architecture + ": backward called before forward");
    check_shape(dy, out_.shape(), info().architecture + " backward dy");
    root_.backward_params(dy);
  }
  // The features before the final L2 normalisation ("prelogits"), for objectives that need their
  // length, e.g. a softmax classifier head as davidsandberg's train_softmax puts it. y: [N, E].
  void forward_prelogits(const Tensor<T>& x, Tensor<T>& y, bool training) {
    check_input(x);
    root_.forward_first(normalize_index(), x, out_, training);
    y.resize(out_.shape());
    y.copy_from(out_);
  }
  // backward_params() for the last forward_prelogits(): dy is the gradient w.r.t. the prelogits.
  void backward_prelogits_params(const Tensor<T>& dy) {
    FACENET_CHECK(!out_.empty(), argument_error, info().architecture + ": backward called before forward");
    check_shape(dy, out_.shape(), info().architecture + " backward dy");
    root_.backward_params_first(normalize_index(), dy);
  }
  // Releases the activations cached by the last forward.
  void clear_cache() {
    root_.clear_cache();
    out_ = Tensor<T>();
  }

  // Every parameter and buffer under its reference state_dict name (grad null for buffers).
  std::vector<layers::parameter<T>> parameters() {
    std::vector<layers::parameter<T>> out;
    root_.collect("", out);
    return out;
  }
  // Learnable parameters only (BN running statistics excluded), as PyTorch's parameters() counts.
  std::int64_t parameter_count() {
    std::int64_t n = 0;
    for (const auto& p : parameters())
      if (p.grad) n += p.value->numel();
    return n;
  }

  // Copies every tensor from `weights`, checking that the names and shapes are exactly the model's.
  void load(const io::tensor_map& weights) { load_checked(weights, false); }
  // The same checks, but a float model takes the map's buffers over instead of copying them (no second
  // set of weights in memory while loading).
  void load(io::tensor_map&& weights) {
    load_checked(weights, true);
    weights = io::tensor_map();
  }

  // Parameters and buffers as float32 under their reference names, plus architecture metadata.
  io::tensor_map export_weights() {
    io::tensor_map map;
    for (const auto& p : parameters()) {
      Tensor<float> t = Tensor<float>::uninitialized(p.value->shape());
      std::transform(p.value->begin(), p.value->end(), t.begin(), [](T v) { return static_cast<float>(v); });
      map.add(p.name, std::move(t));
    }
    const model_info i = info();
    map.metadata["architecture"] = i.architecture;
    map.metadata["input_size"] = std::to_string(i.input_size);
    map.metadata["embedding_size"] = std::to_string(i.embedding_size);
    map.metadata["bn_eps"] = std::to_string(i.bn_eps);
    return map;
  }

  // Same architecture and configuration assumed (make_like()); copies values, not handles.
  void copy_parameters_from(model& other) {
    auto dst = parameters(), src = other.parameters();
    FACENET_CHECK(dst.size() == src.size(), argument_error, info().architecture + ": cannot copy parameters of a different model");
    for (std::size_t i = 0; i < dst.size(); ++i) {
      FACENET_CHECK(dst[i].name == src[i].name && dst[i].value->shape() == src[i].value->shape(), argument_error,
                    info().architecture + ": parameter '" + dst[i].name + "' does not match '" + src[i].name + "'");
      dst[i].value->copy_from(*src[i].value);
    }
  }

  layers::sequential<T>& root() noexcept { return root_; }
  const layers::sequential<T>& root() const noexcept { return root_; }

 protected:
  model() = default;
  // Position of the final L2 normalisation (the last layer of an embedding network).
  std::size_t normalize_index() {
    const std::size_t n = root_.size();
    FACENET_CHECK(n > 1 && dynamic_cast<layers::l2_normalize<T>*>(&root_.child(n - 1)), argument_error,
                  info().architecture + ": no final L2 normalisation to take the prelogits before");
    return n - 1;
  }
  // load(): every tensor's name and shape checked (all problems in one message), values finite; then
  // copied, or for a float model with `adopt`, shared with the map (which the caller gives up).
  void load_checked(const io::tensor_map& weights, bool adopt) {
    auto params = parameters();
    std::vector<std::string> missing, misshaped, extra;
    std::set<std::string> known;
    for (const auto& p : params) {
      known.insert(p.name);
      if (!weights.contains(p.name))
        missing.push_back(p.name);
      else if (weights.at(p.name).shape() != p.value->shape())
        misshaped.push_back(p.name + " (expected " + p.value->shape().str() + ", got " + weights.at(p.name).shape().str() +
                            ")");
    }
    for (const auto& e : weights.entries())
      if (!known.count(e.name) && !detail::ignorable_tensor(e.name)) extra.push_back(e.name);
    std::string problems;
    if (!missing.empty()) problems += "; missing: " + list_names(missing);
    if (!misshaped.empty()) problems += "; mis-shaped: " + list_names(misshaped);
    if (!extra.empty()) problems += "; unexpected: " + list_names(extra);
    FACENET_CHECK(problems.empty(), format_error,
                  info().architecture + ": weights do not match the model" + problems);
    for (auto& p : params) {
      const Tensor<float>& src = weights.at(p.name);
      FACENET_CHECK(src.is_contiguous(), format_error, info().architecture + ": tensor '" + p.name + "' is not contiguous");
      // A NaN/Inf weight would silently turn every embedding into NaN: refuse it here, by name.
      const auto bad = std::find_if(src.begin(), src.end(), [](float v) { return !std::isfinite(v); });
      FACENET_CHECK(bad == src.end(), numeric_error,
                    info().architecture + ": tensor '" + p.name + "' holds " + (std::isnan(*bad) ? "NaN" : "Inf") +
                        " at element " + std::to_string(bad - src.begin()) + " (weights must be finite)");
      if constexpr (std::is_same_v<T, float>) {
        if (adopt && reinterpret_cast<std::uintptr_t>(src.data()) % tensor_alignment == 0) {
          *p.value = src;
          continue;
        }
      }
      std::transform(src.begin(), src.end(), p.value->begin(), [](float v) { return static_cast<T>(v); });
    }
  }
  void check_input(const Tensor<T>& x) const {
    const model_info i = info();
    FACENET_CHECK(x.rank() == 4 && x.size(0) > 0 && x.size(1) == 3 && x.size(2) == i.input_size &&
                      x.size(3) == i.input_size,
                  shape_error,
                  i.architecture + ": expected input [N, 3, " + std::to_string(i.input_size) + ", " +
                      std::to_string(i.input_size) + "] with N >= 1, got " + x.shape().str());
    x.require_contiguous((i.architecture + " input").c_str());
  }

  layers::sequential<T> root_;
  Tensor<T> out_;
};

// Inference form of a model: BN folded into the convs, weights packed once (the originals freed layer
// by layer as they are packed), and a pool of workspaces so concurrent embed() calls are safe and,
// after each workspace has seen the largest batch, allocation-free.
template <class T>
class embedder {
 public:
  // Works on a private copy: `source` stays trainable (and its memory stays in use).
  explicit embedder(model<T>& source) : model_(source.make_like()) {
    model_->copy_parameters_from(source);
    convert();
  }
  // Takes the model over and converts it in place: no copy, so inference holds about one set of
  // weights (packed) plus the workspaces.
  explicit embedder(std::unique_ptr<model<T>> net) : model_(std::move(net)) {
    FACENET_CHECK(model_ != nullptr, argument_error, "embedder: null model");
    convert();
  }

  // x: [N, 3, S, S] -> y: [N, E]. Safe to call from several threads at once. With at least one image
  // per thread, each thread embeds an equal share of the batch with the kernels running serially:
  // that spares a synchronisation per layer and image and splits no small product. Single images, the
  // images left over and profiled calls (the profiler times one thread) run with the kernels
  // parallel inside instead. A network with small weights takes its share in groups of
  // small_weights_group images (see there).
  void embed(const Tensor<T>& x, Tensor<T>& y) const {
    check_input(x);
    const std::int64_t n = x.size(0);
    const int threads = parallel::in_parallel() || layers::active_profiler() ? 1 : parallel::max_threads();
    const std::int64_t share = n / threads;
    if (threads < 2 || share == 0) {
      lease ws(*this);
      model_->root().infer(x, y, ws.get()->ws);
      return;
    }
    y.resize({n, info_.embedding_size});
    parallel::for_shares(share * threads, threads, [&](std::int64_t first, std::int64_t last) {
      for (std::int64_t at = first, count = 0; at < last; at += count) {
        count = std::min(group_, last - at);
        embed_rows(x, at, count, y);
      }
    });
    if (const std::int64_t done = share * threads; done < n) embed_rows(x, done, n - done, y);
  }
  Tensor<T> embed(const Tensor<T>& x) const {
    Tensor<T> y;
    embed(x, y);
    return y;
  }

  const model_info& info() const noexcept { return info_; }

 private:
  // One call's scratch: the network's workspace and, for a share of a split batch, its output.
  struct slot {
    layers::workspace<T> ws;
    Tensor<T> out;
  };
  // A slot borrowed from the pool for one call, returned even when the call throws.
  class lease {
   public:
    explicit lease(const embedder& e) : e_(e), slot_(e.acquire()) {}
    ~lease() { e_.release(std::move(slot_)); }
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    slot* get() const noexcept { return slot_.get(); }

   private:
    const embedder& e_;
    std::unique_ptr<slot> slot_;
  };

  // y[first, first + count) = embeddings of those images of x, through a pooled workspace and output.
  void embed_rows(const Tensor<T>& x, std::int64_t first, std::int64_t count, Tensor<T>& y) const {
    lease held(*this);
    slot& s = *held.get();
    model_->root().infer(x.slice(0, first, count), s.out, s.ws);
    const Tensor<T>& out = s.out;
    FACENET_CHECK(out.shape() == shape({count, info_.embedding_size}), shape_error,
                  "embed: the network gave " + out.shape().str() + " for " + std::to_string(count) + " images, expected " +
                      std::to_string(info_.embedding_size) + " values each");
    std::copy(out.data(), out.data() + out.numel(), y.data() + first * info_.embedding_size);
  }

  // Folds and packs the model for inference; the group size is read from the weights before.
  void convert() {
    info_ = model_->info();
    std::int64_t weight_bytes = 0;
    for (const auto& p : model_->parameters()) weight_bytes += p.value->numel() * static_cast<std::int64_t>(sizeof(T));
    group_ = weight_bytes <= small_weights_bytes ? small_weights_group : std::numeric_limits<std::int64_t>::max();
    model_->root().convert_to_inference();
  }

  void check_input(const Tensor<T>& x) const {
    const model_info& i = info_;  // cached: info() builds a string that may not fit in SSO
    FACENET_CHECK(x.rank() == 4 && x.size(0) > 0 && x.size(1) == 3 && x.size(2) == i.input_size &&
                      x.size(3) == i.input_size && x.is_contiguous(),
                  shape_error,
                  i.architecture + " embed: expected a contiguous input [N, 3, " + std::to_string(i.input_size) + ", " +
                      std::to_string(i.input_size) + "] with N >= 1, got " + x.shape().str());
  }
  std::unique_ptr<slot> acquire() const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (pool_.empty()) return std::make_unique<slot>();
    auto ws = std::move(pool_.back());
    pool_.pop_back();
    return ws;
  }
  void release(std::unique_ptr<slot> ws) const {
    std::lock_guard<std::mutex> lock(mutex_);
    pool_.push_back(std::move(ws));
  }

  // Layer by layer over a thread's whole share, NN4-small2's activations at batch 64 (conv3's output
  // alone: 14 MiB per thread) went through memory at every layer. When the weights are small enough to
  // stay in L3 between groups, groups of 8 images keep the activations in cache instead (AVX2, 2
  // threads, batch 64: 154 -> 148 ms, peak RSS 137 -> 67 MiB; groups of 4 or 16 gained less).
  // Inception-ResNet-v1 (90 MiB of weights) lost from groups: its weights then come from memory once
  // per group (batch 16 in groups of 4: 241 -> 245 ms).
  static constexpr std::int64_t small_weights_bytes = std::int64_t(32) << 20;
  static constexpr std::int64_t small_weights_group = 8;

  std::unique_ptr<model<T>> model_;
  model_info info_;
  std::int64_t group_ = 1;  // images per network pass within a thread's share
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<slot>> pool_;
};

}  // namespace facenet::models
