// facenet eval-lfw: the LFW verification protocol (k-fold accuracy, VAL@FAR, AUC, EER) of a model,
// through the library's evaluator (eval/lfw.hpp).
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/eval/lfw.hpp"
#include "facenet/train/trainer.hpp"

namespace facenet::cli {
namespace {

const std::string eval_lfw_help = std::string(
    "usage: facenet eval-lfw --weights W --images DIR --pairs pairs.txt [--folds 10] [--far 1e-3]\n"
    "                        [--ext jpg] [--json] [--no-detect [--crop PX]] [--flip none|concat|sum]\n"
    "                        [--distance squared-l2|cosine] [...]\n"
    "DIR/<name>/<name>_<NNNN>.<ext> as in LFW (--lfw DIR is accepted too); pairs.txt in LFW's pairs format (View 2, or a View 1\n"
    "pairsDevTrain/DevTest file). Faces are detected and aligned unless --no-detect. Pairs with a missing\n"
    "image are skipped and counted. --json prints accuracy, accuracy_std, val, val_std, far, auc, eer,\n"
    "threshold.\n"
    "  --crop PX        with --no-detect: the centred PX x PX square of each image, warped to the input\n"
    "                   size as `facenet train --crop PX` does (the trainer's --eval-pairs numbers)\n"
    "  --flip M         also embed each face mirrored and combine the two: concat (validate_on_lfw's\n"
    "                   use_flipped_images) or sum, rescaled to unit length (default none)\n"
    "  --distance D     squared-l2 (default) or cosine (arccos of the cosine similarity, / pi)\n") + embedding_help;

}  // namespace

int run_eval_lfw(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, eval_lfw_help.c_str(), {"no-detect", "json"},
                               embedding_options({"images", "lfw", "pairs", "folds", "far", "ext", "crop", "flip", "distance"}));
  if (!a) return exit_ok;
  FACENET_CHECK(a->has("images") != a->has("lfw"), argument_error, "give the LFW image directory once: --images DIR (or --lfw DIR)");
  FACENET_CHECK(a->has("pairs"), argument_error, "--pairs FILE is required (see --help)");
  const std::string images = a->has("images") ? a->get("images") : a->get("lfw");
  require_file(a->get("pairs"), "pairs file");
  require_file(images, "LFW directory");
  eval::lfw_options opt;
  opt.folds = static_cast<int>(a->integer("folds", opt.folds));
  opt.far_target = a->number("far", opt.far_target);
  opt.metric = eval::parse_distance_metric(a->get("distance", "squared-l2"));
  const eval::flip_mode flip = eval::parse_flip_mode(a->get("flip", "none"));
  const eval::lfw_pairs pairs = eval::read_lfw_pairs(a->get("pairs"), opt.folds);
  opt.folds = pairs.folds;  // a View 2 file names its own fold count
  const eval::lfw_paths paths = eval::resolve_lfw_paths(images, pairs, a->get("ext", "jpg"));
  FACENET_CHECK(!paths.same.empty(), io_error, "none of the pairs' images exist under '" + images + "'");
  FACENET_CHECK(!a->has("crop") || a->has("no-detect"), argument_error,
                "--crop takes the centred square of images that are already aligned: give --no-detect too");
  face_embedder fe(*a, false);
  eval::lfw_metrics m;
  if (a->has("crop")) {
    const std::int64_t crop = a->integer("crop", 0);
    FACENET_CHECK(crop > 0, argument_error, "--crop must be a positive number of pixels, got " + a->get("crop"));
    data::loader_options lo;
    lo.augment.out_size = fe.input_size();
    lo.augment.crop_size = static_cast<int>(crop);
    lo.standardize = fe.standardization();
    m = train::evaluate_verification(fe.net(), train::verification_set{paths.paths, paths.same, opt.folds, flip}, lo, opt);
  } else {
    const std::vector<data::image> faces = fe.faces_of(paths.paths, "eval-lfw");
    Tensor<float> e = fe.embed_faces(faces);
    if (flip != eval::flip_mode::none) {
      std::vector<data::image> mirrored;
      for (const data::image& f : faces) mirrored.push_back(data::flip_horizontal(f));
      e = eval::combine_flipped(e, fe.embed_faces(mirrored), flip, true);
    }
    m = eval::evaluate_lfw(e, paths.same, opt);
  }
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
