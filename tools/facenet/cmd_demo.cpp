// facenet demo: the whole pipeline on a few images - detect, draw, align, embed, compare - saying
// what it did and where its files are.
#include <cstdio>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"

namespace facenet::cli {
namespace {

const std::string demo_help = std::string(
    "usage: facenet demo [IMAGE...] [--out DIR] [--weights W] [--mtcnn DIR] [--threshold 1.1] [--threads N]\n"
    "Detects the faces of each image (boxes and landmarks drawn to DIR/<name>_faces.png), aligns the\n"
    "largest (DIR/<name>_face.png), embeds it and prints the distance matrix with same/different\n"
    "verdicts. Without IMAGE it uses ../shared/images (test_images/*/1.jpg and multiface.jpg).\n"
    "Weights: --weights, else $FACENET_WEIGHTS, else the shipped default model (models/, see its\n"
    "MODEL_CARD.md), else a randomly initialised NN4-small2 (the verdicts are then meaningless; the\n"
    "pipeline still runs end to end).\n"
    "  --out DIR       where the pictures go (default facenet-demo)\n"
    "  --threshold T   same/different threshold on the embedding distance (default: the weights file's\n"
    "                  \"threshold\" metadata, else 1.1)\n");

std::string shared_images_dir() {
  for (const std::string& d : {std::string("../shared/images"), std::string("../../shared/images"),
                               std::string(FACENET_SHARED_DIR) + "/images"})
    if (fs::is_directory(d + "/test_images")) return d;
  return "";
}

std::vector<std::string> demo_images(const std::vector<std::string>& named) {
  if (!named.empty()) return named;
  const std::string dir = shared_images_dir();
  FACENET_CHECK(!dir.empty(), argument_error, "no IMAGE given and ../shared/images not found: name some images");
  std::vector<std::string> out;
  for (const auto& p : images_in(dir + "/test_images"))
    if (fs::path(p).stem() == "1") out.push_back(p);
  if (fs::exists(dir + "/multiface.jpg")) out.push_back(dir + "/multiface.jpg");
  return out;
}

// "angelina_jolie" for test_images/angelina_jolie/1.jpg, the stem otherwise.
std::string label_of(const std::string& path) {
  const fs::path p(path);
  return p.stem() == "1" ? p.parent_path().filename().string() : p.stem().string();
}

}  // namespace

int run_demo(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, demo_help.c_str(), {}, {"out", "weights", "arch", "mtcnn", "threshold"});
  if (!a) return exit_ok;
  const std::vector<std::string> paths = demo_images(a->positional());
  for (const auto& p : paths) require_file(p, "image");
  const std::string out = a->get("out", "facenet-demo");
  fs::create_directories(out);

  loaded_model m = model_from_args(*a, true);
  const double threshold = a->number("threshold", m.threshold);
  const bool random = m.source.rfind("random", 0) == 0;
  if (random)
    std::printf("*** NOTE: no --weights, no $FACENET_WEIGHTS, no default model: using a RANDOMLY INITIALISED %s. ***\n"
                "*** The distances and same/different verdicts below are MEANINGLESS; convert real weights ***\n"
                "*** with `facenet convert` and pass --weights to get real answers.                        ***\n\n",
                m.arch.c_str());
  const int size = static_cast<int>(m.net->info().input_size);
  detect::mtcnn detector = load_mtcnn(a->get("mtcnn"));

  std::vector<std::string> labels;
  std::vector<data::image> faces;
  for (const auto& p : paths) {
    data::image img = data::load_image(p);
    const auto found = detector.detect(img);
    const std::string label = label_of(p);
    std::printf("%s: %dx%d, %zu face(s)", p.c_str(), img.width, img.height, found.size());
    if (!found.empty()) {
      const auto main = detect::select_faces(found, img.width, img.height, false).front();
      faces.push_back(m.align_template ? align(img, main, align_method::similarity, size, 0, *m.align_template)
                                       : align(img, main, align_method::crop, size, 0));
      labels.push_back(label);
      data::save_png(faces.back(), (fs::path(out) / (label + "_face.png")).string());
    }
    draw_faces(img, found);
    data::save_png(img, (fs::path(out) / (label + "_faces.png")).string());
    std::printf("%s\n", found.empty() ? " - skipped" : "");
  }
  if (faces.empty()) throw no_face_error("no face found in any of the " + std::to_string(paths.size()) + " images");

  models::embedder<float> net(std::move(m.net));
  Tensor<float> x = face_batch(faces, m.standardization);
  const Tensor<float> e = net.embed(x);
  std::printf("\nembeddings: %s, %lld-d, weights %s\n\ndistance matrix:\n%16s", m.arch.c_str(),
              static_cast<long long>(e.size(1)), m.source.c_str(), "");
  for (const auto& l : labels) std::printf(" %14.14s", l.c_str());
  std::printf("\n");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    std::printf("%16.16s", labels[i].c_str());
    for (std::size_t j = 0; j < labels.size(); ++j) std::printf(" %14.4f", distance(e, static_cast<std::int64_t>(i), static_cast<std::int64_t>(j)));
    std::printf("\n");
  }
  std::printf("\nverdicts (threshold %.2f):\n", threshold);
  for (std::size_t i = 0; i < labels.size(); ++i)
    for (std::size_t j = i + 1; j < labels.size(); ++j) {
      const double d = distance(e, static_cast<std::int64_t>(i), static_cast<std::int64_t>(j));
      std::printf("  %-16s %-16s %.4f  %s\n", labels[i].c_str(), labels[j].c_str(), d, d <= threshold ? "same" : "different");
    }
  std::printf("\nwrote %zu annotated images (*_faces.png) and %zu aligned faces (*_face.png) to %s/\n", paths.size(),
              faces.size(), fs::absolute(out).lexically_normal().string().c_str());
  if (random) std::printf("(random weights: the verdicts above are meaningless)\n");
  return exit_ok;
}

}  // namespace facenet::cli
