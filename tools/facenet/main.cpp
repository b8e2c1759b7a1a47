// facenet: detection, alignment, embedding, verification, identification, clustering, training and
// conversion of FaceNet models from the command line.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "commands.hpp"
#include "exit_codes.hpp"
#include "facenet/core/error.hpp"

namespace {

const facenet::cli::command commands[] = {
    {"demo", "run the whole pipeline on some images (detect, align, draw, embed, compare)", facenet::cli::run_demo},
    {"detect", "find faces (MTCNN) and print boxes, probabilities and landmarks as JSON", facenet::cli::run_detect},
    {"align", "crop or warp detected faces to aligned squares", facenet::cli::run_align},
    {"embed", "compute face embeddings (.npy or .csv)", facenet::cli::run_embed},
    {"verify", "are two images the same person?", facenet::cli::run_verify},
    {"identify", "match faces against a gallery (folder per person)", facenet::cli::run_identify},
    {"cluster", "group the faces of a folder by identity (Chinese Whispers, DBSCAN)", facenet::cli::run_cluster},
    {"convert", "convert published weights to facenet's safetensors file", facenet::cli::run_convert},
    {"train", "train NN4-small2 or Inception-ResNet-v1 with triplet loss", facenet::cli::run_train},
    {"eval-lfw", "LFW verification protocol (10-fold accuracy, VAL@FAR, AUC, EER)", facenet::cli::run_eval_lfw},
    {"bench", "time a model's forward (and training step)", facenet::cli::run_bench},
};

void print_usage() {
  std::printf("usage: facenet COMMAND [options]   (facenet COMMAND --help for details)\n\ncommands:\n");
  for (const auto& c : commands) std::printf("  %-9s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage();
    return argc < 2 ? facenet::cli::exit_usage : 0;
  }
  for (const auto& c : commands) {
    if (std::string(argv[1]) != c.name) continue;
    try {
      return c.run(argc, argv, 2);
    } catch (const facenet::error& e) {
      std::fprintf(stderr, "facenet %s: %s\n", c.name, e.what());
      return facenet::cli::exit_code_for(e.kind());
    } catch (const facenet::cli::no_face_error& e) {
      std::fprintf(stderr, "facenet %s: %s\n", c.name, e.what());
      return facenet::cli::exit_no_face;
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "facenet %s: out of memory\n", c.name);
      return facenet::cli::exit_failure;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "facenet %s: %s\n", c.name, e.what());
      return facenet::cli::exit_failure;
    }
  }
  std::fprintf(stderr, "facenet: unknown command '%s'\n", argv[1]);
  print_usage();
  return facenet::cli::exit_usage;
}
