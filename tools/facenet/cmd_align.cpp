// facenet align: every detected face of each image, cropped or warped to a square PNG; or, with
// --dataset, the main face of every image of a folder-per-identity dataset into the same tree
// (what davidsandberg's align_dataset_mtcnn.py does before training).
#include <cstdio>
#include <set>
#include <string>

#include "commands.hpp"
#include "common.hpp"

namespace facenet::cli {
namespace {

const char* align_help =
    "usage: facenet align [--method crop|similarity] [--size 160] [--margin 0] IN... --out DIR\n"
    "       facenet align --dataset [options] DATASET_DIR --out DIR\n"
    "                     [--mtcnn DIR] [--min-face 20] [--thresholds 0.6,0.7,0.7] [--factor 0.709] [--threads N]\n"
    "Writes DIR/<image name>_face<k>.png for every face found (k = 0 is the most probable) and prints\n"
    "the paths. IN may be images or folders (searched recursively).\n"
    "  --dataset            DATASET_DIR/<identity>/<image> -> DIR/<identity>/<image stem>.png holding the face\n"
    "                       embed/verify would use (the largest); images without a face are listed on stderr\n"
    "                       and skipped; existing outputs are kept, so an interrupted run can be continued\n"
    "  --method crop        facenet-pytorch's extract_face: box + margin, resized (default)\n"
    "  --method similarity  5-point similarity warp onto the ArcFace template scaled to --size\n"
    "  --size S             output side in pixels (160 for Inception-ResNet-v1, 96 for NN4-small2)\n"
    "  --margin PX          crop margin in output pixels (facenet-pytorch semantics)\n";

struct align_settings {
  align_method method;
  int size;
  float margin;
  fs::path out;
};

std::vector<std::string> expand_inputs(const std::vector<std::string>& positional) {
  std::vector<std::string> inputs;
  for (const auto& in : positional) {
    require_file(in, "input");
    if (!fs::is_directory(in)) {
      inputs.push_back(in);
      continue;
    }
    const auto found = images_in(in);
    inputs.insert(inputs.end(), found.begin(), found.end());
  }
  return inputs;
}

// Every face of every input, flat into s.out.
std::size_t align_all_faces(const std::vector<std::string>& inputs, detect::mtcnn& detector, const align_settings& s) {
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
      const std::string out = (s.out / (name + "_face" + std::to_string(k) + ".png")).string();
      data::save_png(align(img, faces[k], s.method, s.size, s.margin), out);
      std::printf("%s\n", out.c_str());
      ++written;
    }
    bar.update(static_cast<long>(i + 1));
  }
  bar.finish();
  return written;
}

// The main face of each image of `root`, mirrored into s.out/<relative dir>/<stem>.png.
std::size_t align_dataset(const std::string& root, detect::mtcnn& detector, const align_settings& s) {
  FACENET_CHECK(fs::is_directory(root), io_error, "--dataset expects one folder-per-identity directory, '" + root + "' is not a directory");
  const auto inputs = images_in(root);
  std::size_t written = 0, missed = 0;
  progress_bar bar("align", static_cast<long>(inputs.size()));
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    // Lexically: fs::relative would resolve symlinked images and could point outside s.out.
    const fs::path rel = fs::path(inputs[i]).lexically_relative(root);
    FACENET_CHECK(!rel.empty() && *rel.begin() != "..", io_error, "'" + inputs[i] + "' is not inside '" + root + "'");
    fs::path out = s.out / rel;
    out.replace_extension(".png");
    bar.update(static_cast<long>(i + 1));
    if (fs::exists(out)) {
      ++written;
      continue;
    }
    const data::image img = data::load_image(inputs[i]);
    const auto faces = detect::select_faces(detector.detect(img), img.width, img.height, false);
    if (faces.empty()) {
      bar.finish();
      std::fprintf(stderr, "facenet align: no face in %s (skipped)\n", inputs[i].c_str());
      ++missed;
      continue;
    }
    fs::create_directories(out.parent_path());
    const fs::path partial = out.string() + ".partial";  // never leave a half-written PNG behind an interruption
    data::save_png(align(img, faces.front(), s.method, s.size, s.margin), partial.string());
    fs::rename(partial, out);
    ++written;
  }
  bar.finish();
  std::fprintf(stderr, "facenet align: %zu of %zu images aligned into %s, %zu without a face\n", written, inputs.size(),
               s.out.string().c_str(), missed);
  return written;
}

}  // namespace

int run_align(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, align_help, {"dataset"},
                               {"method", "size", "margin", "out", "mtcnn", "min-face", "thresholds", "factor"});
  if (!a) return exit_ok;
  FACENET_CHECK(a->has("out"), argument_error, "--out DIR is required (see --help)");
  FACENET_CHECK(!a->positional().empty(), argument_error, "no IN given (see --help)");
  const long size = a->integer("size", 160);
  FACENET_CHECK(size >= 8 && size <= 4096, argument_error, "--size must be in [8, 4096]");
  const align_settings s{parse_align_method(a->get("method", "crop")), static_cast<int>(size),
                         static_cast<float>(a->number("margin", 0)), a->get("out")};
  const bool dataset = a->has("dataset");
  FACENET_CHECK(!dataset || a->positional().size() == 1, argument_error, "--dataset takes exactly one DATASET_DIR");
  const std::vector<std::string> inputs = dataset ? std::vector<std::string>{} : expand_inputs(a->positional());
  if (dataset) require_file(a->positional().front(), "dataset directory");
  detect::mtcnn detector = load_mtcnn(a->get("mtcnn"), mtcnn_options_from(*a));
  fs::create_directories(s.out);
  const std::size_t written = dataset ? align_dataset(a->positional().front(), detector, s) : align_all_faces(inputs, detector, s);
  if (written == 0) throw no_face_error("no face found in any input");
  return exit_ok;
}

}  // namespace facenet::cli
