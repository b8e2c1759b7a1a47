// Parallel branches over one input, concatenated along channels. Branch outputs smaller than the
// largest (or than an explicit target size) are zero-padded centred, as Torch's nn.DepthConcat does
// (floor((O - o) / 2) leading zeros): how NN4's pool branches line up with the conv branches.
#pragma once

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "facenet/blocks/basic_conv.hpp"
#include "facenet/kernels/concat.hpp"
#include "facenet/kernels/elementwise.hpp"
#include "facenet/layers/module.hpp"
#include "facenet/layers/profile.hpp"
#include "facenet/layers/sequential.hpp"

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
    heads_conv_.reset();  // a new branch: prepare_inference() stacks the heads again
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

  // Inference runs the branches' leading 1x1 convolutions (all read x) as one stacked convolution:
  // one GEMM with their rows together, one packing of x, and at batch 1 a product big enough to
  // split between the threads. The folded weights are taken before the branches release theirs, and
  // the heads then pack none of their own.
  void prepare_inference() override {
    stack_pointwise_heads();
    for (auto& b : branches_) b.second->prepare_inference();
  }
  void convert_to_inference() override {
    stack_pointwise_heads();
    for (auto& b : branches_) b.second->convert_to_inference();
    clear_cache();
  }

  void infer(const Tensor<T>& x, Tensor<T>& y, layers::workspace<T>& ws) const override {
    require_branches();
    layers::workspace_scope<T> scope(ws);
    const Tensor<T>* heads = nullptr;
    if (heads_conv_) {
      Tensor<T>& h = ws.take();
      static const std::string name = "pointwise_heads";
      layers::profile_scope<T> timed(name, *heads_conv_, layers::profile_pass::infer, h);
      heads_conv_->infer(x, h, ws);
      heads = &h;
    }
    std::array<Tensor<T>, max_stacked> head_views;  // outputs that are a head's channels as they are
    output_list outs;
    for (std::size_t i = 0; i < branches_.size(); ++i) {
      const auto& b = branches_[i];
      const bool head_only = stacked(i) && !stack_[i].rest;
      Tensor<T>& out = head_only ? head_views[i] : ws.take();
      layers::profile_scope<T> timed(b.first, *b.second, layers::profile_pass::infer, out);
      if (!stacked(i))
        b.second->infer(x, out, ws);
      else if (head_only)
        out = heads->slice(1, stack_[i].first, stack_[i].width);  // concat reads channel slices in place
      else
        continue_branch(stack_[i], *heads, out, ws);
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

  // Where branch i's output channels lie in heads_conv_'s output (first < 0: not stacked), and the
  // sequential that continues after its head (null: the head is the whole branch).
  struct stacked_branch {
    std::int64_t first = -1, width = 0;
    const layers::sequential<T>* rest = nullptr;
  };
  static constexpr std::size_t max_stacked = 8;  // branches of a stacking concat (views on the stack)

  bool stacked(std::size_t i) const noexcept { return heads_conv_ && i < stack_.size() && stack_[i].first >= 0; }

  // A branch's leading 1x1 basic_conv: the branch itself, or the first of a sequential of several.
  static basic_conv<T>* pointwise_head(layers::module<T>& branch, const layers::sequential<T>*& rest) {
    rest = nullptr;
    if (auto* c = dynamic_cast<basic_conv<T>*>(&branch)) return c->pointwise() ? c : nullptr;
    auto* seq = dynamic_cast<layers::sequential<T>*>(&branch);
    if (!seq || seq->size() < 2) return nullptr;
    auto* c = dynamic_cast<basic_conv<T>*>(&seq->child(0));
    if (!c || !c->pointwise()) return nullptr;
    rest = seq;
    return c;
  }

  // The rest of a stacked branch's sequential, on its channels of the heads' output.
  static void continue_branch(const stacked_branch& b, const Tensor<T>& heads, Tensor<T>& out, layers::workspace<T>& ws) {
    Tensor<T> mine = heads.slice(1, b.first, b.width);
    if (!mine.is_contiguous()) {  // a batch: the next convolution reads dense images
      Tensor<T>& dense = ws.take();
      dense.resize(mine.shape());
      dense.copy_from(mine);
      mine = dense;
    }
    b.rest->infer_from(1, mine, out, ws);
  }

  // Builds heads_conv_ from two or more branches' 1x1 heads (BN folded, ReLU fused).
  void stack_pointwise_heads() {
    if (branches_.size() > max_stacked) return;
    std::vector<stacked_branch> stack(branches_.size());
    std::vector<basic_conv<T>*> heads(branches_.size(), nullptr);
    std::vector<Tensor<T>> weights, biases;
    std::int64_t width = 0;
    for (std::size_t i = 0; i < branches_.size(); ++i) {
      heads[i] = pointwise_head(*branches_[i].second, stack[i].rest);
      if (!heads[i]) continue;
      Tensor<T> w, b;
      if (!heads[i]->fold(w, b)) return;  // weights released: keep what the first conversion built
      stack[i].first = width;
      stack[i].width = w.size(0);
      width += w.size(0);
      weights.push_back(std::move(w));
      biases.push_back(std::move(b));
    }
    if (weights.size() < 2) {
      heads_conv_.reset();
      return;
    }
    const std::int64_t in = weights[0].size(1);
    auto conv = std::make_unique<layers::conv2d<T>>(layers::conv2d_options{in, width, 1, 1, 1, 1, 0, 0, true});
    conv->weight = Tensor<T>::uninitialized({width, in, 1, 1});
    conv->bias = Tensor<T>::uninitialized({width});
    for (std::size_t k = 0, i = 0; i < branches_.size(); ++i) {
      if (!heads[i]) continue;
      conv->weight.slice(0, stack[i].first, stack[i].width).copy_from(weights[k]);
      conv->bias.slice(0, stack[i].first, stack[i].width).copy_from(biases[k]);
      ++k;
    }
    conv->prepare_fused(nullptr, true);
    conv->release_parameters();
    heads_conv_ = std::move(conv);
    stack_ = std::move(stack);
    for (basic_conv<T>* h : heads)
      if (h) h->run_stacked();
  }

  std::vector<std::pair<std::string, layers::module_ptr<T>>> branches_;
  std::vector<Tensor<T>> outs_, grads_;
  Tensor<T> branch_dx_;
  std::unique_ptr<layers::conv2d<T>> heads_conv_;  // inference: the stacked 1x1 heads, or null
  std::vector<stacked_branch> stack_;
};

}  // namespace facenet::blocks
