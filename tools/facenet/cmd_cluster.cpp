// facenet cluster: group the faces of a folder (or a list of images, or precomputed embeddings) by
// identity with Chinese Whispers or DBSCAN; JSON on stdout, optionally one folder per cluster.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/eval/cluster.hpp"
#include "facenet/io/json.hpp"
#include "facenet/io/npy.hpp"

namespace facenet::cli {
namespace {

const std::string cluster_help = std::string(
    "usage: facenet cluster [--weights W] [--method chinese-whispers|dbscan] [--threshold T]\n"
    "                       [--eps E --min-samples M] [--no-detect] [--out DIR] FOLDER|IMAGE...\n"
    "       facenet cluster --embeddings E.npy [--names LIST | IMAGE...] [options]\n"
    "Embeds the largest face of every image (folders are searched recursively) and groups the faces\n"
    "by identity. Prints JSON: {\"clusters\": [[image, ...], ...] largest first, \"noise\": [...]\n"
    "(DBSCAN), \"no_face\": [...] (images skipped because no face was found)}. Distances are the\n"
    "Euclidean distances `verify` prints; faces closer than the threshold count as the same person.\n"
    "  --method M       chinese-whispers (default; dlib's algorithm) | dbscan\n"
    "  --threshold T    chinese-whispers edge threshold (default: the weights' threshold, as verify)\n"
    "  --iterations I   chinese-whispers passes over the faces (default 100)\n"
    "  --seed S         chinese-whispers random seed (default 0; results are reproducible)\n"
    "  --eps E          dbscan neighbourhood radius (default: as --threshold)\n"
    "  --min-samples M  dbscan: faces within eps (itself included) that make a core face (default 3)\n"
    "  --out DIR        also copy the images into DIR/cluster_<k>/ (k = 0 is the largest) and\n"
    "                   DIR/noise/; DIR must be empty or absent\n"
    "  --symlink        with --out: symlink instead of copying\n"
    "  --embeddings E   N x D float32 .npy (e.g. from `facenet embed --output`) instead of images;\n"
    "                   rows are named by the IMAGE arguments, by --names LIST (one per line) or\n"
    "                   by their row number\n") +
    embedding_help_for("align");

enum class cluster_method { chinese_whispers, dbscan };

cluster_method parse_cluster_method(const std::string& s) {
  if (s == "chinese-whispers") return cluster_method::chinese_whispers;
  if (s == "dbscan") return cluster_method::dbscan;
  throw argument_error("--method must be chinese-whispers or dbscan, not '" + s + "'");
}

// What to cluster: one embedding row per name (an image path, or a label for --embeddings rows).
struct cluster_input {
  Tensor<float> embeddings;
  std::vector<std::string> names;
  std::vector<std::string> faceless;
  double threshold = 1.1;  // default --threshold / --eps: the weights' operating point when images are embedded
};

std::vector<std::string> image_paths(const std::vector<std::string>& args) {
  std::vector<std::string> paths;
  for (const auto& p : args) {
    require_file(p, "input");
    if (fs::is_directory(p)) {
      const auto found = images_in(p);
      FACENET_CHECK(!found.empty(), io_error, "folder '" + p + "' holds no image");
      paths.insert(paths.end(), found.begin(), found.end());
    } else {
      paths.push_back(p);
    }
  }
  return paths;
}

std::vector<std::string> read_lines(const std::string& path) {
  require_file(path, "--names file");
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(line);
  return lines;
}

cluster_input from_embeddings(const args& a) {
  const std::string path = a.get("embeddings");
  require_file(path, "--embeddings file");
  const io::tensor_map m = io::load_npy(path);
  FACENET_CHECK(m.size() == 1, format_error, path + ": expected one array, found " + std::to_string(m.size()));
  cluster_input in;
  in.embeddings = m.entries()[0].value;
  FACENET_CHECK(in.embeddings.rank() == 2, shape_error, path + ": expected N x D embeddings, got " + in.embeddings.shape().str());
  FACENET_CHECK(!(a.has("names") && !a.positional().empty()), argument_error, "give --names LIST or IMAGE..., not both");
  in.names = a.has("names") ? read_lines(a.get("names")) : a.positional();
  const auto n = static_cast<std::size_t>(in.embeddings.size(0));
  if (in.names.empty())
    for (std::size_t i = 0; i < n; ++i) in.names.push_back(std::to_string(i));
  FACENET_CHECK(in.names.size() == n, argument_error,
                path + " has " + std::to_string(n) + " rows but " + std::to_string(in.names.size()) + " names were given");
  return in;
}

cluster_input from_images(const args& a) {
  FACENET_CHECK(!a.positional().empty(), argument_error, "no FOLDER or IMAGE given (see --help)");
  const std::vector<std::string> paths = image_paths(a.positional());
  face_embedder fe(a, false, "align");
  cluster_input in;
  const std::vector<data::image> faces = fe.faces_of(paths, "cluster", &in.faceless);
  if (faces.empty()) throw no_face_error("no face found in any of the " + std::to_string(paths.size()) + " images");
  for (const auto& f : in.faceless) std::fprintf(stderr, "facenet cluster: no face found in '%s', skipped\n", f.c_str());
  for (const auto& p : paths)
    if (std::find(in.faceless.begin(), in.faceless.end(), p) == in.faceless.end()) in.names.push_back(p);
  in.embeddings = fe.embed_faces(faces);
  in.threshold = fe.model().threshold;
  return in;
}

eval::clustering run_clustering(const Tensor<float>& e, cluster_method method, const args& a, double threshold = 1.1) {
  if (method == cluster_method::chinese_whispers) {
    eval::chinese_whispers_options o;
    o.threshold = a.number("threshold", threshold);
    o.iterations = a.integer("iterations", o.iterations);
    o.seed = static_cast<std::uint64_t>(a.integer("seed", 0));
    return eval::chinese_whispers(e, o);
  }
  eval::dbscan_options o;
  o.eps = a.number("eps", threshold);
  o.min_samples = a.integer("min-samples", o.min_samples);
  return eval::dbscan(e, o);
}

io::json_value name_list(const std::vector<std::string>& names, const std::vector<std::int64_t>& rows) {
  io::json_value list = io::json_value::make_array();
  for (std::int64_t r : rows) list.push_back(io::json_value::make_string(names[static_cast<std::size_t>(r)]));
  return list;
}

io::json_value result_json(const eval::clustering& c, const cluster_input& in, cluster_method method) {
  io::json_value o = io::json_value::make_object();
  o.set("method", io::json_value::make_string(method == cluster_method::dbscan ? "dbscan" : "chinese-whispers"));
  io::json_value clusters = io::json_value::make_array();
  for (const auto& rows : c.clusters) clusters.push_back(name_list(in.names, rows));
  o.set("clusters", std::move(clusters));
  o.set("noise", name_list(in.names, c.noise));
  io::json_value faceless = io::json_value::make_array();
  for (const auto& f : in.faceless) faceless.push_back(io::json_value::make_string(f));
  o.set("no_face", std::move(faceless));
  return o;
}

void check_out_dir(const std::string& dir) {
  FACENET_CHECK(!fs::exists(dir) || (fs::is_directory(dir) && fs::is_empty(dir)), argument_error,
                "--out: '" + dir + "' exists and is not an empty folder");
}

// DIR/cluster_<k>/ and DIR/noise/; a file name met twice in one folder gets its row as a prefix.
void write_folders(const std::string& dir, const eval::clustering& c, const std::vector<std::string>& names, bool symlink) {
  for (const auto& n : names) FACENET_CHECK(fs::is_regular_file(n), io_error, "--out: '" + n + "' is not an image file");
  const auto place = [&](const fs::path& folder, std::int64_t row) {
    fs::create_directories(folder);
    const fs::path src = names[static_cast<std::size_t>(row)];
    fs::path dst = folder / src.filename();
    if (fs::exists(dst)) dst = folder / (std::to_string(row) + "_" + src.filename().string());
    if (symlink) fs::create_symlink(fs::absolute(src), dst);
    else fs::copy_file(src, dst);
  };
  for (std::size_t k = 0; k < c.clusters.size(); ++k)
    for (std::int64_t row : c.clusters[k]) place(fs::path(dir) / ("cluster_" + std::to_string(k)), row);
  for (std::int64_t row : c.noise) place(fs::path(dir) / "noise", row);
}

}  // namespace

int run_cluster(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, cluster_help.c_str(), {"no-detect", "symlink"},
                               embedding_options({"method", "threshold", "iterations", "seed", "eps", "min-samples", "out",
                                                  "embeddings", "names"},
                                                 "align"));
  if (!a) return exit_ok;
  const cluster_method method = parse_cluster_method(a->get("method", "chinese-whispers"));
  FACENET_CHECK(!a->has("symlink") || a->has("out"), argument_error, "--symlink needs --out DIR");
  // Bad thresholds fail here, not after minutes of embedding: the library validates them on no rows.
  run_clustering(Tensor<float>({0, 1}), method, *a);
  if (a->has("out")) check_out_dir(a->get("out"));
  const cluster_input in = a->has("embeddings") ? from_embeddings(*a) : from_images(*a);
  const eval::clustering c = run_clustering(in.embeddings, method, *a, in.threshold);
  if (a->has("out")) write_folders(a->get("out"), c, in.names, a->has("symlink"));
  std::printf("%s\n", io::to_json(result_json(c, in, method)).c_str());
  return exit_ok;
}

}  // namespace facenet::cli
