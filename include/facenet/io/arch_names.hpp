// The tensors each supported architecture expects, by name and shape, in state_dict order. Names are
// the reference implementation's state_dict keys (facenet-pytorch's MTCNN PNet/RNet/ONet and
// InceptionResnetV1), so converted files and the C++ models agree on one vocabulary. The lists are
// generated from the module structure rather than typed out, mirroring how the modules are built.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/shape.hpp"
#include "facenet/io/nn4_names.hpp"

namespace facenet::io {

struct expected_tensor {
  std::string name;
  shape dims;
  bool optional = false;  // BatchNorm's num_batches_tracked: accepted when present, never required
};

struct architecture {
  std::string name;
  std::vector<expected_tensor> tensors;
  std::map<std::string, std::string> metadata;  // written into converted files' __metadata__

  std::int64_t parameter_count() const {
    std::int64_t n = 0;
    for (const auto& t : tensors)
      if (!t.optional && t.name.find("running_") == std::string::npos) n += t.dims.numel();
    return n;
  }
};

namespace detail {

class arch_builder {
 public:
  explicit arch_builder(architecture& a) : a_(a) {}
  void add(const std::string& name, shape dims, bool optional = false) { a_.tensors.push_back({name, dims, optional}); }
  void conv(const std::string& p, std::int64_t in, std::int64_t out, std::int64_t kh, std::int64_t kw, bool bias = true) {
    add(p + ".weight", {out, in, kh, kw});
    if (bias) add(p + ".bias", {out});
  }
  void linear(const std::string& p, std::int64_t in, std::int64_t out, bool bias = true) {
    add(p + ".weight", {out, in});
    if (bias) add(p + ".bias", {out});
  }
  void batch_norm(const std::string& p, std::int64_t c) {
    for (const char* s : {".weight", ".bias", ".running_mean", ".running_var"}) add(p + s, {c});
    add(p + ".num_batches_tracked", {}, true);
  }
  // facenet-pytorch BasicConv2d: conv without bias, BatchNorm2d(eps=0.001), ReLU.
  void basic_conv(const std::string& p, std::int64_t in, std::int64_t out, std::int64_t kh, std::int64_t kw) {
    conv(p + ".conv", in, out, kh, kw, false);
    batch_norm(p + ".bn", out);
  }

 private:
  architecture& a_;
};

inline std::map<std::string, std::string> mtcnn_metadata(const std::string& name, const std::string& input_size) {
  return {{"architecture", name},
          {"input_size", input_size},
          {"channel_order", "RGB"},
          {"standardization", "mtcnn"},  // (x - 127.5) * 0.0078125
          {"layout", "OIHW"}};
}

// One PReLU conv stage of an MTCNN network: convN + preluN.
inline void mtcnn_stage(arch_builder& b, int n, std::int64_t in, std::int64_t out, std::int64_t k) {
  b.conv("conv" + std::to_string(n), in, out, k, k);
  b.add("prelu" + std::to_string(n) + ".weight", {out});
}

}  // namespace detail

inline architecture mtcnn_pnet() {
  architecture a{"mtcnn_pnet", {}, detail::mtcnn_metadata("mtcnn_pnet", "any")};
  detail::arch_builder b(a);
  detail::mtcnn_stage(b, 1, 3, 10, 3);
  detail::mtcnn_stage(b, 2, 10, 16, 3);
  detail::mtcnn_stage(b, 3, 16, 32, 3);
  b.conv("conv4_1", 32, 2, 1, 1);
  b.conv("conv4_2", 32, 4, 1, 1);
  return a;
}

// Note: facenet-pytorch's RNet/ONet permute the last feature map to (N, W, H, C) before flattening,
// so dense4/dense5 take inputs in that order (the order of the original TF weights).
inline architecture mtcnn_rnet() {
  architecture a{"mtcnn_rnet", {}, detail::mtcnn_metadata("mtcnn_rnet", "24")};
  detail::arch_builder b(a);
  detail::mtcnn_stage(b, 1, 3, 28, 3);
  detail::mtcnn_stage(b, 2, 28, 48, 3);
  detail::mtcnn_stage(b, 3, 48, 64, 2);
  b.linear("dense4", 576, 128);
  b.add("prelu4.weight", {128});
  b.linear("dense5_1", 128, 2);
  b.linear("dense5_2", 128, 4);
  return a;
}

inline architecture mtcnn_onet() {
  architecture a{"mtcnn_onet", {}, detail::mtcnn_metadata("mtcnn_onet", "48")};
  detail::arch_builder b(a);
  detail::mtcnn_stage(b, 1, 3, 32, 3);
  detail::mtcnn_stage(b, 2, 32, 64, 3);
  detail::mtcnn_stage(b, 3, 64, 64, 3);
  detail::mtcnn_stage(b, 4, 64, 128, 2);
  b.linear("dense5", 1152, 256);
  b.add("prelu5.weight", {256});
  b.linear("dense6_1", 256, 2);
  b.linear("dense6_2", 256, 4);
  b.linear("dense6_3", 256, 10);
  return a;
}

// facenet-pytorch InceptionResnetV1; `num_classes` > 0 adds the `logits` classifier head.
inline architecture inception_resnet_v1(std::int64_t num_classes = 0) {
  architecture a{"inception_resnet_v1", {}, {}};
  a.metadata = {{"architecture", "inception_resnet_v1"}, {"input_size", "160"},          {"channel_order", "RGB"},
                {"standardization", "fixed"},             {"bn_eps", "0.001"},             {"embedding_size", "512"},
                {"layout", "OIHW"}};
  detail::arch_builder b(a);
  b.basic_conv("conv2d_1a", 3, 32, 3, 3);
  b.basic_conv("conv2d_2a", 32, 32, 3, 3);
  b.basic_conv("conv2d_2b", 32, 64, 3, 3);
  b.basic_conv("conv2d_3b", 64, 80, 1, 1);
  b.basic_conv("conv2d_4a", 80, 192, 3, 3);
  b.basic_conv("conv2d_4b", 192, 256, 3, 3);
  for (int i = 0; i < 5; ++i) {  // Block35
    const std::string p = "repeat_1." + std::to_string(i);
    b.basic_conv(p + ".branch0", 256, 32, 1, 1);
    b.basic_conv(p + ".branch1.0", 256, 32, 1, 1);
    b.basic_conv(p + ".branch1.1", 32, 32, 3, 3);
    b.basic_conv(p + ".branch2.0", 256, 32, 1, 1);
    b.basic_conv(p + ".branch2.1", 32, 32, 3, 3);
    b.basic_conv(p + ".branch2.2", 32, 32, 3, 3);
    b.conv(p + ".conv2d", 96, 256, 1, 1);
  }
  b.basic_conv("mixed_6a.branch0", 256, 384, 3, 3);
  b.basic_conv("mixed_6a.branch1.0", 256, 192, 1, 1);
  b.basic_conv("mixed_6a.branch1.1", 192, 192, 3, 3);
  b.basic_conv("mixed_6a.branch1.2", 192, 256, 3, 3);
  for (int i = 0; i < 10; ++i) {  // Block17
    const std::string p = "repeat_2." + std::to_string(i);
    b.basic_conv(p + ".branch0", 896, 128, 1, 1);
    b.basic_conv(p + ".branch1.0", 896, 128, 1, 1);
    b.basic_conv(p + ".branch1.1", 128, 128, 1, 7);
    b.basic_conv(p + ".branch1.2", 128, 128, 7, 1);
    b.conv(p + ".conv2d", 256, 896, 1, 1);
  }
  b.basic_conv("mixed_7a.branch0.0", 896, 256, 1, 1);
  b.basic_conv("mixed_7a.branch0.1", 256, 384, 3, 3);
  b.basic_conv("mixed_7a.branch1.0", 896, 256, 1, 1);
  b.basic_conv("mixed_7a.branch1.1", 256, 256, 3, 3);
  b.basic_conv("mixed_7a.branch2.0", 896, 256, 1, 1);
  b.basic_conv("mixed_7a.branch2.1", 256, 256, 3, 3);
  b.basic_conv("mixed_7a.branch2.2", 256, 256, 3, 3);
  for (int i = 0; i < 6; ++i) {  // Block8 x5, then the final Block8 without ReLU
    const std::string p = i < 5 ? "repeat_3." + std::to_string(i) : std::string("block8");
    b.basic_conv(p + ".branch0", 1792, 192, 1, 1);
    b.basic_conv(p + ".branch1.0", 1792, 192, 1, 1);
    b.basic_conv(p + ".branch1.1", 192, 192, 1, 3);
    b.basic_conv(p + ".branch1.2", 192, 192, 3, 1);
    b.conv(p + ".conv2d", 384, 1792, 1, 1);
  }
  b.linear("last_linear", 1792, 512, false);
  b.batch_norm("last_bn", 512);
  if (num_classes > 0) {
    b.linear("logits", 512, num_classes);
    a.metadata["num_classes"] = std::to_string(num_classes);
  }
  return a;
}

// OpenFace nn4.small2.v1 (Keras-OpenFace layer names; table in nn4_names.hpp).
inline architecture nn4_small2() {
  architecture a{"nn4_small2", {}, {}};
  a.metadata = {{"architecture", "nn4_small2"}, {"input_size", "96"}, {"channel_order", "RGB"}, {"standardization", "unit"},
                {"bn_eps", "1e-05"},           {"embedding_size", "128"}, {"layout", "OIHW"}};
  for (const nn4_param& p : nn4_small2_parameters()) a.tensors.push_back({p.name, p.dims});
  return a;
}

inline std::vector<std::string> architecture_names() {
  return {"mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "inception_resnet_v1", "nn4_small2"};
}

// "inception_resnet_v1" or "inception_resnet_v1:<num_classes>" (with the logits head).
inline architecture find_architecture(const std::string& name) {
  if (name == "mtcnn_pnet") return mtcnn_pnet();
  if (name == "mtcnn_rnet") return mtcnn_rnet();
  if (name == "mtcnn_onet") return mtcnn_onet();
  if (name == "inception_resnet_v1") return inception_resnet_v1();
  if (name == "nn4_small2") return nn4_small2();
  const std::string irv1 = "inception_resnet_v1:";
  if (name.compare(0, irv1.size(), irv1) == 0) {
    const std::string n = name.substr(irv1.size());
    FACENET_CHECK(!n.empty() && n.size() < 9 && n.find_first_not_of("0123456789") == std::string::npos && std::stoll(n) > 0,
                  argument_error, "architecture '" + name + "': expected inception_resnet_v1:<number of classes>");
    return inception_resnet_v1(std::stoll(n));
  }
  std::string known;
  for (const auto& a : architecture_names()) known += " " + a;
  throw argument_error("unknown architecture '" + name + "' (known:" + known + ", inception_resnet_v1:<classes>)");
}

}  // namespace facenet::io
