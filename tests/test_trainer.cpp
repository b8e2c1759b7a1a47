// Trainer: a short NN4-small2 triplet training on ORL (30 people train, 10 held out), bit-exact
// resume, NaN stop keeping the last checkpoint, durable checkpoint writes, CSV log and plots.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "facenet/data/image_io.hpp"
#include "facenet/train/checkpoint.hpp"
#include "facenet/train/plot.hpp"
#include "facenet/train/trainer.hpp"
#include "facenet/train/training_log.hpp"
#include "testing.hpp"

namespace fs = std::filesystem;
using namespace facenet;
using namespace facenet::train;

namespace {

std::string orl_dir() { return (facenet::testing::shared_dir() / "data/orl").string(); }

std::vector<std::string> orl_people(int first, int last) {
  std::vector<std::string> p;
  for (int i = first; i <= last; ++i) p.push_back("s" + std::to_string(i));
  return p;
}

// A fresh, empty directory under the build's temp space.
fs::path trainer_scratch_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("facenet_test_trainer_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// Held-out verification pairs: every same-person pair of people s31..s40 (450) and as many
// different-person pairs, shuffled so each of the 10 folds mixes both kinds.
verification_set orl_holdout_pairs() {
  const std::vector<std::string> people = orl_people(31, 40);
  auto path = [&](std::size_t p, int img) { return orl_dir() + "/" + people[p] + "/" + std::to_string(img + 1) + ".pgm"; };
  std::vector<std::pair<std::pair<std::string, std::string>, bool>> pairs;
  for (std::size_t p = 0; p < people.size(); ++p)
    for (int i = 0; i < 10; ++i)
      for (int j = i + 1; j < 10; ++j) pairs.push_back({{path(p, i), path(p, j)}, true});
  const std::size_t same = pairs.size();
  for (std::size_t i = 0; i < same; ++i) {
    const std::size_t a = i % 10, b = (a + 1 + (i / 10) % 9) % 10;
    pairs.push_back({{path(a, static_cast<int>(i % 10)), path(b, static_cast<int>((i * 7 + 3) % 10))}, false});
  }
  std::mt19937_64 rng(5);
  for (std::size_t i = pairs.size(); i > 1; --i) std::swap(pairs[i - 1], pairs[data::draw_index(rng, i)]);
  verification_set v;
  for (const auto& [p, s] : pairs) v.paths.push_back(p.first), v.paths.push_back(p.second), v.same.push_back(s);
  return v;
}

trainer_config orl_config(std::int64_t steps, int p, int k) {
  trainer_config c;
  c.data_dir = orl_dir();
  c.people = orl_people(1, 30);
  c.batch_people = p, c.batch_images = k;
  c.mining.strategy = loss::mining_strategy::batch_all;
  c.optimizer = "adam";
  c.lr = 1e-3;
  c.steps = steps;
  c.seed = 11;
  c.threads = 1;  // bit-exactness needs a fixed count; one thread also avoids OpenMP spinning on a busy machine
  c.workers = 2;
  c.checkpoint_every = 0;
  return c;
}

// The triplet loss (margin 0.2) averaged over every triplet, satisfied ones included, of a fixed
// set of training faces (people s1-s10, photos 1-4), embedded deterministically. The per-step loss
// is no measure of progress here: batch-all mining averages it over the active triplets of a random
// batch, and over 40 steps it rose for seeds 2 and 4 of 13 tried while held-out accuracy went from
// 0.48 to 0.79 and 0.72. This one fell on all 13 (0.200 -> 0.058-0.170; seed 11: 0.170).
double fixed_batch_loss(trainer& t) {
  verification_set v;
  std::vector<int> label;
  for (int p = 1; p <= 10; ++p)
    for (int i = 1; i <= 4; ++i) {
      v.paths.push_back(orl_dir() + "/s" + std::to_string(p) + "/" + std::to_string(i) + ".pgm");
      label.push_back(p);
    }
  v.same.assign(v.paths.size() / 2, true);  // verification_embeddings wants pairs; only the rows are used
  const Tensor<float> e = verification_embeddings(models::embedder<float>(t.model()), v, t.loader_options());
  const auto d = [&](std::size_t i, std::size_t j) {
    double s = 0;
    for (std::int64_t k = 0; k < e.size(1); ++k) s += std::pow(static_cast<double>(e(i, k)) - e(j, k), 2);
    return s;
  };
  double sum = 0;
  int count = 0;
  for (std::size_t a = 0; a < label.size(); ++a)
    for (std::size_t p = 0; p < label.size(); ++p)
      for (std::size_t n = 0; n < label.size(); ++n)
        if (p != a && label[p] == label[a] && label[n] != label[a]) sum += std::max(0.0, d(a, p) - d(a, n) + 0.2), ++count;
  return sum / count;
}

io::tensor_map round_trip(const io::tensor_map& m, const std::string& what) {
  const std::string bytes = io::serialize_safetensors(m);
  return io::parse_safetensors(io::byte_span{reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()}, what);
}

double mean_loss(const std::vector<step_record>& s, std::size_t first, std::size_t count) {
  double sum = 0;
  for (std::size_t i = first; i < first + count; ++i) sum += s[i].loss;
  return sum / static_cast<double>(count);
}

struct learning_outcome {
  double accuracy_before, accuracy_after, loss_before, loss_after;
};

learning_outcome train_on_orl(trainer& t) {
  EXPECT_EQ(t.dataset().size(), 30u);
  learning_outcome o{};
  o.accuracy_before = t.evaluate().accuracy, o.loss_before = fixed_batch_loss(t);
  t.run();
  const auto& s = t.log().steps();
  EXPECT_EQ(s.size(), 40u);
  if (s.size() != 40u) return o;  // already failed; too short a log to read the last 10 steps of
  o.accuracy_after = t.log().evaluations().back().accuracy, o.loss_after = fixed_batch_loss(t);
  std::printf("ORL seed %llu: loss on fixed training faces %.4f -> %.4f (per step %.4f -> %.4f), held-out accuracy %.3f -> %.3f\n",
              static_cast<unsigned long long>(t.config().seed), o.loss_before, o.loss_after, mean_loss(s, 0, 10),
              mean_loss(s, s.size() - 10, 10), o.accuracy_before, o.accuracy_after);
  return o;
}

double median_of_three(double a, double b, double c) { return std::max(std::min(a, b), std::min(std::max(a, b), c)); }

}  // namespace

// Forty steps of 20 images are chaotic: the same seed follows another trajectory where the SIMD width
// changes the rounding (seed 11 reaches 0.78 held-out with 4-float SSE vectors, 0.56 with 8-float AVX2
// ones, where seeds 1-6 reach 0.68-0.82). So the claim is checked on the median of three seeds: one
// unlucky run cannot fail it, a trainer that does not learn fails all three.
TEST(Trainer, LearnsOnOrlAndBeatsTheUntrainedNetworkOnHeldOutPeople) {
  FACENET_REQUIRE_SHARED("data/orl/s40");
  const fs::path dir = trainer_scratch_dir("learn");
  trainer_config c = orl_config(40, 5, 4);
  c.eval = orl_holdout_pairs();
  c.checkpoint_dir = dir.string();
  trainer t(c);
  std::vector<learning_outcome> runs{train_on_orl(t)};
  for (const std::uint64_t seed : {2, 5}) {
    trainer_config other = c;
    other.seed = seed, other.checkpoint_dir.clear();
    trainer u(other);
    runs.push_back(train_on_orl(u));
  }
  const auto median = [&](double learning_outcome::*m) { return median_of_three(runs[0].*m, runs[1].*m, runs[2].*m); };
  EXPECT_LT(median(&learning_outcome::loss_after), 0.9 * median(&learning_outcome::loss_before));
  EXPECT_GT(median(&learning_outcome::accuracy_after), median(&learning_outcome::accuracy_before) + 0.1);
  // Outputs: CSV with one row per step, loss plot, ROC plots of both evaluations, checkpoint.
  std::ifstream csv(dir / "training_log.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, training_log::header);
  int rows = 0;
  while (std::getline(csv, line)) ++rows;
  EXPECT_EQ(rows, 40);
  EXPECT_TRUE(fs::exists(dir / "loss.png"));
  EXPECT_TRUE(fs::exists(dir / "roc_step0.png"));
  EXPECT_TRUE(fs::exists(dir / "roc_step40.png"));
  EXPECT_EQ(load_checkpoint(checkpoint_path(dir.string())).step, 40);
  // The exported weights load back into a fresh model and carry the metadata.
  const io::tensor_map w = t.export_weights("facenet train test");
  EXPECT_EQ(w.metadata.at("architecture"), "nn4_small2");
  EXPECT_EQ(w.metadata.at("standardization"), "fixed");
  EXPECT_EQ(w.metadata.at("source"), "facenet train test");
  models::nn4_small2<float> fresh;
  fresh.load(round_trip(w, "exported"));
}

// Also with dropout before the embedding: its masks are drawn from (seed, step), so they replay too.
void expect_resume_reproduces_the_run(double dropout) {
  SCOPED_TRACE("dropout " + std::to_string(dropout));
  const std::int64_t n = 4;
  trainer_config c = orl_config(n, 3, 2);
  c.dropout = dropout;
  trainer straight(c);
  straight.run();

  const fs::path dir = trainer_scratch_dir("resume");
  c.checkpoint_dir = dir.string();
  {
    trainer first_half(c);
    first_half.run({}, {}, n / 2);
    EXPECT_EQ(first_half.step(), n / 2);
  }
  c.resume = true;
  trainer second_half(c);
  EXPECT_EQ(second_half.step(), n / 2);
  second_half.run();

  std::ifstream csv(dir / "training_log.csv");
  std::string line;
  std::getline(csv, line);
  std::vector<std::string> rows;
  while (std::getline(csv, line)) rows.push_back(line);
  ASSERT_EQ(rows.size(), static_cast<std::size_t>(n));
  const auto& a = straight.log().steps();
  const auto& b = second_half.log().steps();
  ASSERT_EQ(b.size(), static_cast<std::size_t>(n / 2));
  for (std::int64_t i = 0; i < n; ++i) {
    const step_record& r = a[static_cast<std::size_t>(i)];
    EXPECT_EQ(training_log::format_row(r).substr(0, 40), rows[static_cast<std::size_t>(i)].substr(0, 40)) << "step " << i;
    if (i >= n / 2) {
      const step_record& q = b[static_cast<std::size_t>(i - n / 2)];
      EXPECT_EQ(q.step, i);
      EXPECT_EQ(q.loss, r.loss) << "step " << i;  // exact, not approximate
      EXPECT_EQ(q.active_fraction, r.active_fraction);
    }
  }
  const io::tensor_map wa = straight.export_weights(), wb = second_half.export_weights();
  for (const auto& e : wa.entries()) EXPECT_EQ(facenet::testing::max_abs_diff(e.value, wb.at(e.name)), 0.0) << e.name;
}

TEST(Trainer, ResumeFromCheckpointReproducesTheLossesBitForBit) {
  FACENET_REQUIRE_SHARED("data/orl/s40");
  expect_resume_reproduces_the_run(-1);
  expect_resume_reproduces_the_run(0.3);
}

TEST(Trainer, NanStopsWithTheStepAndKeepsTheLastGoodCheckpoint) {
  FACENET_REQUIRE_SHARED("data/orl/s40");
  const fs::path dir = trainer_scratch_dir("nan");
  trainer_config c = orl_config(5, 2, 2);
  c.checkpoint_every = 2;
  c.checkpoint_dir = dir.string();
  trainer t(c);
  const auto poison = [&](const step_record& r) {
    if (r.step == 2) t.model().parameters().front().value->data()[0] = std::nanf("");
  };
  try {
    t.run(poison);
    FAIL() << "NaN weights did not stop training";
  } catch (const numeric_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("step 3"), std::string::npos) << msg;
    EXPECT_NE(msg.find("at step 2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("checkpoint.safetensors"), std::string::npos) << msg;
  }
  const checkpoint kept = load_checkpoint(checkpoint_path(dir.string()));
  EXPECT_EQ(kept.step, 2);
  for (const auto& e : kept.weights.entries())
    for (float v : e.value) ASSERT_TRUE(std::isfinite(v)) << e.name;
  // Resuming from it continues cleanly.
  c.resume = true;
  trainer resumed(c);
  resumed.run();
  EXPECT_EQ(resumed.step(), 5);
}

TEST(Trainer, UnwritableCheckpointIsAnIoErrorAndKeepsThePreviousFile) {
  const fs::path dir = trainer_scratch_dir("durable");
  const std::string path = (dir / "checkpoint.safetensors").string();
  write_file_durably(path, "first");
  fs::create_directory(path + ".tmp");  // the temp file cannot be created (works even as root)
  EXPECT_THROW(write_file_durably(path, "second"), io_error);
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "first");
  EXPECT_THROW(write_file_durably((dir / "missing" / "x").string(), "y"), io_error);
  fs::remove(path + ".tmp");
  write_file_durably(path, "second");
  std::ifstream again(path);
  std::getline(again, content);
  EXPECT_EQ(content, "second");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(Checkpoint, RoundTripsEveryPartAndRejectsForeignFiles) {
  checkpoint c;
  c.weights.add("conv1.weight", facenet::testing::random_tensor<float>(shape{2, 3}, 1));
  c.weights.metadata["architecture"] = "nn4_small2";
  c.optimizer.add("conv1.weight/exp_avg", facenet::testing::random_tensor<float>(shape{2, 3}, 2));
  c.optimizer.metadata["optimizer"] = "adam";
  std::mt19937_64 rng(3);
  rng.discard(17);
  c.rng = rng_to_string(rng);
  c.step = 42;
  c.info["seed"] = "9";
  const checkpoint d = checkpoint_from_tensor_map(round_trip(checkpoint_to_tensor_map(c), "mem"), "mem");
  EXPECT_EQ(d.step, 42);
  EXPECT_EQ(d.info.at("seed"), "9");
  EXPECT_EQ(d.weights.metadata.at("architecture"), "nn4_small2");
  EXPECT_EQ(d.optimizer.metadata.at("optimizer"), "adam");
  EXPECT_EQ(facenet::testing::max_abs_diff(d.weights.at("conv1.weight"), c.weights.at("conv1.weight")), 0.0);
  EXPECT_EQ(facenet::testing::max_abs_diff(d.optimizer.at("conv1.weight/exp_avg"), c.optimizer.at("conv1.weight/exp_avg")), 0.0);
  std::mt19937_64 back = rng_from_string(d.rng, "mem");
  EXPECT_EQ(back(), rng());

  io::tensor_map weights_only;
  weights_only.add("conv1.weight", c.weights.at("conv1.weight"));
  EXPECT_THROW(checkpoint_from_tensor_map(weights_only, "plain.safetensors"), format_error);
  io::tensor_map bad = checkpoint_to_tensor_map(c);
  bad.metadata["step"] = "-3";
  EXPECT_THROW(checkpoint_from_tensor_map(bad, "bad"), format_error);
  bad.metadata["step"] = "1";
  bad.metadata["rng"] = "not a state";
  EXPECT_THROW(checkpoint_from_tensor_map(bad, "bad"), format_error);
}

TEST(TrainingLog, ResumeKeepsOnlyEarlierRows) {
  const fs::path dir = trainer_scratch_dir("log");
  const std::string path = (dir / "log.csv").string();
  {
    training_log log(path);
    for (int i = 0; i < 5; ++i) log.add(step_record{i, 0, 1e-3, 1.0 / (i + 1)});
  }
  training_log resumed(path, 3);
  resumed.add(step_record{3, 0, 1e-3, 9.0});
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[1].substr(0, 2), "0,");
  EXPECT_EQ(lines[3].substr(0, 2), "2,");
  EXPECT_EQ(lines[4].substr(0, 2), "3,");
  EXPECT_NE(lines[4].find(",9,"), std::string::npos) << lines[4];
}

TEST(Plot, DrawsSeriesAndAxesAndRejectsBadInput) {
  plot_series s{{0, 1, 2, 3}, {1, 0.5, 0.25, std::nan("")}, {255, 0, 0}};
  const data::image img = render_line_plot({s});
  ASSERT_EQ(img.width, 640);
  ASSERT_EQ(img.channels, 3);
  std::size_t red = 0, black = 0;
  for (std::size_t i = 0; i < img.pixels.size(); i += 3) {
    red += img.pixels[i] == 255 && img.pixels[i + 1] == 0 && img.pixels[i + 2] == 0;
    black += img.pixels[i] == 0 && img.pixels[i + 1] == 0 && img.pixels[i + 2] == 0;
  }
  EXPECT_GT(red, 100u);
  EXPECT_GT(black, 500u);
  EXPECT_THROW(render_line_plot({plot_series{{0, 1}, {1}}}), argument_error);
  plot_options tiny;
  tiny.width = 20;
  EXPECT_THROW(render_line_plot({s}, tiny), argument_error);
  const fs::path dir = trainer_scratch_dir("plot");
  save_roc_plot((dir / "roc.png").string(), {0, 0.1, 1}, {0, 0.8, 1});
  const data::image back = data::load_image((dir / "roc.png").string());
  EXPECT_EQ(back.width, 400);
}

TEST(Plot, TitleAndAxisLabelsAreDrawnInTheirPlaces) {
  const plot_series s{{0, 1}, {0, 1}, {255, 0, 0}};
  // Black pixels in rows [y0, y1) and columns [x0, x1).
  const auto black_in = [](const data::image& img, int y0, int y1, int x0, int x1) {
    std::size_t n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) n += img.at(y, x, 0) == 0 && img.at(y, x, 1) == 0 && img.at(y, x, 2) == 0;
    return n;
  };
  const data::image bare = render_line_plot({s});
  plot_options o;
  o.title = "Loss (blue)";
  o.x_label = "step";
  o.y_label = "loss";
  const data::image labelled = render_line_plot({s}, o);
  EXPECT_EQ(black_in(bare, 0, 14, 0, 640), 0u);  // nothing above the plot without a title
  EXPECT_GT(black_in(labelled, 0, 14, 250, 390), 20u);  // the title, centred
  EXPECT_EQ(black_in(labelled, 0, 14, 0, 200), 0u);
  EXPECT_GT(black_in(labelled, 30, 46, 56, 100), 10u);  // the y label, above the y axis
  EXPECT_GT(black_in(labelled, 368, 380, 300, 360), 10u);  // the x label, centred under the x axis
  EXPECT_EQ(black_in(bare, 368, 380, 300, 360), 0u);
}

TEST(Trainer, RejectsBadConfiguration) {
  FACENET_REQUIRE_SHARED("data/orl/s40");
  trainer_config c = orl_config(0, 4, 2);
  EXPECT_THROW(trainer{c}, argument_error);  // neither steps nor epochs
  c = orl_config(2, 4, 2);
  c.architecture = "resnet50";
  EXPECT_THROW(trainer{c}, argument_error);
  c = orl_config(2, 4, 2);
  c.optimizer = "lion";
  EXPECT_THROW(trainer{c}, argument_error);
  c = orl_config(2, 4, 2);
  c.resume = true;
  EXPECT_THROW(trainer{c}, argument_error);  // no checkpoint directory
  c.checkpoint_dir = trainer_scratch_dir("empty").string();
  EXPECT_THROW(trainer{c}, io_error);  // nothing to resume from
  c = orl_config(2, 40, 2);
  EXPECT_THROW(trainer{c}, argument_error);  // P larger than the 30 people
}

// Flipped-image evaluation: an image and its mirror image get the same combined embedding (the sum
// of the two is symmetric; concat swaps its halves), where plain embeddings of the two differ.
TEST(VerificationEmbeddings, FlipCombinesEachImageWithItsMirror) {
  const fs::path dir = trainer_scratch_dir("flip");
  std::mt19937 rng(3);
  // Strongly one-sided images (a ramp from left to right, plus noise), so that the untrained
  // network's embeddings of an image and of its mirror image are measurably apart.
  data::image a(96, 96, 3), b(96, 96, 3);
  for (auto* img : {&a, &b})
    for (int y = 0; y < 96; ++y)
      for (int x = 0; x < 96; ++x)
        for (int c = 0; c < 3; ++c)
          img->at(y, x, c) = static_cast<std::uint8_t>(std::min<unsigned>(255, (img == &a ? x : 95 - y) * 2u + rng() % 64));
  data::save_png(a, (dir / "a.png").string());
  data::save_png(data::flip_horizontal(a), (dir / "a_mirror.png").string());
  data::save_png(b, (dir / "b.png").string());
  verification_set v;
  v.paths = {(dir / "a.png").string(), (dir / "a_mirror.png").string(), (dir / "a.png").string(), (dir / "b.png").string()};
  v.same = {true, false};
  models::nn4_small2<float> m;
  train::detail::init_parameters(m.parameters(), 7);
  const models::embedder<float> emb(m);
  data::loader_options lo;
  lo.augment.out_size = 96;
  const auto distance = [](const Tensor<float>& e, std::int64_t i, std::int64_t j, std::int64_t from, std::int64_t to) {
    double d = 0;
    for (std::int64_t k = from; k < to; ++k) d += std::pow(static_cast<double>(e(i, k)) - e(j, k), 2);
    return std::sqrt(d);
  };
  const Tensor<float> plain = verification_embeddings(emb, v, lo);
  ASSERT_EQ(plain.shape(), (facenet::shape{4, 128}));
  const double apart = distance(plain, 0, 1, 0, 128);  // about 7e-4: an untrained network barely tells inputs apart
  EXPECT_GT(apart, 1e-4);
  v.flip = eval::flip_mode::sum;
  const Tensor<float> sum = verification_embeddings(emb, v, lo);
  EXPECT_LT(distance(sum, 0, 1, 0, 128), 1e-3 * apart);
  EXPECT_GT(distance(sum, 2, 3, 0, 128), 0.1 * apart);
  EXPECT_NEAR(std::sqrt(std::inner_product(sum.data(), sum.data() + 128, sum.data(), 0.0)), 1.0, 1e-5);  // unit rows
  v.flip = eval::flip_mode::concat;
  const Tensor<float> cat = verification_embeddings(emb, v, lo);
  ASSERT_EQ(cat.shape(), (facenet::shape{4, 256}));
  for (std::int64_t k = 0; k < 128; ++k) {  // [e(a), e(a')] / sqrt 2 against [e(a'), e(a)] / sqrt 2
    EXPECT_NEAR(cat(0, k), cat(1, 128 + k), 1e-7);
    EXPECT_NEAR(cat(1, k), plain(1, k) / std::sqrt(2.0f), 1e-7);
  }
  EXPECT_THROW(eval::parse_flip_mode("mirror"), argument_error);
}

TEST(Trainer, SoftmaxHeadTrainsCheckpointsAndResumes) {
  FACENET_REQUIRE_SHARED("data/orl/s40");
  const fs::path dir = trainer_scratch_dir("softmax");
  trainer_config c = orl_config(3, 2, 2);
  c.loss = objective::softmax;
  c.checkpoint_dir = dir.string();
  {
    trainer t(c);
    t.run({}, {}, 2);
    for (const step_record& r : t.log().steps()) EXPECT_TRUE(std::isfinite(r.loss) && r.loss > 0) << r.step;
  }
  const checkpoint saved = load_checkpoint(checkpoint_path(dir.string()));
  ASSERT_TRUE(saved.weights.contains("classifier.weight"));
  EXPECT_EQ(saved.weights.at("classifier.weight").shape(), (shape{30, 128}));
  c.resume = true;
  trainer resumed(c);
  resumed.run();
  EXPECT_EQ(resumed.step(), 3);
  EXPECT_FALSE(resumed.export_weights().contains("classifier.weight"));  // the head is not part of the model file
}

// The head must learn, not just produce finite numbers. It classifies the prelogits: on the unit
// embeddings it hardly moved over these 40 steps (3.44 -> 3.37, ln 30 = 3.40); on the prelogits the
// last 10 steps average 3.19-3.25 for seeds 11, 2 and 5, from 3.65-3.67 in the first 10.
TEST(Trainer, SoftmaxHeadLearnsTheTrainingIdentities) {
  FACENET_REQUIRE_SHARED("data/orl/s40");
  trainer_config c = orl_config(40, 5, 4);
  c.loss = objective::softmax;
  trainer t(c);
  t.run();
  const auto& s = t.log().steps();
  ASSERT_EQ(s.size(), 40u);
  const double first = mean_loss(s, 0, 10), last = mean_loss(s, 30, 10);
  std::printf("ORL softmax: loss %.3f -> %.3f (ln 30 = %.3f)\n", first, last, std::log(30.0));
  EXPECT_LT(last, 0.98 * std::log(30.0));
  EXPECT_LT(last, first - 0.25);
}

TEST(Trainer, CollapseIsReportedAndStopsAfterThePatience) {
  FACENET_REQUIRE_SHARED("data/orl/s40");
  trainer_config c = orl_config(5, 2, 2);
  c.mining.collapse_threshold = 10;  // above any distance of unit vectors: every batch counts as collapsed
  c.collapse_patience = 2;
  trainer t(c);
  try {
    t.run();
    FAIL() << "collapse was not detected";
  } catch (const numeric_error& e) {
    EXPECT_NE(std::string(e.what()).find("step 1: embeddings collapsed"), std::string::npos) << e.what();
  }
  ASSERT_EQ(t.log().steps().size(), 2u);
  EXPECT_TRUE(t.log().steps()[0].collapsed);
}
