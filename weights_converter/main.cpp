// facenet_convert: published FaceNet-family weights -> the library's safetensors file.
//   facenet_convert SRC DST.safetensors [--format auto|pytorch|npy|npz|safetensors|tf-checkpoint|tf-frozen|
//                                                 torch7|openface-csv] [--arch NAME]
//                   [--dtype F32|F16|BF16] [--strict]
// Prints the tensors converted and any missing / mis-shaped / unused names; exits 1 when the source
// does not fit the architecture (nothing is written), 2 on usage errors.
#include <cstdio>
#include <string>
#include <vector>

#include "facenet/io/convert.hpp"

namespace {

void usage(std::FILE* out) {
  std::fprintf(out,
               "usage: facenet_convert SRC DST.safetensors\n"
               "         [--format auto|pytorch|npy|npz|safetensors|tf-checkpoint|tf-frozen|torch7|openface-csv]\n"
               "         [--arch mtcnn_pnet|mtcnn_rnet|mtcnn_onet|inception_resnet_v1[:classes]|nn4_small2]\n"
               "         [--dtype F32|F16|BF16] [--strict]\n"
               "  SRC       a file, a TF checkpoint prefix (or its .index), or a directory of OpenFace CSVs\n"
               "  --strict  fail when the source holds tensors the architecture does not use\n");
}

}  // namespace

int main(int argc, char** argv) {
  using namespace facenet::io;
  std::vector<std::string> positional;
  convert_options opt;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw facenet::argument_error("option " + a + " needs a value");
        return argv[++i];
      };
      if (a == "-h" || a == "--help") {
        usage(stdout);
        return 0;
      } else if (a == "--format") {
        opt.format = parse_weight_format(value());
      } else if (a == "--arch") {
        opt.arch = value();
        find_architecture(opt.arch);  // validate early
      } else if (a == "--dtype") {
        opt.dtype = value();
        if (opt.dtype != "F32" && opt.dtype != "F16" && opt.dtype != "BF16")
          throw facenet::argument_error("--dtype must be F32, F16 or BF16, not " + opt.dtype);
      } else if (a == "--strict") {
        opt.allow_unused = false;
      } else if (!a.empty() && a[0] == '-') {
        throw facenet::argument_error("unknown option " + a);
      } else {
        positional.push_back(a);
      }
    }
    if (positional.size() != 2) throw facenet::argument_error("expected SRC and DST");
  } catch (const facenet::error& e) {
    std::fprintf(stderr, "facenet_convert: %s\n", e.what());
    usage(stderr);
    return 2;
  }
  try {
    conversion_report report;
    const tensor_map out = prepare_conversion(positional[0], opt, report);
    std::fputs(format_report(report).c_str(), stdout);
    if (!report.ok()) {
      std::fprintf(stderr, "facenet_convert: %s does not fit %s: %s\n", positional[0].c_str(), report.arch.c_str(),
                   report.problems().c_str());
      return 1;
    }
    if (!opt.allow_unused && !report.unused.empty()) {
      std::fprintf(stderr, "facenet_convert: %zu unused tensors (--strict)\n", report.unused.size());
      return 1;
    }
    save_safetensors(positional[1], out, opt.dtype);
    std::printf("wrote %s (%s)\n", positional[1].c_str(), opt.dtype.c_str());
    return 0;
  } catch (const facenet::error& e) {
    std::fprintf(stderr, "facenet_convert: %s\n", e.what());
    return 1;
  }
}
