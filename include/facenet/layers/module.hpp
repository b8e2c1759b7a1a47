// The runtime-composed building block of every network: a module owns its parameters and their
// gradients, caches only what its backward needs, and offers three passes:
//   forward(x, y, training)  training = batch statistics / dropout; caches for backward
//   backward(dy, dx)         overwrites the parameter gradients and writes dx
//   backward_params(dy)      the parameter gradients only (the first layer: its input is data)
//   infer(x, y, ws) const    inference after prepare_inference(): folded BN, pre-packed weights,
//                            intermediate buffers from the caller's workspace, so concurrent calls on
//                            one module are safe and steady state does not allocate.
// Parameter names are the reference state_dict keys, built from each child's name.
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::layers {

// A named parameter (grad set; empty until the first backward) or buffer such as BN running
// statistics (grad null).
template <class T>
struct parameter {
  std::string name;
  Tensor<T>* value;
  Tensor<T>* grad;
};

// Per-call scratch for infer(): a stack of reusable tensors. Modules take slots in the same order on
// every call, so each slot converges to its largest size and later calls never allocate.
template <class T>
class workspace {
 public:
  Tensor<T>& take() {
    if (next_ == slots_.size()) slots_.emplace_back();
    return slots_[next_++];
  }
  std::size_t mark() const noexcept { return next_; }
  void release(std::size_t mark) noexcept { next_ = mark; }
  // Scratch handed to the kernels' conv plans (packing buffers).
  Tensor<T>& kernel_scratch() { return scratch_; }

 private:
  std::deque<Tensor<T>> slots_;  // deque: references stay valid as it grows
  std::size_t next_ = 0;
  Tensor<T> scratch_;
};

// Returns the slots a module took to the workspace when it goes out of scope.
template <class T>
class workspace_scope {
 public:
  explicit workspace_scope(workspace<T>& ws) : ws_(ws), mark_(ws.mark()) {}
  ~workspace_scope() { ws_.release(mark_); }
  workspace_scope(const workspace_scope&) = delete;
  workspace_scope& operator=(const workspace_scope&) = delete;

 private:
  workspace<T>& ws_;
  std::size_t mark_;
};

template <class T>
class module {
 public:
  virtual ~module() = default;
  virtual void forward(const Tensor<T>& x, Tensor<T>& y, bool training) = 0;
  virtual void backward(const Tensor<T>& dy, Tensor<T>& dx) = 0;
  // backward() without dx, for a network's first layer: PyTorch skips the input gradient of data
  // that does not require one, and NN4 conv1's was 5% of a training step. Layers that can skip it
  // override this; the rest compute dx and drop it.
  virtual void backward_params(const Tensor<T>& dy) {
    Tensor<T> dropped;
    backward(dy, dropped);
  }
  // Builds the inference form (folded BN, packed weights) from the current parameters.
  virtual void prepare_inference() {}
  // prepare_inference(), then frees what only training reads (weights now folded and packed,
  // gradients, caches). Containers go child by child, so memory peaks at one layer's weights twice,
  // not the network's. Afterwards only infer() works: for a model that is not trained any more.
  virtual void convert_to_inference() {
    prepare_inference();
    clear_cache();
  }
  virtual void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>& ws) const = 0;
  // Appends this module's parameters and buffers, names prefixed with `prefix`.
  virtual void collect(const std::string& prefix, std::vector<parameter<T>>& out) { (void)prefix, (void)out; }
  // Frees what forward cached for backward (activations of a finished step).
  virtual void clear_cache() {}
  // Appends the weight shape [O, I, kh, kw] of every convolution inside (profiles label layers with
  // it; still known after convert_to_inference() freed the weights).
  virtual void conv_kernels(std::vector<shape>& out) const { (void)out; }
};

template <class T>
using module_ptr = std::unique_ptr<module<T>>;

// "a" + "b" -> "a.b"; an empty part adds no separator (flat names such as NN4's).
inline std::string join_name(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  if (name.empty()) return prefix;
  return prefix + "." + name;
}

// Resizes `grad` to the shape of `value`. Gradients live beside their parameters but are allocated
// only by the first backward (or allocate_gradients): a model used for inference never holds them.
template <class T>
void match_grad(const Tensor<T>& value, Tensor<T>& grad) {
  if (grad.shape() != value.shape()) grad = Tensor<T>(value.shape());
}

// Gives every parameter its gradient buffer now, e.g. before an optimizer takes handles to them.
template <class T>
void allocate_gradients(const std::vector<parameter<T>>& params) {
  for (const parameter<T>& p : params)
    if (p.grad) match_grad(*p.value, *p.grad);
}

template <class T>
void require_forward_cache(const Tensor<T>& cached, const char* layer) {
  FACENET_CHECK(!cached.empty(), argument_error,
                std::string(layer) + ": backward called without a preceding forward(training) pass");
}

}  // namespace facenet::layers
