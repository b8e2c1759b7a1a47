// What several facenet commands share: --threads, --help text, MTCNN and embedding-model loading,
// the image -> aligned face -> standardized tensor path, and writing embeddings. Thin glue over the
// library; anything algorithmic lives in include/facenet.
#pragma once

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <cstring>
#include <vector>

#include "args.hpp"
#include "exit_codes.hpp"
#include "progress.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/data/dataset.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/detect/align.hpp"
#include "facenet/detect/mtcnn.hpp"
#include "facenet/io/atomic_file.hpp"
#include "facenet/io/convert.hpp"
#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/model.hpp"
#include "facenet/models/nn4_small2.hpp"
#include "facenet/pipeline.hpp"

namespace facenet::cli {

namespace fs = std::filesystem;
using model_ptr = std::unique_ptr<models::model<float>>;

// Options every command accepts on top of its own.
inline std::set<std::string> with_common_flags(std::set<std::string> flags) {
  flags.insert("help");
  return flags;
}
inline std::set<std::string> with_common_options(std::set<std::string> options) {
  options.insert("threads");
  return options;
}

// Parses the command line; prints `help` and returns nullopt on --help.
inline std::optional<args> parse_command(int argc, char** argv, int first, const char* help, std::set<std::string> flags,
                                         std::set<std::string> options) {
  args a(argc, argv, first, with_common_flags(std::move(flags)), with_common_options(std::move(options)));
  if (a.has("help")) {
    std::fputs(help, stdout);
    return std::nullopt;
  }
  if (a.has("threads")) {
    const long t = a.integer("threads", 0);
    FACENET_CHECK(t >= 1 && t <= 1024, argument_error, "--threads must be in [1, 1024], got " + a.get("threads"));
    parallel::set_num_threads(static_cast<int>(t));
  }
  return a;
}

inline void require_file(const std::string& path, const std::string& what) {
  FACENET_CHECK(fs::exists(path), io_error, what + " '" + path + "' does not exist");
}

// --- MTCNN ------------------------------------------------------------------------------------

// $FACENET_MTCNN, else the shared facenet-pytorch weights next to the repository, else "".
inline std::string default_mtcnn_dir() {
  if (const char* env = std::getenv("FACENET_MTCNN"); env && *env) return env;
  for (const char* candidate : {"../shared/weights/mtcnn/facenet-pytorch", "../../shared/weights/mtcnn/facenet-pytorch"})
    if (fs::is_directory(candidate)) return candidate;
#ifdef FACENET_SHARED_DIR
  if (fs::is_directory(FACENET_SHARED_DIR "/weights/mtcnn/facenet-pytorch")) return FACENET_SHARED_DIR "/weights/mtcnn/facenet-pytorch";
#endif
  return "";
}

// --mtcnn DIR, else the default directory; the loading itself is the library's.
inline detect::mtcnn load_mtcnn(std::string dir, const detect::mtcnn_options& opt = {}) {
  if (dir.empty()) dir = default_mtcnn_dir();
  FACENET_CHECK(!dir.empty(), io_error,
                "no MTCNN weights: pass --mtcnn DIR or set FACENET_MTCNN (a directory with pnet/rnet/onet .pt, "
                ".safetensors or det1-3.npy)");
  return facenet::load_mtcnn(dir, opt);
}

// --- embedding models -------------------------------------------------------------------------

inline model_ptr make_model(const std::string& arch) { return make_embedding_model(arch); }

// Deterministic He-uniform weights, zero biases, identity batch norm: a network that runs and
// separates inputs, for benchmarks and for demos without trained weights.
inline void randomize(models::model<float>& m, std::uint32_t seed = 42) {
  std::mt19937 rng(seed);
  for (auto& p : m.parameters()) {
    const std::string& n = p.name;
    const auto ends_with = [&](const char* s) { return n.size() >= std::strlen(s) && n.compare(n.size() - std::strlen(s), std::string::npos, s) == 0; };
    Tensor<float>& t = *p.value;
    if (t.rank() >= 2) {
      const double fan_in = static_cast<double>(t.numel() / t.size(0));
      std::uniform_real_distribution<float> d(-static_cast<float>(std::sqrt(6.0 / fan_in)), static_cast<float>(std::sqrt(6.0 / fan_in)));
      for (auto& v : t) v = d(rng);
    } else {
      const float fill = (ends_with("running_var") || ends_with("weight")) ? 1.0f : 0.0f;
      for (auto& v : t) v = fill;
    }
  }
}

using facenet::loaded_model;

inline loaded_model load_model(const std::string& path, const std::string& arch_hint) {
  return load_embedding_model(path, arch_hint);
}

// --weights W, else $FACENET_WEIGHTS, else the shipped default model (when no other --arch is asked
// for), else (only when allowed) random weights of --arch.
inline loaded_model model_from_args(const args& a, bool allow_random) {
  std::string path = a.get("weights");
  if (path.empty())
    if (const char* env = std::getenv("FACENET_WEIGHTS"); env && *env) path = env;
  if (path.empty() && a.get("arch", "nn4_small2") == "nn4_small2") path = default_model_path();
  if (!path.empty()) return load_model(path, a.get("arch"));
  FACENET_CHECK(allow_random, argument_error,
                "--weights W is required (or set FACENET_WEIGHTS): the default model " + std::string(default_model_file) +
                    " was not found (FACENET_MODELS_DIR)");
  const std::string arch = a.get("arch", "nn4_small2");
  loaded_model m{make_model(arch), arch, "random (seed 42)", default_standardization(arch)};
  randomize(*m.net);
  return m;
}

// --- faces ------------------------------------------------------------------------------------

inline detect::mtcnn_options mtcnn_options_from(const args& a) {
  detect::mtcnn_options o;
  o.min_face_size = static_cast<float>(a.number("min-face", o.min_face_size));
  o.factor = a.number("factor", o.factor);
  if (a.has("thresholds")) {
    const auto t = a.numbers("thresholds", 3);
    o.thresholds = {static_cast<float>(t[0]), static_cast<float>(t[1]), static_cast<float>(t[2])};
  }
  o.validate();
  return o;
}

enum class align_method { crop, similarity };

inline align_method parse_align_method(const std::string& s) {
  if (s == "crop") return align_method::crop;
  if (s == "similarity") return align_method::similarity;
  throw argument_error("--method must be crop or similarity, not '" + s + "'");
}

// `unit_template`: where similarity alignment puts the landmarks (the model's own, else ArcFace's).
inline data::image align(const data::image& img, const detect::face& f, align_method method, int size, float margin,
                         const detect::landmarks& unit_template = detect::arcface_unit_template()) {
  if (method == align_method::similarity) return detect::align_face(img, f.points, size, unit_template);
  detect::crop_options c;
  c.image_size = size;
  c.margin = margin;
  return detect::extract_face(img, f.b, c);
}

// The face facenet-pytorch's MTCNN returns by default (select_largest=True); no_face_error if none.
inline detect::face main_face(detect::mtcnn& detector, const data::image& img, const std::string& path) {
  const auto faces = detect::select_faces(detector.detect(img), img.width, img.height, false);
  if (faces.empty()) throw no_face_error("no face found in '" + path + "'");
  return faces.front();
}

// Loads `path` and returns the face the network will see: the largest detected face aligned to
// `size`, or (no detector) the whole image resized to `size`.
inline data::image face_image(const std::string& path, detect::mtcnn* detector, align_method method, int size, float margin,
                              const detect::landmarks& unit_template = detect::arcface_unit_template()) {
  require_file(path, "image");
  const data::image img = data::load_image(path);
  if (detector) return align(img, main_face(*detector, img, path), method, size, margin, unit_template);
  return data::resize_bilinear_pil(img, data::full_rect(img), size, size);
}

// Faces -> one standardized [N, 3, S, S] batch.
inline Tensor<float> face_batch(const std::vector<data::image>& faces, data::standardization s) {
  FACENET_CHECK(!faces.empty(), argument_error, "no images given");
  Tensor<float> x = Tensor<float>::uninitialized({static_cast<std::int64_t>(faces.size()), 3, faces[0].height, faces[0].width});
  for (std::size_t i = 0; i < faces.size(); ++i) data::to_tensor(faces[i], x, static_cast<std::int64_t>(i));
  data::standardize(x, s);
  return x;
}

inline double squared_distance(const Tensor<float>& e, std::int64_t i, std::int64_t j) {
  double d = 0;
  for (std::int64_t k = 0; k < e.size(1); ++k) {
    const double v = static_cast<double>(e.data()[i * e.size(1) + k]) - e.data()[j * e.size(1) + k];
    d += v * v;
  }
  return d;
}

// Euclidean distance of L2-normalised embeddings; facenet-pytorch's README and davidsandberg's
// validation use this metric, with ~1.1 as the same/different threshold for the VGGFace2 model.
inline double distance(const Tensor<float>& e, std::int64_t i, std::int64_t j) { return std::sqrt(squared_distance(e, i, j)); }

// Boxes (green) and landmarks (red), thick enough to see on large photos.
inline void draw_faces(data::image& img, const std::vector<detect::face>& faces) {
  const int thickness = std::max(2, std::min(img.width, img.height) / 300);
  for (const auto& f : faces) {
    data::draw_box(img, f.b.x1, f.b.y1, f.b.x2, f.b.y2, {0, 255, 0}, thickness);
    for (const auto& p : f.points) data::draw_point(img, p[0], p[1], {255, 0, 0}, thickness + 1);
  }
}

// The image -> face -> embedding path shared by embed, verify, identify, cluster and demo, set up
// from the common options (--weights, --arch, --no-detect, --mtcnn, --method, --margin).
// `align_option` names the alignment option: cluster spends --method on the clustering algorithm.
// Without `images` (embed --input-npy: crops already aligned) no detector is loaded.
class face_embedder {
 public:
  face_embedder(const args& a, bool allow_random, const std::string& align_option = "method", bool images = true)
      : model_(model_from_args(a, allow_random)), net_(std::move(model_.net)),  // converted in place, not copied
        // A model that carries its training crops' landmark template is warped onto it unless told otherwise.
        method_(parse_align_method(a.get(align_option, model_.align_template ? "similarity" : "crop"))),
        template_(model_.align_template.value_or(detect::arcface_unit_template())),
        margin_(static_cast<float>(a.number("margin", 0))),
        standardization_(a.has("standardize") ? data::parse_standardization(a.get("standardize"))
                                              : model_.standardization) {
    if (images && !a.has("no-detect")) detector_.emplace(load_mtcnn(a.get("mtcnn"), mtcnn_options_from(a)));
  }

  // What was loaded (architecture, source, standardization, ...); its `net` now lives in the embedder.
  const loaded_model& model() const noexcept { return model_; }
  int input_size() const { return static_cast<int>(net_.info().input_size); }

  // One embedding row per path, in order; batches of 16 keep memory flat on long lists.
  Tensor<float> embed_files(const std::vector<std::string>& paths, const char* label = "embed") {
    return embed_faces(faces_of(paths, label));
  }

  // The aligned face of each path, in order. Without `faceless` an image with no face is an error;
  // with it, such paths are left out and listed there (a folder may hold a few photos without faces).
  std::vector<data::image> faces_of(const std::vector<std::string>& paths, const char* label,
                                    std::vector<std::string>* faceless = nullptr) {
    for (const auto& p : paths) require_file(p, "image");
    std::vector<data::image> faces;
    progress_bar bar(label, static_cast<long>(paths.size()));
    for (std::size_t i = 0; i < paths.size(); ++i) {
      try {
        faces.push_back(face_image(paths[i], detector_ ? &*detector_ : nullptr, method_, input_size(), margin_, template_));
      } catch (const no_face_error&) {
        if (!faceless) throw;
        faceless->push_back(paths[i]);
      }
      bar.update(static_cast<long>(i + 1));
    }
    bar.finish();
    return faces;
  }

  Tensor<float> embed_faces(const std::vector<data::image>& faces) {
    FACENET_CHECK(!faces.empty(), argument_error, "no faces to embed");
    const std::int64_t d = net_.info().embedding_size, n = static_cast<std::int64_t>(faces.size()), chunk = 16;
    Tensor<float> out = Tensor<float>::uninitialized({n, d});
    for (std::int64_t b = 0; b < n; b += chunk) {
      const std::vector<data::image> part(faces.begin() + b, faces.begin() + std::min(n, b + chunk));
      const Tensor<float> e = net_.embed(face_batch(part, standardization_));
      std::copy(e.data(), e.data() + e.numel(), out.data() + b * d);
    }
    return out;
  }
  Tensor<float> embed_tensor(const Tensor<float>& x) { return net_.embed(x); }
  const models::embedder<float>& net() const noexcept { return net_; }
  data::standardization standardization() const noexcept { return standardization_; }

 private:
  loaded_model model_;
  models::embedder<float> net_;
  std::optional<detect::mtcnn> detector_;
  align_method method_;
  detect::landmarks template_;
  float margin_;
  data::standardization standardization_;
};

// Options face_embedder reads (`align_option` as in its constructor).
inline std::set<std::string> embedding_options(std::set<std::string> extra = {}, const std::string& align_option = "method") {
  for (const char* o : {"weights", "arch", "mtcnn", "margin", "standardize", "min-face", "thresholds", "factor"})
    extra.insert(o);
  extra.insert(align_option);
  return extra;
}
inline std::string embedding_help_for(const std::string& align_option) {
  const std::string flag = "  --" + align_option + " M";
  return
    "  --weights W      embedding weights (safetensors from `facenet convert`, or a facenet-pytorch .pt);\n"
    "                   default $FACENET_WEIGHTS, else the shipped default model (models/)\n"
    "  --arch A         nn4_small2 | inception_resnet_v1 (default: from the tensor names)\n"
    "  --no-detect      images are already aligned faces: resize only\n"
    "  --mtcnn DIR      MTCNN weights (default $FACENET_MTCNN or ../shared/weights/mtcnn/facenet-pytorch)\n" +
    flag + std::string(flag.size() < 19 ? 19 - flag.size() : 1, ' ') +
    "crop (facenet-pytorch extract_face) | similarity (5-point warp onto the weights'\n"
    "                   \"align_template\" metadata, else ArcFace's); default similarity when the\n"
    "                   weights carry a template, else crop\n"
    "  --margin PX      crop margin in output pixels (default 0)\n"
    "  --standardize S  fixed | prewhiten | unit (default: the weights file's metadata, else fixed for\n"
    "                   inception_resnet_v1 and unit for nn4_small2)\n"
    "  --threads N      worker threads\n";
}
inline const std::string embedding_help = embedding_help_for("method");

// --- output -----------------------------------------------------------------------------------

// A 2-D float32 array as NumPy .npy version 1.0 (little-endian, C order).
inline void save_npy_2d(const std::string& path, const Tensor<float>& t) {
  FACENET_CHECK(t.rank() == 2 && t.is_contiguous(), shape_error, "save_npy_2d: expected a contiguous matrix, got " + t.shape().str());
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(t.size(0)) + ", " +
                       std::to_string(t.size(1)) + "), }";
  header.append(63 - (10 + header.size()) % 64, ' ').push_back('\n');  // total header a multiple of 64
  const std::uint16_t len = static_cast<std::uint16_t>(header.size());
  std::string bytes("\x93NUMPY\x01\x00", 8);
  bytes += static_cast<char>(len & 0xff);
  bytes += static_cast<char>(len >> 8);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(t.data()), static_cast<std::size_t>(t.numel()) * sizeof(float));
  io::write_file_atomically(path, bytes);  // names the path and the OS's reason on failure
}

inline void save_csv_2d(const std::string& path, const Tensor<float>& t) {
  std::string text;
  char buf[32];
  for (std::int64_t i = 0; i < t.size(0); ++i)
    for (std::int64_t k = 0; k < t.size(1); ++k) {
      std::snprintf(buf, sizeof buf, "%.9g", static_cast<double>(t.data()[i * t.size(1) + k]));
      text += buf;
      text += k + 1 < t.size(1) ? ',' : '\n';
    }
  io::write_file_atomically(path, text);
}

inline std::vector<std::string> images_in(const std::string& dir) {
  FACENET_CHECK(fs::is_directory(dir), io_error, "'" + dir + "' is not a directory");
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::string ext = e.path().extension().string();
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto& known = data::default_image_extensions();
    if (e.is_regular_file() && std::find(known.begin(), known.end(), ext) != known.end()) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace facenet::cli
