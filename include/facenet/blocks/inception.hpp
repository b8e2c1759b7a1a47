// The GoogLeNet / NN4 Inception module as OpenFace's released nn4.small2.v1 has it: branches in the
// order 3x3 (1x1 reduce -> 3x3), 5x5 (1x1 reduce -> 5x5), pool (max or L2, optionally -> 1x1), 1x1,
// concatenated with nn.DepthConcat zero padding to a common size. The stride-2 reduction variant has
// no 1x1 branch and a bare pool branch. Parameter names are the Keras-OpenFace layer names, e.g.
// "inception_3a_3x3_conv1.weight", "inception_3a_pool_bn.running_var".
#pragma once

#include <string>

#include "facenet/blocks/basic_conv.hpp"
#include "facenet/blocks/concat.hpp"
#include "facenet/layers/pool.hpp"
#include "facenet/layers/sequential.hpp"

namespace facenet::blocks {

inline constexpr double nn4_bn_eps = 1e-5;

struct inception_spec {
  std::string name;  // "inception_3a"
  std::int64_t in = 0;
  std::int64_t reduce_3x3 = 0, out_3x3 = 0;  // out_3x3 0: no 3x3 branch
  std::int64_t reduce_5x5 = 0, out_5x5 = 0;  // out_5x5 0: no 5x5 branch
  std::int64_t stride = 1;                   // of the 3x3 / 5x5 convs (2: reduction module)
  layers::pool_kind pool = layers::pool_kind::max;
  std::int64_t pool_kernel = 3, pool_stride = 2;
  std::int64_t pool_out = 0;  // 1x1 conv after the pool; 0: bare pool
  std::int64_t out_1x1 = 0;   // 0: no 1x1 branch

  std::int64_t out_channels() const { return out_3x3 + out_5x5 + (pool_out ? pool_out : in) + out_1x1; }
};

template <class T>
std::unique_ptr<basic_conv<T>> nn4_conv(const std::string& conv_name, const std::string& bn_name, std::int64_t in,
                                        std::int64_t out, std::int64_t k, std::int64_t stride = 1) {
  return std::make_unique<basic_conv<T>>(layers::conv2d_options{in, out, k, k, stride, stride, k / 2, k / 2, true},
                                         nn4_bn_eps, conv_name, bn_name);
}

template <class T>
std::unique_ptr<concat<T>> make_inception(const inception_spec& s) {
  auto cat = std::make_unique<concat<T>>();
  const auto conv_branch = [&](const std::string& kind, std::int64_t reduce, std::int64_t out, std::int64_t k) {
    auto seq = std::make_unique<layers::sequential<T>>();
    const std::string p = s.name + "_" + kind + "_";
    seq->add("", nn4_conv<T>(p + "conv1", p + "bn1", s.in, reduce, 1));
    seq->add("", nn4_conv<T>(p + "conv2", p + "bn2", reduce, out, k, s.stride));
    cat->add("", std::move(seq));
  };
  if (s.out_3x3) conv_branch("3x3", s.reduce_3x3, s.out_3x3, 3);
  if (s.out_5x5) conv_branch("5x5", s.reduce_5x5, s.out_5x5, 5);
  auto pool = std::make_unique<layers::pool2d<T>>(s.pool, s.pool_kernel, s.pool_stride);
  if (s.pool_out) {
    auto seq = std::make_unique<layers::sequential<T>>();
    seq->add("", std::move(pool));
    seq->add("", nn4_conv<T>(s.name + "_pool_conv", s.name + "_pool_bn", s.in, s.pool_out, 1));
    cat->add("", std::move(seq));
  } else {
    cat->add("", std::move(pool));
  }
  if (s.out_1x1) cat->add("", nn4_conv<T>(s.name + "_1x1_conv", s.name + "_1x1_bn", s.in, s.out_1x1, 1));
  return cat;
}

}  // namespace facenet::blocks
