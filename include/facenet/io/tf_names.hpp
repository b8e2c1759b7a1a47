// davidsandberg/facenet's TF-slim Inception-ResNet-v1 variable names -> facenet-pytorch
// InceptionResnetV1 state_dict keys (the names our model uses), with the layout changes:
//   conv  weights [kh, kw, in, out] (HWIO) -> [out, in, kh, kw] (OIHW)
//   dense weights [in, out]                -> [out, in]
//   BatchNorm: TF-slim's batch_norm defaults to scale=False, so there is no gamma -> weight = 1;
//   beta -> bias, moving_mean -> running_mean, moving_variance -> running_var.
// The residual "Conv2d_1x1" of each block has no BatchNorm but a bias (normalizer_fn=None).
// Sources: davidsandberg/facenet src/models/inception_resnet_v1.py and facenet-pytorch
// models/inception_resnet_v1.py + models/utils/tensorflow2pytorch.py.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/io/mapping_report.hpp"
#include "facenet/io/tensor_map.hpp"

namespace facenet::io {
namespace tf_slim {

enum class unit_kind {
  conv_bn,      // slim.conv2d + batch_norm: <tf>/weights, <tf>/BatchNorm/* -> <pt>.conv.weight, <pt>.bn.*
  conv_bias,    // slim.conv2d without normalizer: <tf>/weights, <tf>/biases -> <pt>.weight, <pt>.bias
  dense,        // slim.fully_connected with batch_norm: <tf>/weights -> <pt>.weight (transposed)
  dense_bias,   // slim.fully_connected: <tf>/weights, <tf>/biases -> <pt>.weight, <pt>.bias
  batch_norm,   // <tf>/{beta,moving_mean,moving_variance} -> <pt>.{bias,running_mean,running_var}, weight = 1
};

struct unit {
  std::string tf, pt;
  unit_kind kind;
  bool optional = false;  // the classifier ("Logits") is absent from embedding-only files
};

// Branch convolutions of one block: (TF scope suffix, facenet-pytorch module path).
using branch_list = std::vector<std::pair<const char*, const char*>>;

inline void add_block(std::vector<unit>& units, const std::string& tf, const std::string& pt, const branch_list& convs,
                      bool residual) {
  for (const auto& [t, p] : convs) units.push_back({tf + "/" + t, pt + "." + p, unit_kind::conv_bn});
  if (residual) units.push_back({tf + "/Conv2d_1x1", pt + ".conv2d", unit_kind::conv_bias});
}

inline std::vector<unit> inception_resnet_v1_units() {
  const std::string root = "InceptionResnetV1/";
  std::vector<unit> u;
  const branch_list stem = {{"Conv2d_1a_3x3", "conv2d_1a"}, {"Conv2d_2a_3x3", "conv2d_2a"},
                            {"Conv2d_2b_3x3", "conv2d_2b"}, {"Conv2d_3b_1x1", "conv2d_3b"},
                            {"Conv2d_4a_3x3", "conv2d_4a"}, {"Conv2d_4b_3x3", "conv2d_4b"}};
  for (const auto& [t, p] : stem) u.push_back({root + t, p, unit_kind::conv_bn});

  const branch_list block35 = {{"Branch_0/Conv2d_1x1", "branch0"},     {"Branch_1/Conv2d_0a_1x1", "branch1.0"},
                               {"Branch_1/Conv2d_0b_3x3", "branch1.1"}, {"Branch_2/Conv2d_0a_1x1", "branch2.0"},
                               {"Branch_2/Conv2d_0b_3x3", "branch2.1"}, {"Branch_2/Conv2d_0c_3x3", "branch2.2"}};
  const branch_list block17 = {{"Branch_0/Conv2d_1x1", "branch0"},
                               {"Branch_1/Conv2d_0a_1x1", "branch1.0"},
                               {"Branch_1/Conv2d_0b_1x7", "branch1.1"},
                               {"Branch_1/Conv2d_0c_7x1", "branch1.2"}};
  const branch_list block8 = {{"Branch_0/Conv2d_1x1", "branch0"},
                              {"Branch_1/Conv2d_0a_1x1", "branch1.0"},
                              {"Branch_1/Conv2d_0b_1x3", "branch1.1"},
                              {"Branch_1/Conv2d_0c_3x1", "branch1.2"}};
  const branch_list mixed_6a = {{"Branch_0/Conv2d_1a_3x3", "branch0"},
                                {"Branch_1/Conv2d_0a_1x1", "branch1.0"},
                                {"Branch_1/Conv2d_0b_3x3", "branch1.1"},
                                {"Branch_1/Conv2d_1a_3x3", "branch1.2"}};
  const branch_list mixed_7a = {{"Branch_0/Conv2d_0a_1x1", "branch0.0"}, {"Branch_0/Conv2d_1a_3x3", "branch0.1"},
                                {"Branch_1/Conv2d_0a_1x1", "branch1.0"}, {"Branch_1/Conv2d_1a_3x3", "branch1.1"},
                                {"Branch_2/Conv2d_0a_1x1", "branch2.0"}, {"Branch_2/Conv2d_0b_3x3", "branch2.1"},
                                {"Branch_2/Conv2d_1a_3x3", "branch2.2"}};
  // slim.repeat names its scopes Repeat, Repeat_1, ... and the blocks <function name>_<1-based index>.
  auto repeat = [&](const std::string& scope, const char* fn, int count, const char* pt, const branch_list& convs) {
    for (int i = 0; i < count; ++i)
      add_block(u, root + scope + "/" + fn + "_" + std::to_string(i + 1), std::string(pt) + "." + std::to_string(i), convs,
                true);
  };
  repeat("Repeat", "block35", 5, "repeat_1", block35);
  add_block(u, root + "Mixed_6a", "mixed_6a", mixed_6a, false);
  repeat("Repeat_1", "block17", 10, "repeat_2", block17);
  add_block(u, root + "Mixed_7a", "mixed_7a", mixed_7a, false);
  repeat("Repeat_2", "block8", 5, "repeat_3", block8);
  add_block(u, root + "Block8", "block8", block8, true);
  u.push_back({root + "Bottleneck", "last_linear", unit_kind::dense});
  u.push_back({root + "Bottleneck/BatchNorm", "last_bn", unit_kind::batch_norm});
  u.push_back({"Logits", "logits", unit_kind::dense_bias, true});
  return u;
}

// Copy of `src` with its dimensions reordered: out.shape[i] = src.shape[perm[i]].
inline Tensor<float> permuted(const Tensor<float>& src, const std::vector<int>& perm) {
  const int rank = src.rank();
  facenet::shape s;
  for (int i = 0; i < rank; ++i) s.push_back(src.shape()[perm[static_cast<std::size_t>(i)]]);
  Tensor<float> out = Tensor<float>::uninitialized(s);
  std::int64_t src_strides[facenet::shape::max_rank];
  std::int64_t st = 1;
  for (int i = rank - 1; i >= 0; --i) {
    src_strides[i] = st;
    st *= src.shape()[i];
  }
  std::int64_t idx[facenet::shape::max_rank] = {};
  for (std::int64_t k = 0, n = out.numel(); k < n; ++k) {
    std::int64_t off = 0;
    for (int i = 0; i < rank; ++i) off += idx[i] * src_strides[perm[static_cast<std::size_t>(i)]];
    out.data()[k] = src.data()[off];
    for (int i = rank - 1; i >= 0; --i) {
      if (++idx[i] < s[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

// Looks tensors up by TF name, recording what was used and what is missing.
class mapper {
 public:
  mapper(const tensor_map& src, tensor_map& dst, mapping_report& report) : src_(src), dst_(dst), report_(report) {}

  bool has(const std::string& tf) const { return src_.contains(tf); }

  // Source tensor `tf` of rank `rank`, or an empty tensor (recording `pt` as missing unless optional).
  Tensor<float> take(const std::string& tf, int rank, const std::string& pt, bool optional = false) {
    if (!src_.contains(tf)) {
      if (!optional) report_.missing.push_back(pt);
      return {};
    }
    used_.insert(tf);
    const Tensor<float>& t = src_.at(tf);
    FACENET_CHECK(t.rank() == rank, shape_error,
                  "tensor '" + tf + "' (for " + pt + "): expected rank " + std::to_string(rank) + ", got shape " + t.shape().str());
    return t.clone();  // the result must not alias the source map
  }
  // Adds `t` as `pt` unless it is the empty stand-in for a missing tensor.
  void put(const std::string& pt, Tensor<float> t) {
    if (t.rank() == 0) return;
    dst_.add(pt, std::move(t));
    report_.mapped.push_back(pt);
  }
  void finish() {
    for (const auto& e : src_.entries())
      if (!used_.count(e.name)) report_.unused.push_back(e.name);
  }

 private:
  const tensor_map& src_;
  tensor_map& dst_;
  mapping_report& report_;
  std::set<std::string> used_;
};

inline void check_channels(const Tensor<float>& v, std::int64_t channels, const std::string& tf) {
  FACENET_CHECK(v.rank() == 0 || v.numel() == channels, shape_error,
                "tensor '" + tf + "': expected " + std::to_string(channels) + " values, got shape " + v.shape().str());
}

// BatchNorm parameters under `tf` for `channels` outputs (or any length when channels < 0).
inline void map_batch_norm(mapper& m, const std::string& tf, const std::string& pt, std::int64_t channels) {
  Tensor<float> beta = m.take(tf + "/beta", 1, pt + ".bias");
  Tensor<float> mean = m.take(tf + "/moving_mean", 1, pt + ".running_mean");
  Tensor<float> var = m.take(tf + "/moving_variance", 1, pt + ".running_var");
  if (channels < 0) channels = beta.rank() ? beta.numel() : mean.rank() ? mean.numel() : var.numel();
  Tensor<float> gamma = m.has(tf + "/gamma") ? m.take(tf + "/gamma", 1, pt + ".weight")
                                             : Tensor<float>::full(facenet::shape{channels}, 1.0f);
  check_channels(gamma, channels, tf + "/gamma");
  check_channels(beta, channels, tf + "/beta");
  check_channels(mean, channels, tf + "/moving_mean");
  check_channels(var, channels, tf + "/moving_variance");
  m.put(pt + ".weight", gamma);
  m.put(pt + ".bias", beta);
  m.put(pt + ".running_mean", mean);
  m.put(pt + ".running_var", var);
}

inline void map_unit(mapper& m, const unit& u) {
  const bool conv = u.kind == unit_kind::conv_bn || u.kind == unit_kind::conv_bias;
  const std::string weight_pt = u.pt + (u.kind == unit_kind::conv_bn ? ".conv.weight" : ".weight");
  if (u.kind == unit_kind::batch_norm) return map_batch_norm(m, u.tf, u.pt, -1);
  if (u.optional && !m.has(u.tf + "/weights")) return;
  Tensor<float> w = m.take(u.tf + "/weights", conv ? 4 : 2, weight_pt);
  const std::int64_t out_channels = w.rank() ? w.size(-1) : -1;
  m.put(weight_pt, w.rank() ? permuted(w, conv ? std::vector<int>{3, 2, 0, 1} : std::vector<int>{1, 0}) : w);
  if (u.kind == unit_kind::conv_bn) return map_batch_norm(m, u.tf + "/BatchNorm", u.pt + ".bn", out_channels);
  if (u.kind == unit_kind::dense) return;
  Tensor<float> b = m.take(u.tf + "/biases", 1, u.pt + ".bias");
  if (out_channels >= 0) check_channels(b, out_channels, u.tf + "/biases");
  m.put(u.pt + ".bias", b);
}

}  // namespace tf_slim

// Maps a TF checkpoint / frozen graph of davidsandberg's Inception-ResNet-v1 onto facenet-pytorch's
// InceptionResnetV1 state_dict names. Missing and unused names go to `report`; shapes that cannot be
// the named layer throw shape_error.
inline tensor_map map_tf_slim_to_facenet_pytorch(const tensor_map& tf, mapping_report& report) {
  tensor_map out;
  out.metadata = tf.metadata;
  out.metadata["architecture"] = "inception_resnet_v1";
  tf_slim::mapper m(tf, out, report);
  for (const tf_slim::unit& u : tf_slim::inception_resnet_v1_units()) tf_slim::map_unit(m, u);
  m.finish();
  return out;
}

}  // namespace facenet::io
