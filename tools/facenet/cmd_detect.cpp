// facenet detect: MTCNN faces of each image as JSON on stdout, optionally drawn to a PNG.
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/io/json.hpp"
#include "progress.hpp"

namespace facenet::cli {
namespace {

const char* detect_help =
    "usage: facenet detect [--mtcnn DIR] IMAGE... [--draw OUT.png] [--min-face 20] [--thresholds 0.6,0.7,0.7]\n"
    "                      [--factor 0.709] [--threads N]\n"
    "Prints {\"image\", \"width\", \"height\", \"faces\": [{\"box\": [x1,y1,x2,y2], \"prob\", \"landmarks\": [[x,y] x5]}]}\n"
    "per image (a JSON array when several images), faces highest probability first.\n"
    "  --mtcnn DIR  pnet/rnet/onet .pt or .safetensors, or det1-3.npy (default: $FACENET_MTCNN or\n"
    "               ../shared/weights/mtcnn/facenet-pytorch)\n"
    "  --draw OUT   boxes and landmarks drawn into OUT.png (OUT_<i>.png per image when several)\n";

io::json_value number_array(std::initializer_list<float> values) {
  io::json_value a = io::json_value::make_array();
  for (float v : values) a.push_back(io::json_value::make_number(v));
  return a;
}

io::json_value face_json(const detect::face& f) {
  io::json_value o = io::json_value::make_object();
  o.set("box", number_array({f.b.x1, f.b.y1, f.b.x2, f.b.y2}));
  o.set("prob", io::json_value::make_number(f.prob));
  io::json_value points = io::json_value::make_array();
  for (const auto& p : f.points) points.push_back(number_array({p[0], p[1]}));
  o.set("landmarks", std::move(points));
  return o;
}

std::string draw_path(const std::string& out, std::size_t i, std::size_t n) {
  if (n == 1) return out;
  const fs::path p(out);
  return (p.parent_path() / (p.stem().string() + "_" + std::to_string(i) + p.extension().string())).string();
}

}  // namespace

int run_detect(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, detect_help, {}, {"mtcnn", "draw", "min-face", "thresholds", "factor"});
  if (!a) return exit_ok;
  const auto& paths = a->positional();
  FACENET_CHECK(!paths.empty(), argument_error, "no IMAGE given (see --help)");
  for (const auto& p : paths) require_file(p, "image");
  detect::mtcnn detector = load_mtcnn(a->get("mtcnn"), mtcnn_options_from(*a));

  io::json_value all = io::json_value::make_array();
  progress_bar bar("detect", static_cast<long>(paths.size()));
  for (std::size_t i = 0; i < paths.size(); ++i) {
    data::image img = data::load_image(paths[i]);
    const auto faces = detector.detect(img);
    io::json_value o = io::json_value::make_object();
    o.set("image", io::json_value::make_string(paths[i]));
    o.set("width", io::json_value::make_int(img.width));
    o.set("height", io::json_value::make_int(img.height));
    io::json_value list = io::json_value::make_array();
    for (const auto& f : faces) list.push_back(face_json(f));
    o.set("faces", std::move(list));
    all.push_back(std::move(o));
    if (a->has("draw")) {
      draw_faces(img, faces);
      data::save_png(img, draw_path(a->get("draw"), i, paths.size()));
    }
    bar.update(static_cast<long>(i + 1));
  }
  bar.finish();
  const std::string text = io::to_json(paths.size() == 1 ? all.as_array("detections")[0] : all);
  std::printf("%s\n", text.c_str());
  return exit_ok;
}

}  // namespace facenet::cli
