// Children applied in order; each child's output buffer is owned here so what the children cached for
// backward stays valid until the next forward. Every child call is a profile scope (profile.hpp).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "facenet/layers/module.hpp"
#include "facenet/layers/profile.hpp"

namespace facenet::layers {

template <class T>
class sequential final : public module<T> {
 public:
  // `name` is the child's state_dict component ("0", "conv2d_1a", or "" for none).
  template <class M>
  M& add(std::string name, std::unique_ptr<M> child) {
    M& ref = *child;
    children_.push_back({std::move(name), std::move(child)});
    outs_.emplace_back();
    return ref;
  }
  std::size_t size() const noexcept { return children_.size(); }
  module<T>& child(std::size_t i) { return *children_.at(i).second; }

  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) override { forward_first(children_.size(), x, y, training); }
  void backward(const Tensor<T>& dy, Tensor<T>& dx) override { backward_children(children_.size(), dy, &dx); }
  void backward_params(const Tensor<T>& dy) override { backward_children(children_.size(), dy, nullptr); }

  // The first n children only (e.g. a network without its final normalisation), and backward_params
  // from the output of child n - 1.
  void forward_first(std::size_t n, const Tensor<T>& x, Tensor<T>& y, bool training) {
    require_children(n);
    const Tensor<T>* in = &x;
    for (std::size_t i = 0; i < n; ++i) {
      Tensor<T>& out = i + 1 < n ? outs_[i] : y;
      profile_scope<T> timed(children_[i].first, *children_[i].second, profile_pass::forward, out);
      children_[i].second->forward(*in, out, training);
      in = &out;
    }
  }
  void backward_params_first(std::size_t n, const Tensor<T>& dy) { backward_children(n, dy, nullptr); }

  void prepare_inference() override {
    for (auto& c : children_) c.second->prepare_inference();
  }
  void convert_to_inference() override {
    for (auto& c : children_) c.second->convert_to_inference();
    clear_cache();
  }

  void infer(const Tensor<T>& x, Tensor<T>& y, workspace<T>& ws) const override { infer_from(0, x, y, ws); }

  // Children first .. end on x, the output of child first - 1 (a concat that ran the first child of
  // several branches as one convolution continues each branch here).
  void infer_from(std::size_t first, const Tensor<T>& x, Tensor<T>& y, workspace<T>& ws) const {
    require_children(children_.size());
    FACENET_CHECK(first < children_.size(), argument_error,
                  "sequential: no layer " + std::to_string(first) + " of " + std::to_string(children_.size()));
    workspace_scope<T> scope(ws);
    Tensor<T>* buf[2] = {&ws.take(), &ws.take()};
    const Tensor<T>* in = &x;
    for (std::size_t i = first; i < children_.size(); ++i) {
      Tensor<T>& out = i + 1 < children_.size() ? *buf[i % 2] : y;
      profile_scope<T> timed(children_[i].first, *children_[i].second, profile_pass::infer, out);
      children_[i].second->infer(*in, out, ws);
      in = &out;
    }
  }

  void collect(const std::string& prefix, std::vector<parameter<T>>& out) override {
    for (auto& c : children_) c.second->collect(join_name(prefix, c.first), out);
  }
  void conv_kernels(std::vector<shape>& out) const override {
    for (const auto& c : children_) c.second->conv_kernels(out);
  }
  void clear_cache() override {
    for (auto& c : children_) c.second->clear_cache();
    for (auto& o : outs_) o = Tensor<T>();
    for (auto& g : grads_) g = Tensor<T>();
  }

 private:
  // Children n-1 .. 0; the first writes dx, or only its parameter gradients when dx is null.
  void backward_children(std::size_t n, const Tensor<T>& dy, Tensor<T>* dx) {
    require_children(n);
    const Tensor<T>* g = &dy;
    for (std::size_t i = n; i-- > 0;) {
      Tensor<T>& out = i > 0 || !dx ? grads_[i % 2] : *dx;
      profile_scope<T> timed(children_[i].first, *children_[i].second, profile_pass::backward, out);
      if (i == 0 && !dx)
        children_[i].second->backward_params(*g);
      else
        children_[i].second->backward(*g, out);
      g = &out;
    }
  }

  void require_children(std::size_t n) const {
    FACENET_CHECK(!children_.empty(), argument_error, "sequential: no layers");
    FACENET_CHECK(n > 0 && n <= children_.size(), argument_error,
                  "sequential: cannot run the first " + std::to_string(n) + " of " + std::to_string(children_.size()) + " layers");
  }
  std::vector<std::pair<std::string, module_ptr<T>>> children_;
  std::vector<Tensor<T>> outs_;
  Tensor<T> grads_[2];
};

}  // namespace facenet::layers
