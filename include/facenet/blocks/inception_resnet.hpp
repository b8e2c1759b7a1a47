// Inception-ResNet blocks exactly as facenet-pytorch defines them (names are its state_dict keys):
//   block35 / block17 / block8:  y = relu?(x + scale * conv2d(cat(branch0, branch1[, branch2])))
//   mixed_6a / mixed_7a:         stride-2 reductions, cat of conv branches and a 3x3/2 max pool.
// One generic residual body, specialised by a branch table; widths are parameters so tests can build
// reduced-width variants for finite-difference checks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "facenet/blocks/basic_conv.hpp"
#include "facenet/blocks/concat.hpp"
#include "facenet/kernels/activation.hpp"
#include "facenet/kernels/elementwise.hpp"
#include "facenet/layers/pool.hpp"
#include "facenet/layers/sequential.hpp"

namespace facenet::blocks {

inline constexpr double irv1_bn_eps = 1e-3;

// One BasicConv2d of a branch: out channels, kernel (kh, kw), stride, padding (ph, pw).
struct conv_step {
  std::int64_t out, kh, kw, stride, ph, pw;
};

// A branch of BasicConv2d's (input channels flow from one step to the next), or a max pool if empty.
template <class T>
layers::module_ptr<T> make_branch(std::int64_t in, const std::vector<conv_step>& steps, double eps) {
  if (steps.size() == 1) {
    const auto& s = steps[0];
    return std::make_unique<basic_conv<T>>(layers::conv2d_options{in, s.out, s.kh, s.kw, s.stride, s.stride, s.ph, s.pw, false}, eps);
  }
  auto seq = std::make_unique<layers::sequential<T>>();
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto& s = steps[i];
    seq->add(std::to_string(i), std::make_unique<basic_conv<T>>(
                                    layers::conv2d_options{in, s.out, s.kh, s.kw, s.stride, s.stride, s.ph, s.pw, false}, eps));
    in = s.out;
  }
  return seq;
}

template <class T>
std::unique_ptr<concat<T>> make_branches(std::int64_t in, const std::vector<std::vector<conv_step>>& branches,
                                         bool with_max_pool, double eps) {
  auto cat = std::make_unique<concat<T>>();
  std::size_t i = 0;
  for (; i < branches.size(); ++i) cat->add("branch" + std::to_string(i), make_branch<T>(in, branches[i], eps));
  if (with_max_pool)
    cat->add("branch" + std::to_string(i), std::make_unique<layers::pool2d<T>>(layers::pool_kind::max, 3, 2, 0));
  return cat;
}

template <class T>
class residual_block final : public layers::module<T> {
 public:
  residual_block(std::int64_t channels, const std::vector<std::vector<conv_step>>& branches, double scale, bool relu,
                 double eps = irv1_bn_eps)
      : body_(make_branches<T>(channels, branches, false, eps)),
        up_(layers::conv2d_options{concat_width(branches), channels, 1, 1, 1, 1, 0, 0, true}),
        scale_(static_cast<T>(scale)),
        relu_(relu) {}

  void forward(const Tensor<T>& x, Tensor<T>& y, bool training) override {
    body_->forward(x, cat_, training);
    up_.forward(cat_, up_out_, training);
    y.resize(x.shape());
    y.copy_from(x);
    kernels::axpy(scale_, up_out_, y);  // y = x + scale * up
    if (relu_) kernels::relu_forward(y, y);
    y_ = y;
  }

  void backward(const Tensor<T>& dy, Tensor<T>& dx) override {
    layers::require_forward_cache(y_, "residual_block");
    const Tensor<T>* g = &dy;
    if (relu_) {
      kernels::relu_backward(dy, y_, grad_);
      g = &grad_;
    }
    kernels::scale(*g, scale_, grad_up_);  // d up = scale * g; the identity path passes g to dx
    up_.backward(grad_up_, grad_cat_);
    body_->backward(grad_cat_, dx);
    kernels::add_inplace(dx, *g);
  }

  void prepare_inference() override {
    body_->prepare_inference();
    up_.prepare_fused(nullptr, relu_);
  }
  void convert_to_inference() override {
    body_->convert_to_inference();
    up_.prepare_fused(nullptr, relu_);
    up_.release_parameters();
    clear_cache();
  }

  void infer(const Tensor<T>& x, Tensor<T>& y, layers::workspace<T>& ws) const override {
    layers::workspace_scope<T> scope(ws);
    Tensor<T>& cat = ws.take();
    body_->infer(x, cat, ws);
    up_.infer_residual(cat, y, ws, &x, scale_);
  }

  void collect(const std::string& prefix, std::vector<layers::parameter<T>>& out) override {
    body_->collect(prefix, out);
    up_.collect(layers::join_name(prefix, "conv2d"), out);
  }
  void conv_kernels(std::vector<shape>& out) const override {
    body_->conv_kernels(out);
    up_.conv_kernels(out);
  }
  void clear_cache() override {
    body_->clear_cache();
    up_.clear_cache();
    for (Tensor<T>* t : {&cat_, &up_out_, &y_, &grad_, &grad_up_, &grad_cat_}) *t = Tensor<T>();
  }

 private:
  static std::int64_t concat_width(const std::vector<std::vector<conv_step>>& branches) {
    std::int64_t w = 0;
    for (const auto& b : branches) w += b.back().out;
    return w;
  }

  std::unique_ptr<concat<T>> body_;
  layers::conv2d<T> up_;
  T scale_;
  bool relu_;
  Tensor<T> cat_, up_out_, y_, grad_, grad_up_, grad_cat_;
};

// Branch tables; `w` scales every width (1 = the real network) for reduced test variants.
inline std::vector<std::vector<conv_step>> block35_branches(std::int64_t w = 32) {
  return {{{w, 1, 1, 1, 0, 0}}, {{w, 1, 1, 1, 0, 0}, {w, 3, 3, 1, 1, 1}},
          {{w, 1, 1, 1, 0, 0}, {w, 3, 3, 1, 1, 1}, {w, 3, 3, 1, 1, 1}}};
}
inline std::vector<std::vector<conv_step>> block17_branches(std::int64_t w = 128) {
  return {{{w, 1, 1, 1, 0, 0}}, {{w, 1, 1, 1, 0, 0}, {w, 1, 7, 1, 0, 3}, {w, 7, 1, 1, 3, 0}}};
}
inline std::vector<std::vector<conv_step>> block8_branches(std::int64_t w = 192) {
  return {{{w, 1, 1, 1, 0, 0}}, {{w, 1, 1, 1, 0, 0}, {w, 1, 3, 1, 0, 1}, {w, 3, 1, 1, 1, 0}}};
}

template <class T>
std::unique_ptr<residual_block<T>> make_block35(double scale, std::int64_t channels = 256, std::int64_t w = 32) {
  return std::make_unique<residual_block<T>>(channels, block35_branches(w), scale, true);
}
template <class T>
std::unique_ptr<residual_block<T>> make_block17(double scale, std::int64_t channels = 896, std::int64_t w = 128) {
  return std::make_unique<residual_block<T>>(channels, block17_branches(w), scale, true);
}
template <class T>
std::unique_ptr<residual_block<T>> make_block8(double scale, bool relu, std::int64_t channels = 1792,
                                               std::int64_t w = 192) {
  return std::make_unique<residual_block<T>>(channels, block8_branches(w), scale, relu);
}

// Mixed_6a: 256 -> 384 (3x3/2) | 192 -> 192 (3x3) -> 256 (3x3/2) | maxpool 3x3/2; 256 + 384 + 256 = 896.
template <class T>
std::unique_ptr<concat<T>> make_mixed_6a(std::int64_t in = 256, std::int64_t a = 384, std::int64_t b = 192,
                                         std::int64_t c = 256) {
  return make_branches<T>(in, {{{a, 3, 3, 2, 0, 0}}, {{b, 1, 1, 1, 0, 0}, {b, 3, 3, 1, 1, 1}, {c, 3, 3, 2, 0, 0}}}, true,
                          irv1_bn_eps);
}
// Mixed_7a: 896 -> 256 -> 384/2 | 256 -> 256/2 | 256 -> 256 -> 256/2 | maxpool; 384 + 256 + 256 + 896 = 1792.
template <class T>
std::unique_ptr<concat<T>> make_mixed_7a(std::int64_t in = 896, std::int64_t r = 256, std::int64_t a = 384,
                                         std::int64_t b = 256) {
  return make_branches<T>(in,
                          {{{r, 1, 1, 1, 0, 0}, {a, 3, 3, 2, 0, 0}},
                           {{r, 1, 1, 1, 0, 0}, {b, 3, 3, 2, 0, 0}},
                           {{r, 1, 1, 1, 0, 0}, {b, 3, 3, 1, 1, 1}, {b, 3, 3, 2, 0, 0}}},
                          true, irv1_bn_eps);
}

}  // namespace facenet::blocks
