// The training loop: P x K batches decoded on worker threads -> model forward (train mode, L2
// normalized embeddings) -> online mining + triplet loss (or a softmax classifier head) -> backward
// -> finite check -> clip -> optimizer step; durable checkpoints with bit-exact resume, NaN/Inf and
// collapse stops, a CSV log, loss/ROC plots and periodic verification on held-out pairs.
//
// Reproducibility: batch b is a pure function of (seed, b), the mining RNG is saved with the
// weights and optimizer state, and the kernels are deterministic for a fixed thread count, so a run
// resumed from a checkpoint reproduces the uninterrupted run's losses bit for bit.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/data/augment.hpp"
#include "facenet/data/dataset.hpp"
#include "facenet/data/loader.hpp"
#include "facenet/data/sampler.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/eval/lfw.hpp"
#include "facenet/io/safetensors.hpp"
#include "facenet/layers/linear.hpp"
#include "facenet/loss/mining.hpp"
#include "facenet/loss/softmax_cross_entropy.hpp"
#include "facenet/loss/triplet.hpp"
#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/nn4_small2.hpp"
#include "facenet/optim/adagrad.hpp"
#include "facenet/optim/adam.hpp"
#include "facenet/optim/clip.hpp"
#include "facenet/optim/rmsprop.hpp"
#include "facenet/optim/schedule.hpp"
#include "facenet/optim/sgd.hpp"
#include "facenet/train/checkpoint.hpp"
#include "facenet/train/plot.hpp"
#include "facenet/train/training_log.hpp"

namespace facenet::train {

enum class objective { triplet, softmax };

// Pairs of images to verify during training: paths two per pair, LFW-style folds.
struct verification_set {
  std::vector<std::string> paths;
  std::vector<bool> same;
  int folds = 10;
  eval::flip_mode flip = eval::flip_mode::none;  // also embed each image mirrored (unit-length combination)
};

struct trainer_config {
  std::string architecture = "nn4_small2";  // or "inception_resnet_v1"
  std::string data_dir;                     // one sub-folder per identity
  std::vector<std::string> people;          // identities to train on; empty = every sub-folder
  std::string init_weights;                 // safetensors to start from; empty = seeded random init
  int batch_people = 24, batch_images = 4, extra_negatives = 0;
  int extra_views = 1;  // copies of each extra negative's photo, augmented independently (>= 2: positives too)
  objective loss = objective::triplet;
  double dropout = -1;  // before the embedding layer; < 0: the architecture's default (nn4_small2 0, IRv1 0.6)
  loss::mining_options mining{loss::mining_strategy::batch_all};
  std::string optimizer = "adam";  // sgd, nesterov, adam, adagrad, rmsprop
  double lr = 1e-3;
  std::string schedule = "cosine";  // constant, cosine, step, or a davidsandberg "epoch: lr" file path
  std::int64_t warmup_steps = 0;
  double momentum = 0.9;  // sgd / nesterov / rmsprop
  double weight_decay = 5e-4;
  double clip_norm = 0;  // > 0: clip the global gradient norm
  std::int64_t steps = 0, epochs = 0;  // exactly one > 0
  std::uint64_t seed = 0;
  int threads = 0;  // compute threads, 0 = leave OpenMP's default
  int workers = 2;  // decoding threads
  data::augment_options augment = data::training_augmentation(96);
  data::standardization standardize = data::standardization::fixed;
  std::size_t image_cache_bytes = std::size_t(512) << 20;
  std::string checkpoint_dir;  // also receives training_log.csv and the plots; empty = none
  std::int64_t checkpoint_every = 100;
  bool resume = false;
  std::int64_t collapse_patience = 20;  // consecutive collapsed batches before stopping
  verification_set eval;
  std::int64_t eval_every = 0;  // steps between evaluations (0 = only at the end, if pairs are given)
};

using step_callback = std::function<void(const step_record&)>;
using eval_callback = std::function<void(const eval_record&)>;

namespace detail {

// dropout < 0 keeps the architecture's own (nn4_small2 none, inception_resnet_v1 0.6).
inline std::unique_ptr<models::model<float>> make_model(const std::string& arch, double dropout) {
  if (arch == "nn4_small2") {
    models::nn4_small2_options o;
    if (dropout >= 0) o.dropout = dropout;
    return std::make_unique<models::nn4_small2<float>>(o);
  }
  if (arch == "inception_resnet_v1") {
    models::inception_resnet_v1_options o;
    if (dropout >= 0) o.dropout = dropout;
    return std::make_unique<models::inception_resnet_v1<float>>(o);
  }
  throw argument_error("unknown architecture '" + arch + "' (expected nn4_small2 or inception_resnet_v1)");
}

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// PyTorch's default init for conv/linear (kaiming_uniform with a = sqrt(5): U(+-1/sqrt(fan_in)) for
// weights and their biases); BN keeps weight 1, bias 0, running mean 0, running var 1.
inline void init_parameters(std::vector<layers::parameter<float>> params, std::uint64_t seed) {
  std::unordered_map<std::string, double> bound_of_prefix;
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto& p = params[i];
    if (!p.grad || p.value->rank() < 2 || !ends_with(p.name, "weight")) continue;
    const double fan_in = static_cast<double>(p.value->numel() / p.value->size(0));
    const double bound = 1.0 / std::sqrt(fan_in);
    bound_of_prefix[p.name.substr(0, p.name.size() - 6)] = bound;
    std::mt19937_64 rng(data::mix_seed(seed, 0x1417, i));
    for (float& v : *p.value) v = static_cast<float>(-bound + 2 * bound * std::generate_canonical<double, 53>(rng));
  }
  for (std::size_t i = 0; i < params.size(); ++i) {
    auto& p = params[i];
    if (!p.grad || !ends_with(p.name, "bias")) continue;
    const auto it = bound_of_prefix.find(p.name.substr(0, p.name.size() - 4));
    if (it == bound_of_prefix.end()) continue;  // a BN shift: stays 0
    std::mt19937_64 rng(data::mix_seed(seed, 0x1417, i));
    for (float& v : *p.value) v = static_cast<float>(-it->second + 2 * it->second * std::generate_canonical<double, 53>(rng));
  }
}

inline std::unique_ptr<optim::optimizer> make_optimizer(const trainer_config& c, std::vector<optim::parameter> params) {
  const std::string& n = c.optimizer;
  if (n == "sgd" || n == "nesterov") {
    optim::sgd_options o;
    o.lr = c.lr, o.momentum = c.momentum, o.nesterov = n == "nesterov", o.weight_decay = c.weight_decay;
    return std::make_unique<optim::sgd>(std::move(params), o);
  }
  if (n == "adam") {
    optim::adam_options o;
    o.lr = c.lr, o.weight_decay = c.weight_decay;
    return std::make_unique<optim::adam>(std::move(params), o);
  }
  if (n == "adagrad") {
    optim::adagrad_options o;
    o.lr = c.lr, o.weight_decay = c.weight_decay;
    return std::make_unique<optim::adagrad>(std::move(params), o);
  }
  if (n == "rmsprop") {
    optim::rmsprop_options o;
    o.lr = c.lr, o.momentum = c.momentum, o.weight_decay = c.weight_decay;
    return std::make_unique<optim::rmsprop>(std::move(params), o);
  }
  throw argument_error("unknown optimizer '" + n + "' (expected sgd, nesterov, adam, adagrad or rmsprop)");
}

inline optim::lr_schedule make_schedule(const trainer_config& c, std::int64_t total_steps) {
  optim::lr_schedule s;
  if (c.schedule == "constant") {
    s = optim::constant_schedule(c.lr);
  } else if (c.schedule == "cosine") {
    s = optim::cosine_schedule(c.lr, total_steps, 0, c.warmup_steps);
  } else if (c.schedule == "step") {
    s = optim::step_schedule(c.lr, std::max<std::int64_t>(1, total_steps / 3), 0.1, c.warmup_steps);
  } else {
    FACENET_CHECK(std::filesystem::is_regular_file(c.schedule), argument_error,
                  "learning-rate schedule '" + c.schedule + "' is neither constant, cosine, step nor an existing schedule file");
    s = optim::read_lr_schedule_file(c.schedule);
  }
  s.warmup_steps = c.warmup_steps;
  return s;
}

inline std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

// One embedding row per path of `unique`, each image through the loader's deterministic transform.
inline Tensor<float> embed_paths(const models::embedder<float>& emb, const std::vector<std::string>& unique,
                                 const data::loader_options& lo, int batch) {
  const std::int64_t n = static_cast<std::int64_t>(unique.size()), d = emb.info().embedding_size;
  data::batch_loader loader(
      [&](std::int64_t b) {
        std::vector<data::sample> out;
        for (std::int64_t i = b * batch; i < std::min(n, (b + 1) * batch); ++i) out.push_back({unique[i], 0});
        return out;
      },
      lo);
  Tensor<float> all({n, d}), out;
  data::loaded_batch lb;
  for (std::int64_t r = 0; loader.next(lb); r += lb.images.size(0)) {
    emb.embed(lb.images, out);
    std::copy(out.begin(), out.end(), all.data() + r * d);
  }
  return all;
}

}  // namespace detail

// The embeddings of v.paths, row i for path i ([2P, D] for evaluate_lfw): every distinct image is
// embedded once through the loader's deterministic transform (centred crop) and, when v.flip asks,
// mirrored too and combined with its mirror image's embedding at unit length.
inline Tensor<float> verification_embeddings(const models::embedder<float>& emb, const verification_set& v,
                                             const data::loader_options& base, int batch = 32) {
  FACENET_CHECK(v.paths.size() == 2 * v.same.size() && !v.same.empty(), argument_error,
                "verification set: expected two paths per pair, got " + std::to_string(v.paths.size()) + " paths for " +
                    std::to_string(v.same.size()) + " pairs");
  std::vector<std::string> unique;
  std::unordered_map<std::string, std::int64_t> row_of;
  for (const std::string& p : v.paths)
    if (row_of.emplace(p, static_cast<std::int64_t>(unique.size())).second) unique.push_back(p);
  data::loader_options lo = base;
  lo.random = false;
  lo.flip_all = false;
  Tensor<float> all = detail::embed_paths(emb, unique, lo, batch);
  if (v.flip != eval::flip_mode::none) {
    lo.flip_all = true;
    all = eval::combine_flipped(all, detail::embed_paths(emb, unique, lo, batch), v.flip, true);
  }
  const std::int64_t d = all.size(1);
  Tensor<float> rows({static_cast<std::int64_t>(v.paths.size()), d});
  for (std::size_t i = 0; i < v.paths.size(); ++i)
    std::copy_n(all.data() + row_of[v.paths[i]] * d, d, rows.data() + static_cast<std::int64_t>(i) * d);
  return rows;
}

// The LFW protocol (`eo`, with v's fold count) on verification_embeddings.
inline eval::lfw_metrics evaluate_verification(const models::embedder<float>& emb, const verification_set& v,
                                               const data::loader_options& base, eval::lfw_options eo = {}) {
  eo.folds = v.folds;
  return eval::evaluate_lfw(verification_embeddings(emb, v, base), v.same, eo);
}

// The same for a trainable model (through an inference copy of it).
inline eval::lfw_metrics evaluate_verification(models::model<float>& model, const verification_set& v,
                                               const data::loader_options& base) {
  return evaluate_verification(models::embedder<float>(model), v, base);
}

class trainer {
 public:
  explicit trainer(trainer_config c) : c_(std::move(c)), model_(detail::make_model(c_.architecture, c_.dropout)) {
    FACENET_CHECK((c_.steps > 0) != (c_.epochs > 0), argument_error,
                  "trainer: give exactly one of steps (" + std::to_string(c_.steps) + ") and epochs (" +
                      std::to_string(c_.epochs) + ")");
    FACENET_CHECK(c_.checkpoint_every >= 0 && c_.eval_every >= 0, argument_error, "trainer: negative checkpoint/eval interval");
    FACENET_CHECK(!c_.resume || !c_.checkpoint_dir.empty(), argument_error, "trainer: resume needs a checkpoint directory");
    if (c_.threads > 0) parallel::set_num_threads(c_.threads);
    triplet_ = loss::triplet_loss<float>(c_.mining);
    c_.augment.out_size = static_cast<int>(model_->info().input_size);
    dataset_ = data::face_dataset::from_folder(c_.data_dir, c_.people);
    data::pk_options pk;
    pk.p = c_.batch_people, pk.k = c_.batch_images, pk.extra_negatives = c_.extra_negatives, pk.seed = c_.seed;
    pk.extra_views = c_.extra_views;
    sampler_ = std::make_unique<data::pk_sampler>(dataset_, pk);
    total_steps_ = c_.steps > 0 ? c_.steps : c_.epochs * sampler_->batches_per_epoch();
    schedule_ = detail::make_schedule(c_, total_steps_);
    if (c_.loss == objective::softmax) {
      head_ = std::make_unique<layers::linear<float>>(model_->info().embedding_size, static_cast<std::int64_t>(dataset_.size()), true);
      head_->collect("classifier", head_params());
    }
    detail::init_parameters(all_parameters(), c_.seed);
    if (!c_.init_weights.empty()) model_->load(io::load_safetensors(c_.init_weights));
    layers::allocate_gradients(all_parameters());
    std::vector<optim::parameter> params;
    for (const auto& p : all_parameters())
      if (p.grad) params.push_back({p.name, *p.value, *p.grad});
    optimizer_ = detail::make_optimizer(c_, std::move(params));
    rng_.seed(data::mix_seed(c_.seed, 0x6d696e65));
    if (!c_.checkpoint_dir.empty()) create_checkpoint_dir();
    if (c_.resume) restore(load_checkpoint(checkpoint_path(c_.checkpoint_dir)));
    log_ = std::make_unique<training_log>(c_.checkpoint_dir.empty() ? "" : output_file("training_log.csv"), step_);
  }

  // Trains until `until` (default: the configured end). Saves a checkpoint at the end, every
  // checkpoint_every steps, and never after a step whose loss or gradients were not finite.
  void run(const step_callback& on_step = {}, const eval_callback& on_eval = {}, std::int64_t until = -1) {
    const std::int64_t end = until < 0 ? total_steps_ : std::min(until, total_steps_);
    data::loader_options lo = loader_options();
    lo.seed = c_.seed;
    lo.cache = std::make_shared<data::image_cache>(c_.image_cache_bytes);
    data::batch_loader loader([&](std::int64_t b) { return b < end ? sampler_->batch(b) : std::vector<data::sample>{}; }, lo,
                              data::default_decoder, step_);
    const auto start = std::chrono::steady_clock::now();
    data::loaded_batch batch;
    while (step_ < end && !schedule_.stop(step_, epoch())) {
      const auto t0 = std::chrono::steady_clock::now();
      FACENET_CHECK(loader.next(batch), io_error, "trainer: the data loader ran dry at step " + std::to_string(step_));
      step_record r = train_step(batch);
      const auto t1 = std::chrono::steady_clock::now();
      r.images_per_second = static_cast<double>(batch.images.size(0)) / std::chrono::duration<double>(t1 - t0).count();
      r.elapsed_seconds = std::chrono::duration<double>(t1 - start).count();
      log_->add(r);
      ++step_;
      if (on_step) on_step(r);
      check_collapse(r);
      if (c_.eval_every > 0 && step_ % c_.eval_every == 0 && step_ < end) evaluate(on_eval);
      if (c_.checkpoint_every > 0 && step_ % c_.checkpoint_every == 0 && step_ < end) save();
    }
    if (!c_.eval.same.empty()) evaluate(on_eval);
    save();
    write_loss_plot();
  }

  // The trained network as a weights file: reference names plus __metadata__.
  io::tensor_map export_weights(const std::string& source = "facenet train") {
    io::tensor_map m = model_->export_weights();
    m.metadata["standardization"] = data::standardization_name(c_.standardize);
    m.metadata["source"] = source;
    return m;
  }

  // Evaluates on the configured verification pairs now (also logged and plotted).
  eval::lfw_metrics evaluate(const eval_callback& on_eval = {}) {
    const eval::lfw_metrics m = evaluate_verification(*model_, c_.eval, loader_options());
    eval_record r{step_, m.accuracy, m.val, m.auc, m.eer, m.roc.fpr, m.roc.tpr};
    log_->add(r);
    if (!c_.checkpoint_dir.empty()) {
      char title[64];
      std::snprintf(title, sizeof title, "ROC at step %lld: AUC %.3f", static_cast<long long>(step_), m.auc);
      save_roc_plot(output_file("roc_step" + std::to_string(step_) + ".png"), r.fpr, r.tpr, title);
    }
    if (on_eval) on_eval(r);
    return m;
  }

  // Writes the checkpoint now (no-op without a checkpoint directory).
  void save() {
    if (c_.checkpoint_dir.empty()) return;
    checkpoint c;
    c.weights = model_->export_weights();
    for (const auto& p : head_params_) c.weights.add(p.name, p.value->clone());
    c.optimizer = optimizer_->export_state();
    c.step = step_;
    c.rng = rng_to_string(rng_);
    c.info = {{"architecture", c_.architecture}, {"seed", std::to_string(c_.seed)}, {"total_steps", std::to_string(total_steps_)}};
    save_checkpoint(checkpoint_path(c_.checkpoint_dir), c);
    last_checkpoint_step_ = step_;
  }

  models::model<float>& model() noexcept { return *model_; }
  const trainer_config& config() const noexcept { return c_; }
  const training_log& log() const noexcept { return *log_; }
  const data::face_dataset& dataset() const noexcept { return dataset_; }
  std::int64_t step() const noexcept { return step_; }
  std::int64_t total_steps() const noexcept { return total_steps_; }
  std::int64_t epoch() const noexcept { return step_ / sampler_->batches_per_epoch(); }
  int batch_size() const noexcept { return sampler_->batch_size(); }
  data::loader_options loader_options() const {
    data::loader_options lo;
    lo.workers = c_.workers;
    lo.augment = c_.augment;
    lo.standardize = c_.standardize;
    return lo;
  }

 private:
  std::vector<layers::parameter<float>>& head_params() { return head_params_; }
  std::vector<layers::parameter<float>> all_parameters() {
    auto p = model_->parameters();
    p.insert(p.end(), head_params_.begin(), head_params_.end());
    return p;
  }

  // An io_error (not std::filesystem's own exception) so callers and the CLI see the usual kind.
  void create_checkpoint_dir() const {
    std::error_code ec;
    std::filesystem::create_directories(c_.checkpoint_dir, ec);
    FACENET_CHECK(!ec, io_error, "cannot create checkpoint directory '" + c_.checkpoint_dir + "': " + ec.message());
  }

  std::string output_file(const std::string& name) const { return (std::filesystem::path(c_.checkpoint_dir) / name).string(); }

  std::string checkpoint_note() const {
    if (last_checkpoint_step_ < 0) return " (no checkpoint written yet)";
    return " (last good checkpoint: " + checkpoint_path(c_.checkpoint_dir) + " at step " + std::to_string(last_checkpoint_step_) + ")";
  }

  // Any numeric failure of a step is reported with the step number and the checkpoint to go back to.
  step_record train_step(const data::loaded_batch& b) {
    try {
      return compute_step(b);
    } catch (const numeric_error& e) {
      throw numeric_error("step " + std::to_string(step_) + ": " + e.what() + checkpoint_note());
    }
  }

  step_record compute_step(const data::loaded_batch& b) {
    step_record r;
    r.step = step_, r.epoch = epoch();
    r.lr = schedule_.lr(step_, r.epoch);
    optimizer_->set_lr(r.lr);
    model_->seed_dropout(data::mix_seed(c_.seed, 0x64726f70, static_cast<std::uint64_t>(step_)));
    if (c_.loss == objective::triplet) {
      model_->forward(b.images, emb_, true);
      const auto res = triplet_(emb_, b.labels, rng_, grad_);
      r.loss = static_cast<double>(res.loss);
      r.active_fraction = res.mining.active_fraction;
      r.mean_distance = res.mining.mean_distance;
      r.collapsed = res.mining.collapsed;
      check_finite_loss(r.loss);
      model_->backward_params(grad_);
    } else {
      // The head classifies the prelogits, not the unit embeddings: with unit inputs the logits stay
      // too close together for thousands of classes and the loss hardly moves from ln(classes).
      model_->forward_prelogits(b.images, emb_, true);
      head_->forward(emb_, logits_, true);
      const auto s = loss::softmax_cross_entropy_forward(logits_, b.labels, log_probs_);
      r.loss = s.loss, r.active_fraction = s.accuracy;
      check_finite_loss(r.loss);
      loss::softmax_cross_entropy_backward(log_probs_, b.labels, 1.0f, grad_logits_);
      head_->backward(grad_logits_, grad_);
      model_->backward_prelogits_params(grad_);
    }
    optim::check_finite_gradients(optimizer_->parameters());
    if (c_.clip_norm > 0) optim::clip_grad_norm(*optimizer_, c_.clip_norm);
    optimizer_->step();
    return r;
  }

  static void check_finite_loss(double loss) {
    FACENET_CHECK(std::isfinite(loss), numeric_error, std::string("training loss is ") + (std::isnan(loss) ? "NaN" : "infinite"));
  }

  void check_collapse(const step_record& r) {
    collapsed_run_ = r.collapsed ? collapsed_run_ + 1 : 0;
    FACENET_CHECK(c_.collapse_patience <= 0 || collapsed_run_ < c_.collapse_patience, numeric_error,
                  "step " + std::to_string(r.step) + ": embeddings collapsed (mean squared distance " +
                      detail::format_number(r.mean_distance) + " for " + std::to_string(collapsed_run_) +
                      " batches in a row); try semi-hard or batch-all mining or a lower learning rate" + checkpoint_note());
  }

  void restore(const checkpoint& c) {
    const std::string path = checkpoint_path(c_.checkpoint_dir);
    const auto arch = c.info.find("architecture");
    FACENET_CHECK(arch != c.info.end() && arch->second == c_.architecture, format_error,
                  path + ": checkpoint of architecture '" + (arch == c.info.end() ? std::string("?") : arch->second) +
                      "', this run trains '" + c_.architecture + "'");
    io::tensor_map model_weights;
    for (const auto& e : c.weights.entries()) {
      const auto head = std::find_if(head_params_.begin(), head_params_.end(), [&](const auto& p) { return p.name == e.name; });
      if (head == head_params_.end()) {
        model_weights.add(e.name, e.value);
        continue;
      }
      check_shape(e.value, head->value->shape(), path + " tensor '" + e.name + "'");
      head->value->copy_from(e.value);
    }
    model_->load(model_weights);
    optimizer_->import_state(c.optimizer);
    rng_ = rng_from_string(c.rng, path);
    FACENET_CHECK(c.step <= total_steps_, argument_error,
                  path + ": checkpoint is at step " + std::to_string(c.step) + ", past this run's " + std::to_string(total_steps_) + " steps");
    step_ = last_checkpoint_step_ = c.step;
  }

  void write_loss_plot() {
    if (!c_.checkpoint_dir.empty() && !log_->steps().empty()) save_loss_plot(output_file("loss.png"), log_->steps());
  }

  trainer_config c_;
  std::unique_ptr<models::model<float>> model_;
  std::unique_ptr<layers::linear<float>> head_;
  std::vector<layers::parameter<float>> head_params_;
  data::face_dataset dataset_;
  std::unique_ptr<data::pk_sampler> sampler_;
  std::unique_ptr<optim::optimizer> optimizer_;
  optim::lr_schedule schedule_;
  loss::triplet_loss<float> triplet_;
  std::mt19937_64 rng_;
  std::unique_ptr<training_log> log_;
  std::int64_t total_steps_ = 0, step_ = 0, last_checkpoint_step_ = -1, collapsed_run_ = 0;
  Tensor<float> emb_, grad_, logits_, log_probs_, grad_logits_;
};

}  // namespace facenet::train
