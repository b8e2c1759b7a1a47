// facenet verify: are the faces in two images the same person?
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"

namespace facenet::cli {
namespace {

const std::string verify_help = std::string(
    "usage: facenet verify --weights W IMG1 IMG2 [--threshold 1.1]\n"
    "Prints the Euclidean distance of the two (L2-normalised) embeddings, the threshold and the verdict\n"
    "(same if distance <= threshold). Exit code 0 either way.\n"
    "  --threshold T    decision threshold (default: the weights file's \"threshold\" metadata, else 1.1,\n"
    "                   facenet-pytorch's VGGFace2 operating point)\n") + embedding_help;

}  // namespace

int run_verify(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, verify_help.c_str(), {"no-detect"}, embedding_options({"threshold"}));
  if (!a) return exit_ok;
  FACENET_CHECK(a->positional().size() == 2, argument_error, "expected exactly two images IMG1 IMG2 (see --help)");
  face_embedder fe(*a, false);
  const double threshold = a->number("threshold", fe.model().threshold);
  const Tensor<float> e = fe.embed_files(a->positional());
  const double d = distance(e, 0, 1);
  std::printf("distance %.4f\nthreshold %.4f\n%s\n", d, threshold, d <= threshold ? "same" : "different");
  return exit_ok;
}

}  // namespace facenet::cli
