// The high-level face pipeline: load an embedding network and an MTCNN detector from files in any
// supported format, and turn images into embeddings. What a user writes first; everything below it
// is available piecewise through the fine-grained headers.
#pragma once

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/data/image.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/data/transforms.hpp"
#include "facenet/detect/align.hpp"
#include "facenet/detect/mtcnn.hpp"
#include "facenet/io/convert.hpp"
#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/nn4_small2.hpp"

namespace facenet {

// One of the MTCNN networks from `dir`: <net>.safetensors (converted), <net>.pt (facenet-pytorch) or
// detN.npy (davidsandberg), mapped so every layout ends up with facenet-pytorch names.
inline io::tensor_map load_mtcnn_net(const std::string& dir, const std::string& net, const std::string& npy_name) {
  for (const std::string& file : {net + ".safetensors", net + ".pt", npy_name}) {
    const std::string path = (std::filesystem::path(dir) / file).string();
    if (!std::filesystem::exists(path)) continue;
    io::conversion_report report;
    io::convert_options opt;
    opt.arch = "mtcnn_" + net;
    io::tensor_map w = io::prepare_conversion(path, opt, report);
    FACENET_CHECK(report.ok(), format_error, path + " is not an MTCNN " + net + ": " + report.problems());
    return w;
  }
  throw io_error("MTCNN directory '" + dir + "' has none of " + net + ".safetensors, " + net + ".pt, " + npy_name);
}

// P-, R- and O-Net from one directory (see load_mtcnn_net for the accepted files).
inline detect::mtcnn load_mtcnn(const std::string& dir, const detect::mtcnn_options& opt = {}) {
  FACENET_CHECK(std::filesystem::is_directory(dir), io_error, "MTCNN directory '" + dir + "' does not exist");
  return detect::mtcnn::from_weights(load_mtcnn_net(dir, "pnet", "det1.npy"), load_mtcnn_net(dir, "rnet", "det2.npy"),
                                     load_mtcnn_net(dir, "onet", "det3.npy"), opt);
}

inline std::unique_ptr<models::model<float>> make_embedding_model(const std::string& arch) {
  if (arch == "nn4_small2") return std::make_unique<models::nn4_small2<float>>();
  if (arch == "inception_resnet_v1") return std::make_unique<models::inception_resnet_v1<float>>();
  throw argument_error("unknown architecture '" + arch + "' (nn4_small2 or inception_resnet_v1)");
}

// How each architecture's published weights expect their input: facenet-pytorch's
// fixed_image_standardization for Inception-ResNet-v1, OpenFace's [0, 1] scaling for NN4-small2.
inline data::standardization default_standardization(const std::string& arch) {
  return arch == "nn4_small2" ? data::standardization::unit : data::standardization::fixed;
}

struct loaded_model {
  std::unique_ptr<models::model<float>> net;
  std::string arch;
  std::string source;
  data::standardization standardization = data::standardization::fixed;
  double threshold = 1.1;  // same/different distance threshold: the file's "threshold" metadata, else 1.1
  // Where the five landmarks sat in the crops the model was trained on (unit coordinates), from the
  // file's "align_template" metadata: faces are then warped onto it instead of cropped.
  std::optional<detect::landmarks> align_template = std::nullopt;
};

// "x1 y1 x2 y2 ... x5 y5" (unit coordinates, finite) -> landmarks; nothing if malformed.
inline std::optional<detect::landmarks> parse_align_template(const std::string& text) {
  detect::landmarks t{};
  const char* s = text.c_str();
  for (auto& p : t)
    for (float& v : p) {
      char* end = nullptr;
      const double d = std::strtod(s, &end);
      if (end == s || !std::isfinite(d) || d < -1 || d > 2) return std::nullopt;
      v = static_cast<float>(d);
      s = end;
    }
  while (*s == ' ') ++s;
  if (*s != '\0') return std::nullopt;
  return t;
}

// A verification threshold from text: a finite number > 0, or nothing.
inline std::optional<double> parse_threshold(const std::string& text) {
  char* end = nullptr;
  const double t = std::strtod(text.c_str(), &end);
  if (text.empty() || !end || *end != '\0' || !std::isfinite(t) || t <= 0) return std::nullopt;
  return t;
}

// An embedding network from weights in any format the converter reads (safetensors, facenet-pytorch
// .pt, TF checkpoint, Torch7, ...). The architecture comes from `arch_hint`, else from the file's
// metadata / tensor names; the standardization from the metadata, else the architecture's default.
// A classifier head in the file is dropped.
inline loaded_model load_embedding_model(const std::string& path, const std::string& arch_hint = "") {
  FACENET_CHECK(std::filesystem::exists(path), io_error, "weights file '" + path + "' does not exist");
  io::conversion_report report;
  io::convert_options opt;
  opt.arch = arch_hint;
  const io::tensor_map all = io::prepare_conversion(path, opt, report);
  const std::string arch = report.arch.substr(0, report.arch.find(':'));
  FACENET_CHECK(arch == "nn4_small2" || arch == "inception_resnet_v1", format_error,
                path + " holds " + report.arch + " weights, not an embedding network (nn4_small2, inception_resnet_v1)");
  FACENET_CHECK(report.ok(), format_error, path + " does not fit " + arch + ": " + report.problems());
  loaded_model m{make_embedding_model(arch), arch, path, default_standardization(arch)};
  const auto s = all.metadata.find("standardization");
  if (s != all.metadata.end() && !s->second.empty()) m.standardization = data::parse_standardization(s->second);
  const auto t = all.metadata.find("threshold");
  if (t != all.metadata.end()) {
    const auto value = parse_threshold(t->second);
    FACENET_CHECK(value, format_error, path + ": __metadata__ 'threshold' must be a positive number, found '" + t->second + "'");
    m.threshold = *value;
  }
  if (const auto at = all.metadata.find("align_template"); at != all.metadata.end()) {
    m.align_template = parse_align_template(at->second);
    FACENET_CHECK(m.align_template, format_error,
                  path + ": __metadata__ 'align_template' must be 10 numbers (x y of 5 landmarks in unit coordinates), found '" +
                      at->second + "'");
  }
  io::tensor_map wanted;
  for (const auto& p : m.net->parameters())
    if (all.contains(p.name)) wanted.add(p.name, all.at(p.name));
  m.net->load(std::move(wanted));  // takes the decoded buffers over: one copy of the weights in memory
  return m;
}

// The trained model the library ships (NN4-small2 trained on LFW's development split, see
// models/MODEL_CARD.md): looked for in $FACENET_MODELS_DIR, then in the directory the build or the
// installed package defines as FACENET_MODELS_DIR. Empty when it is not there.
inline constexpr const char* default_model_file = "nn4_small2_lfw.safetensors";

inline std::string default_model_path() {
  std::vector<std::filesystem::path> dirs;
  if (const char* env = std::getenv("FACENET_MODELS_DIR"); env && *env) dirs.emplace_back(env);
#ifdef FACENET_MODELS_DIR
  dirs.emplace_back(FACENET_MODELS_DIR);
#endif
  for (const auto& dir : dirs)
    if (std::filesystem::exists(dir / default_model_file)) return (dir / default_model_file).string();
  return {};
}

// The shipped model, or an io_error saying where it was looked for.
inline loaded_model load_default_model() {
  const std::string path = default_model_path();
  FACENET_CHECK(!path.empty(), io_error,
                std::string("the default model ") + default_model_file +
                    " was not found (set FACENET_MODELS_DIR to the directory holding it, or load weights explicitly)");
  return load_embedding_model(path);
}

// Image -> largest face -> aligned crop -> standardized tensor -> L2-normalised embedding.
class face_embedder {
 public:
  face_embedder(const std::string& weights, const std::string& mtcnn_dir, const detect::mtcnn_options& opt = {})
      : model_(load_embedding_model(weights)), embedder_(std::move(model_.net)), detector_(load_mtcnn(mtcnn_dir, opt)) {}

  // The largest face of `img` (facenet-pytorch's default selection); nullopt when there is none.
  std::optional<detect::face> find_face(const data::image& img) {
    const auto faces = detect::select_faces(detector_.detect(img), img.width, img.height, false);
    if (faces.empty()) return std::nullopt;
    return faces.front();
  }
  // The face the network sees: warped onto the model's own landmark template when its file has one,
  // else facenet-pytorch's crop (margin in pixels), at the network's input size.
  data::image aligned_face(const data::image& img, const detect::face& f, float margin = 0) const {
    if (model_.align_template)
      return detect::align_face(img, f.points, static_cast<int>(embedder_.info().input_size), *model_.align_template);
    detect::crop_options c;
    c.image_size = static_cast<int>(embedder_.info().input_size);
    c.margin = margin;
    return detect::extract_face(img, f.b, c);
  }
  // Embedding of an already aligned face of any size (resized to the input size if needed).
  Tensor<float> embed_aligned(const data::image& face) const {
    const int size = static_cast<int>(embedder_.info().input_size);
    const data::image in = face.width == size && face.height == size
                               ? face
                               : data::resize_bilinear_pil(face, data::full_rect(face), size, size);
    Tensor<float> x = data::to_tensor(in);
    data::standardize(x, model_.standardization);
    return embedder_.embed(x);
  }
  // Embedding of the largest face in `img`; throws argument_error naming `what` if there is none.
  Tensor<float> embed(const data::image& img, const std::string& what = "image") {
    const auto f = find_face(img);
    FACENET_CHECK(f.has_value(), argument_error, "no face found in " + what);
    return embed_aligned(aligned_face(img, *f));
  }
  Tensor<float> embed_file(const std::string& path) { return embed(data::load_image(path), "'" + path + "'"); }

  // What was loaded (architecture, source, standardization, ...); its `net` now lives in the embedder.
  const loaded_model& model() const noexcept { return model_; }
  detect::mtcnn& detector() noexcept { return detector_; }

 private:
  loaded_model model_;
  models::embedder<float> embedder_;
  detect::mtcnn detector_;
};

// Euclidean distance between two L2-normalised embeddings ([1, D] or [D]); facenet-pytorch's README
// and davidsandberg's validation use it, with about 1.1 separating same from different people for
// the VGGFace2 Inception-ResNet-v1.
inline double embedding_distance(const Tensor<float>& a, const Tensor<float>& b) {
  FACENET_CHECK(a.numel() == b.numel(), shape_error,
                "embedding_distance: " + a.shape().str() + " vs " + b.shape().str());
  double d = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double v = static_cast<double>(a.data()[i]) - b.data()[i];
    d += v * v;
  }
  return std::sqrt(d);
}

}  // namespace facenet
