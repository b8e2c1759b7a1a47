// facenet embed: one embedding per image (largest face), written as .npy or .csv in input order.
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/io/npy.hpp"

namespace facenet::cli {
namespace {

const std::string embed_help = std::string(
    "usage: facenet embed --weights W IMAGE... [--no-detect] [--output emb.npy|emb.csv]\n"
    "       facenet embed --weights W --input-npy X.npy [--output emb.npy|emb.csv]\n"
    "Embeds the largest face of each image (or each image as is with --no-detect). Without --output\n"
    "the embeddings are printed as CSV on stdout.\n"
    "  --input-npy X    N x 3 x S x S float32, already standardized, fed to the network unchanged\n"
    "  --output F       .npy (N x D float32) or .csv, rows in input order\n") + embedding_help;

Tensor<float> read_input_npy(const std::string& path) {
  require_file(path, "--input-npy file");
  const io::tensor_map m = io::load_npy(path);
  FACENET_CHECK(m.size() == 1, format_error, path + ": expected one array, found " + std::to_string(m.size()));
  Tensor<float> x = m.entries()[0].value;
  FACENET_CHECK(x.rank() == 4 && x.size(1) == 3, shape_error, path + ": expected N x 3 x S x S, got " + x.shape().str());
  if (x.is_contiguous()) return x;
  Tensor<float> packed(x.shape());
  packed.copy_from(x);
  return packed;
}

bool npy_output(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  FACENET_CHECK(ext == ".npy" || ext == ".csv", argument_error, "--output must end in .npy or .csv, not '" + path + "'");
  return ext == ".npy";
}

}  // namespace

int run_embed(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, embed_help.c_str(), {"no-detect"}, embedding_options({"output", "input-npy"}));
  if (!a) return exit_ok;
  const bool from_npy = a->has("input-npy");
  FACENET_CHECK(from_npy != !a->positional().empty(), argument_error, "give either IMAGE... or --input-npy X.npy (see --help)");
  if (a->has("output")) npy_output(a->get("output"));  // a bad name fails before the slow part
  face_embedder fe(*a, false, "method", !from_npy);
  const Tensor<float> e = from_npy ? fe.embed_tensor(read_input_npy(a->get("input-npy"))) : fe.embed_files(a->positional());
  if (a->has("output")) {
    npy_output(a->get("output")) ? save_npy_2d(a->get("output"), e) : save_csv_2d(a->get("output"), e);
    std::fprintf(stderr, "wrote %lld x %lld embeddings (%s) to %s\n", static_cast<long long>(e.size(0)),
                 static_cast<long long>(e.size(1)), fe.model().arch.c_str(), a->get("output").c_str());
  } else {
    for (std::int64_t i = 0; i < e.size(0); ++i)
      for (std::int64_t k = 0; k < e.size(1); ++k)
        std::printf("%.9g%c", static_cast<double>(e.data()[i * e.size(1) + k]), k + 1 < e.size(1) ? ',' : '\n');
  }
  return exit_ok;
}

}  // namespace facenet::cli
