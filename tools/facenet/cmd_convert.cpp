// facenet convert: published weights -> facenet's safetensors file, through the library's conversion
// driver (io/convert.hpp); --verify reloads the written file into its network and runs a fixed input.
#include <cmath>
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/io/safetensors.hpp"

namespace facenet::cli {
namespace {

const char* convert_help =
    "usage: facenet convert SRC DST.safetensors [--format auto|pytorch|npy|npz|safetensors|tf-checkpoint|tf-frozen|\n"
    "                       torch7|openface-csv] [--arch NAME] [--dtype F32|F16|BF16] [--strict] [--verify]\n"
    "                       [--metadata KEY=VALUE]...\n"
    "Prints the tensors converted and any missing / mis-shaped / unused names; nothing is written and the\n"
    "exit code is non-zero when SRC does not fit the architecture.\n"
    "  SRC       a file, a TF checkpoint prefix (or its .index), or a directory of OpenFace CSVs\n"
    "  --arch    mtcnn_pnet|mtcnn_rnet|mtcnn_onet|inception_resnet_v1[:classes]|nn4_small2 (default: guessed)\n"
    "  --strict  fail when SRC holds tensors the architecture does not use\n"
    "  --verify  load DST into its network, run a fixed input, print the output norm and a checksum\n"
    "  --metadata KEY=VALUE  set (or replace) a __metadata__ entry of DST (repeatable), e.g. threshold=0.95\n"
    "            (the distance verify/identify/demo use) or align_template=\"x1 y1 ... x5 y5\" (where the 5 landmarks\n"
    "            sat in the training crops, unit coordinates: faces are then warped onto it)\n";

// A fixed, smooth input every build reproduces: values in [-1, 1] from a sine of the flat index.
Tensor<float> fixed_input(std::int64_t size) {
  Tensor<float> x({1, 3, size, size});
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(std::sin(0.01 * static_cast<double>(i)));
  return x;
}

void print_check(const char* what, const Tensor<float>& y) {
  double norm = 0, sum = 0;
  for (float v : y) norm += static_cast<double>(v) * v, sum += v;
  FACENET_CHECK(std::isfinite(norm), numeric_error, std::string("verify: the ") + what + " output is not finite");
  std::printf("verify: %s %s norm %.6f checksum %.6f\n", what, y.shape().str().c_str(), std::sqrt(norm), sum);
}

// KEY=VALUE pairs into m's metadata; `threshold` must be a positive number (the tools read it).
void set_metadata(io::tensor_map& m, const std::vector<std::string>& pairs) {
  for (const std::string& kv : pairs) {
    const auto eq = kv.find('=');
    FACENET_CHECK(eq != std::string::npos && eq > 0, argument_error, "--metadata expects KEY=VALUE, got '" + kv + "'");
    m.metadata[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  const auto at = m.metadata.find("align_template");
  FACENET_CHECK(at == m.metadata.end() || parse_align_template(at->second), argument_error,
                "--metadata align_template must be 10 numbers (x y of 5 landmarks in unit coordinates), not '" +
                    (at == m.metadata.end() ? "" : at->second) + "'");
  const auto t = m.metadata.find("threshold");
  FACENET_CHECK(t == m.metadata.end() || parse_threshold(t->second), argument_error,
                "--metadata threshold must be a positive number, not '" + (t == m.metadata.end() ? "" : t->second) + "'");
}

void verify(const std::string& dst, const std::string& arch) {
  if (arch.compare(0, 6, "mtcnn_") == 0) {
    const io::tensor_map w = io::load_safetensors(dst);
    Tensor<float> reg, prob, points;
    if (arch == "mtcnn_pnet") models::mtcnn_pnet(w).forward(fixed_input(12), reg, prob);
    if (arch == "mtcnn_rnet") models::mtcnn_rnet(w).forward(fixed_input(24), reg, prob);
    if (arch == "mtcnn_onet") models::mtcnn_onet(w).forward(fixed_input(48), reg, points, prob);
    print_check("probability", prob);
    print_check("box regression", reg);
    return;
  }
  loaded_model m = load_model(dst, arch);
  Tensor<float> y;
  m.net->forward(fixed_input(m.net->info().input_size), y, false);
  print_check(("embedding (" + m.arch + ")").c_str(), y);
}

}  // namespace

int run_convert(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, convert_help, {"strict", "verify"}, {"format", "arch", "dtype", "metadata"});
  if (!a) return exit_ok;
  FACENET_CHECK(a->positional().size() == 2, argument_error, "expected SRC and DST (see --help)");
  const std::string src = a->positional()[0], dst = a->positional()[1];
  FACENET_CHECK(fs::exists(src) || fs::exists(src + ".index"), io_error, "source '" + src + "' does not exist");
  io::convert_options opt;
  opt.format = io::parse_weight_format(a->get("format", "auto"));
  opt.arch = a->get("arch");
  if (!opt.arch.empty()) io::find_architecture(opt.arch);  // a typo fails before reading
  opt.dtype = a->get("dtype", "F32");
  FACENET_CHECK(opt.dtype == "F32" || opt.dtype == "F16" || opt.dtype == "BF16", argument_error,
                "--dtype must be F32, F16 or BF16, not " + opt.dtype);
  opt.allow_unused = !a->has("strict");

  io::conversion_report report;
  io::tensor_map out = io::prepare_conversion(src, opt, report);
  set_metadata(out, a->all("metadata"));
  std::fputs(io::format_report(report).c_str(), stdout);
  FACENET_CHECK(report.ok(), format_error, src + " does not fit " + report.arch + ": " + report.problems());
  FACENET_CHECK(opt.allow_unused || report.unused.empty(), format_error,
                std::to_string(report.unused.size()) + " tensors of " + src + " are not used by " + report.arch + " (--strict)");
  io::save_safetensors(dst, out, opt.dtype);
  std::printf("wrote %s (%s)\n", dst.c_str(), opt.dtype.c_str());
  if (a->has("verify")) verify(dst, report.arch.substr(0, report.arch.find(':')));
  return exit_ok;
}

}  // namespace facenet::cli
