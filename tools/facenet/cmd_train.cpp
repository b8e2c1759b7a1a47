// facenet train: triplet (or softmax) training of NN4-small2 / Inception-ResNet-v1 on a folder of
// faces through train::trainer, with checkpoints, --resume, a CSV log, plots and LFW-style checks.
#include <cstdio>
#include <string>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/eval/lfw.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/train/trainer.hpp"

namespace facenet::cli {

int run_train(int argc, char** argv, int first);

namespace {

const char* const train_help =
    "usage: facenet train --data DIR --out W.safetensors (--steps N | --epochs E) [options]\n"
    "Trains on DIR/<person>/<image> (aligned faces: LFW, ORL layouts; JPEG/PNG/PGM).\n"
    "  --people LIST        identities to train on (LFW people*.txt format); default all sub-folders\n"
    "  --arch A             nn4_small2 (default) | inception_resnet_v1\n"
    "  --init W             start from these weights instead of a seeded random init\n"
    "  --batch-people P     identities per batch (24);  --batch-images K  images per identity (4)\n"
    "  --extra-negatives N  single-image identities added to each batch as negatives (0)\n"
    "  --extra-views V      copies of each one's photo, augmented apart, so they are positives too (1)\n"
    "  --loss L             triplet (default) | softmax (classifier head over the training identities)\n"
    "  --dropout P          dropout before the embedding layer (nn4_small2: none, inception_resnet_v1: 0.6)\n"
    "  --mining M           batch-all (default) | semi-hard | batch-hard | random;  --alpha A  margin (0.2)\n"
    "  --optimizer O        adam (default) | sgd | nesterov | adagrad | rmsprop;  --momentum M (0.9)\n"
    "  --lr R               base learning rate (1e-3);  --weight-decay W (5e-4);  --clip N  gradient-norm clip\n"
    "  --schedule S         cosine (default) | constant | step | FILE (\"epoch: lr\" lines);  --warmup N steps\n"
    "  --seed S             seed of init, sampling, augmentation and mining (0)\n"
    "  --workers N          image decoding threads (2);  --threads N  compute threads\n"
    "  --checkpoint DIR     checkpoint, training_log.csv, loss.png, roc_step*.png go here\n"
    "  --checkpoint-every N steps between checkpoints (100);  --resume  continue from DIR's checkpoint\n"
    "  --eval-pairs P --eval-images DIR   LFW pairs file evaluated every --eval-every N steps and at the end\n"
    "  --eval-ext E         image extension of the --eval-images files (jpg; png for `facenet align --dataset` output)\n"
    "  --eval-flip M        none (default) | concat | sum: evaluate each image with its mirror image too\n"
    "  --crop PX            centred square of the source (in its pixels) resized to the network input, in training\n"
    "                       and evaluation (0 = the whole image; e.g. 128 for 250x250 deep-funneled LFW)\n"
    "  --standardize S      fixed (default) | prewhiten | prewhiten_np | unit | none\n"
    "  --rotation DEG --shift F --zoom F --brightness LO,HI   augmentation (30, 0.1, 0.2, 0.8,1.2);\n"
    "  --no-flip            no random mirroring;  --equalize  per-channel histogram equalization (training and eval)\n"
    "Exit codes: 2 bad arguments, 3 unreadable data / unwritable output, 7 NaN/Inf or collapse.\n";

// Defaults are the recipe (data::training_augmentation); each flag overrides one magnitude.
void set_augmentation(const args& a, data::augment_options& o) {
  o.crop_size = static_cast<int>(a.integer("crop", 0));
  o.rotation_deg = a.number("rotation", o.rotation_deg);
  o.shift = a.number("shift", o.shift);
  o.zoom = a.number("zoom", o.zoom);
  if (a.has("brightness")) {
    const auto b = a.numbers("brightness", 2);
    o.brightness_lo = b[0], o.brightness_hi = b[1];
  }
  o.flip = !a.has("no-flip");
  o.equalize = a.has("equalize");
  data::check_augment_options(o);
}

train::trainer_config config_from(const args& a) {
  train::trainer_config c;
  c.data_dir = a.get("data");
  require_file(c.data_dir, "--data directory");
  if (a.has("people")) c.people = data::read_people_list(a.get("people"));
  c.architecture = a.get("arch", c.architecture);
  set_augmentation(a, c.augment);
  c.init_weights = a.get("init");
  c.batch_people = static_cast<int>(a.integer("batch-people", c.batch_people));
  c.batch_images = static_cast<int>(a.integer("batch-images", c.batch_images));
  c.extra_negatives = static_cast<int>(a.integer("extra-negatives", c.extra_negatives));
  c.extra_views = static_cast<int>(a.integer("extra-views", c.extra_views));
  const std::string loss = a.get("loss", "triplet");
  FACENET_CHECK(loss == "triplet" || loss == "softmax", argument_error, "--loss must be triplet or softmax, not '" + loss + "'");
  c.loss = loss == "softmax" ? train::objective::softmax : train::objective::triplet;
  if (a.has("dropout")) {
    c.dropout = a.number("dropout", c.dropout);
    FACENET_CHECK(c.dropout >= 0 && c.dropout < 1, argument_error, "--dropout must be in [0, 1), not " + a.get("dropout"));
  }
  if (a.has("mining")) c.mining.strategy = loss::parse_mining_strategy(a.get("mining"));
  c.mining.alpha = a.number("alpha", c.mining.alpha);
  c.optimizer = a.get("optimizer", c.optimizer);
  c.momentum = a.number("momentum", c.momentum);
  c.lr = a.number("lr", c.lr);
  c.weight_decay = a.number("weight-decay", c.weight_decay);
  c.clip_norm = a.number("clip", c.clip_norm);
  c.schedule = a.get("schedule", c.schedule);
  c.warmup_steps = a.integer("warmup", 0);
  c.steps = a.integer("steps", 0);
  c.epochs = a.integer("epochs", 0);
  c.seed = static_cast<std::uint64_t>(a.integer("seed", 0));
  c.threads = static_cast<int>(a.integer("threads", 0));
  c.workers = static_cast<int>(a.integer("workers", c.workers));
  if (a.has("standardize")) c.standardize = data::parse_standardization(a.get("standardize"));
  c.checkpoint_dir = a.get("checkpoint");
  c.checkpoint_every = a.integer("checkpoint-every", c.checkpoint_every);
  c.resume = a.has("resume");
  FACENET_CHECK(a.has("eval-pairs") == a.has("eval-images"), argument_error, "--eval-pairs and --eval-images go together");
  if (a.has("eval-pairs")) {
    const eval::lfw_pairs pairs = eval::read_lfw_pairs(a.get("eval-pairs"));
    const eval::lfw_paths paths = eval::resolve_lfw_paths(a.get("eval-images"), pairs, a.get("eval-ext", "jpg"));
    FACENET_CHECK(!paths.same.empty(), io_error, "none of the --eval-pairs images exist under '" + a.get("eval-images") + "'");
    c.eval = {paths.paths, paths.same, pairs.folds, eval::parse_flip_mode(a.get("eval-flip", "none"))};
    c.eval_every = a.integer("eval-every", 0);
  }
  return c;
}

std::string command_line(int argc, char** argv, int first) {
  std::string s = "facenet train";
  for (int i = first; i < argc; ++i) s += std::string(" ") + argv[i];
  return s;
}

}  // namespace

int run_train(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, train_help, {"resume", "no-flip", "equalize"},
                               {"data", "people", "arch", "init", "out", "steps", "epochs", "batch-people", "batch-images",
                                "extra-negatives", "extra-views", "loss", "dropout", "mining", "alpha", "optimizer", "momentum", "lr", "weight-decay",
                                "clip", "schedule", "warmup", "seed", "workers", "standardize", "checkpoint",
                                "checkpoint-every", "eval-pairs", "eval-images", "eval-ext", "eval-every", "eval-flip", "crop",
                                "rotation", "shift", "zoom", "brightness"});
  if (!a) return exit_ok;
  FACENET_CHECK(a->has("data") && a->has("out"), argument_error, "--data DIR and --out W.safetensors are required (see --help)");
  train::trainer t(config_from(*a));
  std::fprintf(stderr, "training %s on %zu identities (%zu images), %lld steps of %d images%s\n",
               t.config().architecture.c_str(), t.dataset().size(), t.dataset().num_images(),
               static_cast<long long>(t.total_steps()), t.batch_size(),
               t.step() > 0 ? (", resuming at step " + std::to_string(t.step())).c_str() : "");
  std::fprintf(stderr, "augmentation: %s\n", data::describe(t.config().augment).c_str());
  progress_bar bar("train", static_cast<long>(t.total_steps()));
  const auto on_step = [&](const train::step_record& r) {
    char extra[160];
    std::snprintf(extra, sizeof extra, "epoch %lld loss %.4f active %.2f %.1f img/s%s", static_cast<long long>(r.epoch), r.loss,
                  r.active_fraction, r.images_per_second, r.collapsed ? " COLLAPSED" : "");
    bar.update(static_cast<long>(r.step + 1), extra);
  };
  const auto on_eval = [&](const train::eval_record& r) {
    bar.finish();
    std::fprintf(stderr, "step %lld: accuracy %.4f VAL %.4f AUC %.4f EER %.4f\n", static_cast<long long>(r.step), r.accuracy,
                 r.val, r.auc, r.eer);
  };
  t.run(on_step, on_eval);
  bar.finish();
  io::save_safetensors(a->get("out"), t.export_weights(command_line(argc, argv, first)));
  const auto& steps = t.log().steps();
  std::fprintf(stderr, "wrote %s after %lld steps (last loss %.4f)\n", a->get("out").c_str(), static_cast<long long>(t.step()),
               steps.empty() ? 0.0 : steps.back().loss);
  return exit_ok;
}

}  // namespace facenet::cli
