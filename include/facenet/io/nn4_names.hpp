// The parameter table of OpenFace's nn4.small2 (the released nn4.small2.v1 graph), shared by the
// weight readers (to report missing tensors) and the model. Names follow the convention agreed with
// the models engineer: "<Keras-OpenFace layer name>.<torch name>", e.g. "inception_3a_3x3_conv1.weight",
// "inception_3a_3x3_bn1.running_var", "dense.bias". Layers are listed in the order of OpenFace's
// Torch7 nn.Sequential (models/openface/nn4.small2.def.lua with dpnn's nn.Inception, whose branches
// are: one per kernel size (reduce conv + bn, conv + bn), then the pool branch, then the 1x1 branch),
// which is the order in which the .t7 reader meets them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/shape.hpp"

namespace facenet::io {

enum class nn4_layer_kind { conv, batch_norm, dense };

struct nn4_layer {
  std::string name;  // Keras-OpenFace layer name ("conv1", "inception_3a_3x3_bn1", "dense")
  nn4_layer_kind kind;
  std::int64_t out = 0, in = 0, kh = 1, kw = 1;  // batch_norm: out = channels
};

struct nn4_param {
  std::string name;  // "<layer>.<weight|bias|running_mean|running_var>"
  facenet::shape dims;
  bool trainable;    // false for batch-norm running statistics
};

namespace detail {

// One nn.Inception block; 0 disables a branch.
struct nn4_inception {
  const char* name;
  std::int64_t in;
  std::int64_t reduce3, out3, reduce5, out5, pool_proj, out1;
};

inline void nn4_conv_bn(std::vector<nn4_layer>& l, const std::string& conv, const std::string& bn, std::int64_t out,
                        std::int64_t in, std::int64_t k) {
  l.push_back({conv, nn4_layer_kind::conv, out, in, k, k});
  l.push_back({bn, nn4_layer_kind::batch_norm, out, 0, 1, 1});
}

inline void nn4_add_inception(std::vector<nn4_layer>& l, const nn4_inception& b) {
  const std::string p = b.name;
  auto reduce_branch = [&](const char* k, std::int64_t reduce, std::int64_t out, std::int64_t size) {
    if (!reduce) return;
    nn4_conv_bn(l, p + "_" + k + "_conv1", p + "_" + k + "_bn1", reduce, b.in, 1);
    nn4_conv_bn(l, p + "_" + k + "_conv2", p + "_" + k + "_bn2", out, reduce, size);
  };
  reduce_branch("3x3", b.reduce3, b.out3, 3);
  reduce_branch("5x5", b.reduce5, b.out5, 5);
  if (b.pool_proj) nn4_conv_bn(l, p + "_pool_conv", p + "_pool_bn", b.pool_proj, b.in, 1);
  if (b.out1) nn4_conv_bn(l, p + "_1x1_conv", p + "_1x1_bn", b.out1, b.in, 1);
}

}  // namespace detail

inline const std::vector<nn4_layer>& nn4_small2_layers() {
  static const std::vector<nn4_layer> layers = [] {
    std::vector<nn4_layer> l;
    detail::nn4_conv_bn(l, "conv1", "bn1", 64, 3, 7);
    detail::nn4_conv_bn(l, "conv2", "bn2", 64, 64, 1);
    detail::nn4_conv_bn(l, "conv3", "bn3", 192, 64, 3);
    const detail::nn4_inception blocks[] = {
        {"inception_3a", 192, 96, 128, 16, 32, 32, 64},  {"inception_3b", 256, 96, 128, 32, 64, 64, 64},
        {"inception_3c", 320, 128, 256, 32, 64, 0, 0},   {"inception_4a", 640, 96, 192, 32, 64, 128, 256},
        {"inception_4e", 640, 160, 256, 64, 128, 0, 0},  {"inception_5a", 1024, 96, 384, 0, 0, 96, 256},
        {"inception_5b", 736, 96, 384, 0, 0, 96, 256},
    };
    for (const auto& b : blocks) detail::nn4_add_inception(l, b);
    l.push_back({"dense", nn4_layer_kind::dense, 128, 736, 1, 1});
    return l;
  }();
  return layers;
}

// Parameters of one layer, in the order weight, bias[, running_mean, running_var].
inline std::vector<nn4_param> nn4_layer_params(const nn4_layer& l) {
  switch (l.kind) {
    case nn4_layer_kind::conv:
      return {{l.name + ".weight", {l.out, l.in, l.kh, l.kw}, true}, {l.name + ".bias", {l.out}, true}};
    case nn4_layer_kind::dense:
      return {{l.name + ".weight", {l.out, l.in}, true}, {l.name + ".bias", {l.out}, true}};
    case nn4_layer_kind::batch_norm:
      break;
  }
  return {{l.name + ".weight", {l.out}, true},
          {l.name + ".bias", {l.out}, true},
          {l.name + ".running_mean", {l.out}, false},
          {l.name + ".running_var", {l.out}, false}};
}

// All 224 tensors of nn4.small2.v1, layer by layer.
inline const std::vector<nn4_param>& nn4_small2_parameters() {
  static const std::vector<nn4_param> params = [] {
    std::vector<nn4_param> p;
    for (const nn4_layer& l : nn4_small2_layers())
      for (nn4_param& q : nn4_layer_params(l)) p.push_back(std::move(q));
    return p;
  }();
  return params;
}

// Learnable parameter count (what Torch's getParameters() reports): 3,733,968.
inline std::int64_t nn4_small2_trainable_count() {
  std::int64_t n = 0;
  for (const nn4_param& p : nn4_small2_parameters())
    if (p.trainable) n += p.dims.numel();
  return n;
}

}  // namespace facenet::io
