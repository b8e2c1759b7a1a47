// facenet identify: nearest gallery identity for each image, "unknown" beyond the threshold.
#include <cstdio>
#include <limits>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/data/dataset.hpp"

namespace facenet::cli {
namespace {

const std::string identify_help = std::string(
    "usage: facenet identify --weights W --gallery DIR IMAGE... [--threshold 1.1]\n"
    "DIR holds one folder per person with one or more images. Each IMAGE's face is matched to the\n"
    "gallery face nearest to it; prints `IMAGE<TAB>NAME<TAB>distance`, NAME \"unknown\" when the\n"
    "nearest distance is over the threshold.\n"
    "  --threshold T    decision threshold (default: the weights file's \"threshold\" metadata, else 1.1)\n") + embedding_help;

}  // namespace

int run_identify(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, identify_help.c_str(), {"no-detect"}, embedding_options({"gallery", "threshold"}));
  if (!a) return exit_ok;
  FACENET_CHECK(a->has("gallery"), argument_error, "--gallery DIR is required (see --help)");
  FACENET_CHECK(!a->positional().empty(), argument_error, "no IMAGE given (see --help)");
  const auto gallery = data::face_dataset::from_folder(a->get("gallery"));
  std::vector<std::string> paths;
  std::vector<std::string> owner;
  for (const auto& id : gallery.identities())
    for (const auto& p : id.images) paths.push_back(p), owner.push_back(id.name);
  FACENET_CHECK(!paths.empty(), io_error, "gallery '" + a->get("gallery") + "' has no person folder with images");
  const auto& queries = a->positional();
  paths.insert(paths.end(), queries.begin(), queries.end());

  face_embedder fe(*a, false);
  const double threshold = a->number("threshold", fe.model().threshold);
  const Tensor<float> e = fe.embed_files(paths, "identify");
  const std::int64_t n_gallery = static_cast<std::int64_t>(owner.size());
  for (std::size_t q = 0; q < queries.size(); ++q) {
    double best = std::numeric_limits<double>::infinity();
    std::int64_t best_i = 0;
    for (std::int64_t g = 0; g < n_gallery; ++g) {
      const double d = distance(e, n_gallery + static_cast<std::int64_t>(q), g);
      if (d < best) best = d, best_i = g;
    }
    std::printf("%s\t%s\t%.4f\n", queries[q].c_str(), best <= threshold ? owner[best_i].c_str() : "unknown", best);
  }
  return exit_ok;
}

}  // namespace facenet::cli
