// MTCNN's three networks (Zhang et al. 2016) as facenet-pytorch defines them, loaded from tensor
// maps with its state_dict names (conv1.weight [O,I,kh,kw], prelu1.weight, dense4.weight [out,in]).
//
//   P-Net  conv3x3(3->10) prelu maxpool2/2  conv3x3(10->16) prelu  conv3x3(16->32) prelu
//          -> conv1x1(32->2) softmax (face prob), conv1x1(32->4) (box regression)
//   R-Net  conv3x3(3->28) prelu maxpool3/2  conv3x3(28->48) prelu maxpool3/2  conv2x2(48->64) prelu
//          -> dense(576->128) prelu -> dense(128->2) softmax, dense(128->4)
//   O-Net  conv3x3(3->32) prelu maxpool3/2  conv3x3(32->64) prelu maxpool3/2  conv3x3(64->64) prelu
//          maxpool2/2  conv2x2(64->128) prelu -> dense(1152->256) prelu -> dense(256->2) softmax,
//          dense(256->4), dense(256->10) (landmarks: 5 x then 5 y, relative to the box)
// All pools use ceil_mode. facenet-pytorch flattens the last feature map as (W, H, C)
// (x.permute(0, 3, 2, 1)); the first dense layer's columns are permuted once at load so the
// NCHW feature map can be fed as it is.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/io/tensor_map.hpp"
#include "facenet/kernels/activation.hpp"
#include "facenet/kernels/conv2d.hpp"
#include "facenet/kernels/linear.hpp"
#include "facenet/kernels/pool.hpp"
#include "facenet/kernels/softmax.hpp"

namespace facenet::models {

namespace detail {

inline Tensor<float> mtcnn_param(const io::tensor_map& w, const std::string& net, const std::string& name,
                                 const shape& expected) {
  FACENET_CHECK(w.contains(name), format_error,
                net + ": weight '" + name + "' is missing (expected facenet-pytorch names such as conv1.weight)");
  const Tensor<float>& t = w.at(name);
  FACENET_CHECK(t.shape() == expected, format_error,
                net + ": weight '" + name + "' has shape " + t.shape().str() + ", expected " + expected.str());
  return t.clone();  // contiguous and owned, whatever view the reader produced
}

// conv + bias + PReLU, optionally followed by a ceil-mode max pool.
struct conv_block {
  Tensor<float> weight, bias, alpha;
  int pool_kernel = 0, pool_stride = 0;  // 0 = no pool

  conv_block() = default;
  conv_block(const io::tensor_map& w, const std::string& net, int index, std::int64_t in, std::int64_t out, int k,
             int pool_k, int pool_s)
      : pool_kernel(pool_k), pool_stride(pool_s) {
    const std::string i = std::to_string(index);
    weight = mtcnn_param(w, net, "conv" + i + ".weight", {out, in, k, k});
    bias = mtcnn_param(w, net, "conv" + i + ".bias", {out});
    alpha = mtcnn_param(w, net, "prelu" + i + ".weight", {out});
  }

  // x -> y; the intermediate maps live in the block, so steady-state calls do not allocate.
  void forward(const Tensor<float>& x, Tensor<float>& y) {
    kernels::conv2d_forward(x, weight, bias, conv_, kernels::conv2d_params{});
    if (!pool_kernel) {
      kernels::prelu_forward(conv_, alpha, y);
      return;
    }
    kernels::prelu_forward(conv_, alpha, act_);
    kernels::max_pool2d_forward(act_, kernels::pool2d_params::square(pool_kernel, pool_stride, 0, true), y, argmax_);
  }

 private:
  Tensor<float> conv_, act_;
  Tensor<std::int32_t> argmax_;  // required by the pooling kernel, unused at inference
};

struct dense_layer {
  Tensor<float> weight, bias;

  dense_layer() = default;
  dense_layer(const io::tensor_map& w, const std::string& net, const std::string& name, std::int64_t in, std::int64_t out) {
    weight = mtcnn_param(w, net, "dense" + name + ".weight", {out, in});
    bias = mtcnn_param(w, net, "dense" + name + ".bias", {out});
  }
  void forward(const Tensor<float>& x, Tensor<float>& y) const { kernels::linear_forward(x, weight, bias, y); }
};

// Reorders the columns of a dense weight [out, C*H*W] that expects (W, H, C)-flattened features so
// that it takes NCHW-flattened ones.
inline void permute_whc_columns(Tensor<float>& weight, std::int64_t c, std::int64_t h, std::int64_t w) {
  const std::int64_t out = weight.size(0), in = c * h * w;
  Tensor<float> p = Tensor<float>::uninitialized(weight.shape());
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t ci = 0; ci < c; ++ci)
      for (std::int64_t hi = 0; hi < h; ++hi)
        for (std::int64_t wi = 0; wi < w; ++wi)
          p.data()[o * in + (ci * h + hi) * w + wi] = weight.data()[o * in + (wi * h + hi) * c + ci];
  weight = p;
}

}  // namespace detail

class mtcnn_pnet {
 public:
  explicit mtcnn_pnet(const io::tensor_map& w) {
    const std::string n = "P-Net";
    blocks_[0] = detail::conv_block(w, n, 1, 3, 10, 3, 2, 2);
    blocks_[1] = detail::conv_block(w, n, 2, 10, 16, 3, 0, 0);
    blocks_[2] = detail::conv_block(w, n, 3, 16, 32, 3, 0, 0);
    prob_w_ = detail::mtcnn_param(w, n, "conv4_1.weight", {2, 32, 1, 1});
    prob_b_ = detail::mtcnn_param(w, n, "conv4_1.bias", {2});
    reg_w_ = detail::mtcnn_param(w, n, "conv4_2.weight", {4, 32, 1, 1});
    reg_b_ = detail::mtcnn_param(w, n, "conv4_2.bias", {4});
  }

  // x [N, 3, H, W] (H, W >= 12) -> reg [N, 4, h, w], prob [N, 2, h, w] with h = (ceil((H-2)/2) - 4).
  void forward(const Tensor<float>& x, Tensor<float>& reg, Tensor<float>& prob) {
    FACENET_CHECK(x.rank() == 4 && x.c() == 3 && x.h() >= 12 && x.w() >= 12, shape_error,
                  "P-Net: expected input [N, 3, H >= 12, W >= 12], got " + x.shape().str());
    blocks_[0].forward(x, a_);
    blocks_[1].forward(a_, b_);
    blocks_[2].forward(b_, a_);
    kernels::conv2d_forward(a_, reg_w_, reg_b_, reg, kernels::conv2d_params{});
    kernels::conv2d_forward(a_, prob_w_, prob_b_, tmp_, kernels::conv2d_params{});
    kernels::softmax_forward(tmp_, prob);
  }

 private:
  detail::conv_block blocks_[3];
  Tensor<float> prob_w_, prob_b_, reg_w_, reg_b_;
  Tensor<float> tmp_, a_, b_;
};

namespace detail {

// R-Net and O-Net differ only in their numbers: conv blocks, then a dense layer + PReLU over the
// flattened last map, then the heads (probability, box regression and, for O-Net, landmarks).
struct refine_net_spec {
  const char* name;
  std::int64_t input;  // square input side
  struct block {
    std::int64_t in, out;
    int kernel, pool_kernel, pool_stride;
  };
  std::vector<block> blocks;
  std::string dense;      // dense layer index: "4" -> dense4, prelu4
  std::int64_t dense_out;
  std::string heads;  // head index: "5" -> dense5_1 (prob), dense5_2 (reg), dense5_3 (landmarks)
  bool landmarks;
};

class refine_net {
 public:
  refine_net(const io::tensor_map& w, refine_net_spec spec) : spec_(std::move(spec)) {
    const std::string n = spec_.name;
    for (std::size_t i = 0; i < spec_.blocks.size(); ++i) {
      const auto& b = spec_.blocks[i];
      blocks_.emplace_back(w, n, static_cast<int>(i + 1), b.in, b.out, b.kernel, b.pool_kernel, b.pool_stride);
    }
    const std::int64_t c = spec_.blocks.back().out, side = last_map_side();
    dense_ = dense_layer(w, n, spec_.dense, c * side * side, spec_.dense_out);
    permute_whc_columns(dense_.weight, c, side, side);
    alpha_ = mtcnn_param(w, n, "prelu" + spec_.dense + ".weight", {spec_.dense_out});
    prob_ = dense_layer(w, n, spec_.heads + "_1", spec_.dense_out, 2);
    reg_ = dense_layer(w, n, spec_.heads + "_2", spec_.dense_out, 4);
    if (spec_.landmarks) marks_ = dense_layer(w, n, spec_.heads + "_3", spec_.dense_out, 10);
  }

  // The side of the last block's map: valid convolutions, then ceil-mode pools.
  std::int64_t last_map_side() const {
    std::int64_t side = spec_.input;
    for (const auto& b : spec_.blocks) {
      side -= b.kernel - 1;
      if (b.pool_kernel) side = (side - b.pool_kernel + b.pool_stride - 1) / b.pool_stride + 1;
    }
    return side;
  }

  // x [N, 3, input, input] -> reg [N, 4], prob [N, 2] and, when the net has them, landmarks [N, 10].
  void run(const Tensor<float>& x, Tensor<float>& reg, Tensor<float>* landmarks, Tensor<float>& prob) {
    const std::int64_t s = spec_.input;
    FACENET_CHECK(x.rank() == 4 && x.c() == 3 && x.h() == s && x.w() == s, shape_error,
                  std::string(spec_.name) + ": expected input [N, 3, " + std::to_string(s) + ", " + std::to_string(s) +
                      "], got " + x.shape().str());
    const Tensor<float>* in = &x;
    Tensor<float>* out = &a_;
    for (auto& b : blocks_) {  // ping-pong between a_ and b_
      b.forward(*in, *out);
      in = out;
      out = out == &a_ ? &b_ : &a_;
    }
    dense_.forward(in->reshape({x.n(), in->numel() / x.n()}), tmp_);
    kernels::prelu_forward(tmp_, alpha_, *out);
    reg_.forward(*out, reg);
    if (landmarks) marks_.forward(*out, *landmarks);
    prob_.forward(*out, tmp_);
    kernels::softmax_forward(tmp_, prob);
  }

 private:
  refine_net_spec spec_;
  std::vector<conv_block> blocks_;
  dense_layer dense_, prob_, reg_, marks_;
  Tensor<float> alpha_;
  Tensor<float> tmp_, a_, b_;
};

}  // namespace detail

class mtcnn_rnet : private detail::refine_net {
 public:
  explicit mtcnn_rnet(const io::tensor_map& w)
      : refine_net(w, {"R-Net", 24, {{3, 28, 3, 3, 2}, {28, 48, 3, 3, 2}, {48, 64, 2, 0, 0}}, "4", 128, "5", false}) {}

  // x [N, 3, 24, 24] -> reg [N, 4], prob [N, 2].
  void forward(const Tensor<float>& x, Tensor<float>& reg, Tensor<float>& prob) { run(x, reg, nullptr, prob); }
};

class mtcnn_onet : private detail::refine_net {
 public:
  explicit mtcnn_onet(const io::tensor_map& w)
      : refine_net(w, {"O-Net", 48, {{3, 32, 3, 3, 2}, {32, 64, 3, 3, 2}, {64, 64, 3, 2, 2}, {64, 128, 2, 0, 0}}, "5", 256,
                       "6", true}) {}

  // x [N, 3, 48, 48] -> reg [N, 4], landmarks [N, 10] (x1..x5, y1..y5 in box units), prob [N, 2].
  void forward(const Tensor<float>& x, Tensor<float>& reg, Tensor<float>& landmarks, Tensor<float>& prob) {
    run(x, reg, &landmarks, prob);
  }
};

}  // namespace facenet::models
