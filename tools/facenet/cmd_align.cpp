// facenet align: every detected face of each image, cropped or warped to a square PNG.
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"

namespace facenet::cli {
namespace {

const char* help =
    "usage: facenet align [--method crop|similarity] [--size 160] [--margin 0] IN... --out DIR\n"
    "                     [--mtcnn DIR] [--min-face 20] [--thresholds 0.6,0.7,0.7] [--factor 0.709] [--threads N]\n"
    "Writes DIR/<image name>_face<k>.png for every face found (k = 0 is the most probable) and prints\n"
    "the paths. IN may be images or folders (searched recursively).\n"
    "  --method crop        facenet-pytorch's extract_face: box + margin, resized (default)\n"
    "  --method similarity  5-point similarity warp onto the ArcFace template scaled to --size\n"
    "  --size S             output side in pixels (160 for Inception-ResNet-v1, 96 for NN4-small2)\n"
    "  --margin PX          crop margin in output pixels (facenet-pytorch semantics)\n";

}  // namespace

int run_align(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, help, {},
                               {"method", "size", "margin", "out", "mtcnn", "min-face", "thresholds", "factor"});
  if (!a) return exit_ok;
  FACENET_CHECK(a->has("out"), argument_error, "--out DIR is required (see --help)");
  FACENET_CHECK(!a->positional().empty(), argument_error, "no IN given (see --help)");
  const align_method method = parse_align_method(a->get("method", "crop"));
  const long size = a->integer("size", 160);
  FACENET_CHECK(size >= 8 && size <= 4096, argument_error, "--size must be in [8, 4096]");
  const float margin = static_cast<float>(a->number("margin", 0));
  std::vector<std::string> inputs;
  for (const auto& in : a->positional()) {
    require_file(in, "input");
    if (fs::is_directory(in)) {
      const auto found = images_in(in);
      inputs.insert(inputs.end(), found.begin(), found.end());
    } else {
      inputs.push_back(in);
    }
  }
  detect::mtcnn detector = load_mtcnn(a->get("mtcnn"), mtcnn_options_from(*a));
  fs::create_directories(a->get("out"));

  std::set<std::string> names;  // test_images/*/1.jpg all have the stem "1"
  std::size_t written = 0;
  progress_bar bar("align", static_cast<long>(inputs.size()));
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const data::image img = data::load_image(inputs[i]);
    const auto faces = detector.detect(img);
    if (faces.empty()) std::fprintf(stderr, "facenet align: no face in %s\n", inputs[i].c_str());
    const fs::path in(inputs[i]);
    std::string name = in.stem().string();
    if (!names.insert(name).second) names.insert(name = in.parent_path().filename().string() + "_" + name);
    for (std::size_t k = 0; k < faces.size(); ++k) {
      const std::string out = (fs::path(a->get("out")) / (name + "_face" + std::to_string(k) + ".png")).string();
      data::save_png(align(img, faces[k], method, static_cast<int>(size), margin), out);
      std::printf("%s\n", out.c_str());
      ++written;
    }
    bar.update(static_cast<long>(i + 1));
  }
  bar.finish();
  if (written == 0) throw no_face_error("no face found in any input");
  return exit_ok;
}

}  // namespace facenet::cli
