// facenet eval-lfw: the LFW verification protocol (k-fold accuracy, VAL@FAR, AUC, EER) of a model,
// through the library's evaluator (eval/lfw.hpp).
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/eval/lfw.hpp"

namespace facenet::cli {
namespace {

const std::string eval_lfw_help = std::string(
    "usage: facenet eval-lfw --weights W --images DIR --pairs pairs.txt [--folds 10] [--far 1e-3]\n"
    "                        [--ext jpg] [--json] [--no-detect] [...]\n"
    "DIR/<name>/<name>_<NNNN>.<ext> as in LFW (--lfw DIR is accepted too); pairs.txt in LFW's pairs format (View 2, or a View 1\n"
    "pairsDevTrain/DevTest file). Faces are detected and aligned unless --no-detect. Pairs with a missing\n"
    "image are skipped and counted. --json prints accuracy, accuracy_std, val, val_std, far, auc, eer,\n"
    "threshold.\n") + embedding_help;

}  // namespace

int run_eval_lfw(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, eval_lfw_help.c_str(), {"no-detect", "json"},
                               embedding_options({"images", "lfw", "pairs", "folds", "far", "ext"}));
  if (!a) return exit_ok;
  FACENET_CHECK(a->has("images") != a->has("lfw"), argument_error, "give the LFW image directory once: --images DIR (or --lfw DIR)");
  FACENET_CHECK(a->has("pairs"), argument_error, "--pairs FILE is required (see --help)");
  const std::string images = a->has("images") ? a->get("images") : a->get("lfw");
  require_file(a->get("pairs"), "pairs file");
  require_file(images, "LFW directory");
  eval::lfw_options opt;
  opt.folds = static_cast<int>(a->integer("folds", opt.folds));
  opt.far_target = a->number("far", opt.far_target);
  const eval::lfw_pairs pairs = eval::read_lfw_pairs(a->get("pairs"), opt.folds);
  opt.folds = pairs.folds;  // a View 2 file names its own fold count
  const eval::lfw_paths paths = eval::resolve_lfw_paths(images, pairs, a->get("ext", "jpg"));
  FACENET_CHECK(!paths.same.empty(), io_error, "none of the pairs' images exist under '" + images + "'");
  face_embedder fe(*a, false);
  const Tensor<float> e = fe.embed_files(paths.paths, "eval-lfw");
  const eval::lfw_metrics m = eval::evaluate_lfw(e, paths.same, opt);
  if (a->has("json")) {
    std::printf("%s\n", eval::to_json(m).c_str());
  } else {
    std::printf("pairs %zu (%zu skipped), %d folds, %s\n", paths.same.size(), paths.skipped, opt.folds, fe.model().arch.c_str());
    std::printf("accuracy %.4f +- %.4f\nVAL %.4f +- %.4f @ FAR %.5f\nAUC %.4f\nEER %.4f\nthreshold %.4f\n", m.accuracy,
                m.accuracy_std, m.val, m.val_std, m.far, m.auc, m.eer, m.threshold);
  }
  return exit_ok;
}

}  // namespace facenet::cli
