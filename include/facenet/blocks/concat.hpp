// Parallel branches over one input, concatenated along channels. Branch outputs smaller than the
// largest (or than an explicit target size) are zero-padded centred, as Torch's nn.DepthConcat does
// (floor((O - o) / 2) leading zeros): how NN4's pool branches line up with the conv branches.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "facenet/kernels/concat.hpp"
#include "facenet/kernels/elementwise.hpp"
#include "facenet/layers/module.hpp"
#include "facenet/layers/profile.hpp"

namespace facenet::blocks {

template <class T>
class concat final : public layers::module<T> {
 public:
  template <class M>
  M& add(std::string name, std::unique_ptr<M> branch) {
    M& ref = *branch;
    branches_.push_back({std::move(name), std::move(branch)});
    outs_.emplace_back();
    grads_.emplace_back();
    return ref;
  }
  std::size_t size() const noexcept { return branches_.size(); }

  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) override {
    require_branches();
    for (std::size_t i = 0; i < branches_.size(); ++i) {
      layers::profile_scope<T> timed(branches_[i].first, *branches_[i].second, layers::profile_pass::forward, outs_[i]);
      branches_[i].second->forward(x, outs_[i], training);
    }
    std::vector<const Tensor<T>*> parts;
    for (const auto& o : outs_) parts.push_back(&o);
    kernels::depth_concat_forward(parts, y);
  }

  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    require_branches();
    std::vector<shape> shapes;
    std::vector<Tensor<T>*> grads;
    for (std::size_t i = 0; i < outs_.size(); ++i) {
      shapes.push_back(outs_[i].shape());
      grads.push_back(&grads_[i]);
    }
    kernels::depth_concat_backward(dy, shapes, grads);
    for (std::size_t i = 0; i < branches_.size(); ++i) {
      Tensor<T>& target = i == 0 ? dx : branch_dx_;
      {
        layers::profile_scope<T> timed(branches_[i].first, *branches_[i].second, layers::profile_pass::backward, target);
        branches_[i].second->backward(grads_[i], target);
      }
      if (i > 0) kernels::add_inplace(dx, branch_dx_);
    }
  }

  void prepare_inference() override {
    for (auto& b : branches_) b.second->prepare_inference();
  }
  void convert_to_inference() override {
    for (auto& b : branches_) b.second->convert_to_inference();
    clear_cache();
  }

  void infer(const Tensor<T>& x, Tensor<T>& y, layers::workspace<T>& ws) const override {
    require_branches();
    layers::workspace_scope<T> scope(ws);
    output_list outs;
    for (const auto& b : branches_) {
      Tensor<T>& out = ws.take();
      layers::profile_scope<T> timed(b.first, *b.second, layers::profile_pass::infer, out);
      b.second->infer(x, out, ws);
      outs.push_back(&out);
    }
    kernels::depth_concat_forward(outs.data(), outs.size(), y);
  }

  void collect(const std::string& prefix, std::vector<layers::parameter<T>>& out) override {
    for (auto& b : branches_) b.second->collect(layers::join_name(prefix, b.first), out);
  }
  void conv_kernels(std::vector<shape>& out) const override {
    for (const auto& b : branches_) b.second->conv_kernels(out);
  }
  void clear_cache() override {
    for (auto& b : branches_) b.second->clear_cache();
    for (auto& o : outs_) o = Tensor<T>();
    for (auto& g : grads_) g = Tensor<T>();
    branch_dx_ = Tensor<T>();
  }

 private:
  // The branch outputs of one infer() call, listed on a per-thread stack that keeps its capacity:
  // steady-state inference allocates no pointer list, and a concat nested in a branch pushes above
  // this one's entries and pops them before this one continues.
  class output_list {
   public:
    output_list() : stack_(thread_stack()), base_(stack_.size()) {}
    ~output_list() { stack_.resize(base_); }
    output_list(const output_list&) = delete;
    output_list& operator=(const output_list&) = delete;
    void push_back(const Tensor<T>* t) { stack_.push_back(t); }
    const Tensor<T>* const* data() const noexcept { return stack_.data() + base_; }
    std::size_t size() const noexcept { return stack_.size() - base_; }

   private:
    static std::vector<const Tensor<T>*>& thread_stack() {
      static thread_local std::vector<const Tensor<T>*> stack;
      return stack;
    }
    std::vector<const Tensor<T>*>& stack_;
    std::size_t base_;
  };

  void require_branches() const {
    FACENET_CHECK(!branches_.empty(), argument_error, "concat: no branches");
  }

  std::vector<std::pair<std::string, layers::module_ptr<T>>> branches_;
  std::vector<Tensor<T>> outs_, grads_;
  Tensor<T> branch_dx_;
};

}  // namespace facenet::blocks
