// facenet bench: wall time of a model's inference forward (or of a training step) on random input.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "commands.hpp"
#include "common.hpp"
#include "facenet/layers/profile.hpp"

namespace facenet::cli {
namespace {

const char* bench_help =
    "usage: facenet bench [--arch nn4_small2|inception_resnet_v1] [--batch 8] [--threads T] [--train]\n"
    "                     [--iters 10] [--weights W] [--json] [--profile]\n"
    "Times the inference embedder (BN folded) or, with --train, one forward(training) + backward step,\n"
    "on a random batch, after one warm-up run. Random weights unless --weights is given.\n"
    "Prints ms_median, ms_min, img_per_s and gflops (achieved GFLOP/s) per run of the batch, and the\n"
    "process's peak resident memory next to the weights' float32 size (peak_rss_mib, weights_mib; --json:\n"
    "one JSON object, with every run's time in \"ms\").\n"
    "  --profile  then runs --iters more runs with per-layer timing and prints, per pass, every layer's\n"
    "             time, share and GFLOP/s, the hottest layers and the time per kind of layer\n";

// Forward FLOPs per image (2 x multiply-adds of every convolution and linear layer), counted with
// forward hooks on the PyTorch twins of both networks in tests/fixtures/make_model_fixtures.py.
// A training step is counted as 3 forwards (backward = grad w.r.t. input + grad w.r.t. weights).
double forward_flops(const std::string& arch) {
  if (arch == "inception_resnet_v1") return 2835324608.0;
  if (arch == "nn4_small2") return 400236544.0;
  throw argument_error("no FLOP count for architecture '" + arch + "'");
}

// The process's peak resident memory so far in MiB (Linux VmHWM), or -1 where /proc is not there.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // "VmHWM:  123 kB"
  return -1;
}

// Wall time of each run, in run order, after one warm-up run.
std::vector<double> time_runs(long iters, const std::function<void()>& run) {
  run();  // warm-up: packs weights, sizes workspaces
  std::vector<double> ms;
  progress_bar bar("bench", iters);
  for (long i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    bar.update(i + 1);
  }
  bar.finish();
  return ms;
}

}  // namespace

int run_bench(int argc, char** argv, int first) {
  const auto a = parse_command(argc, argv, first, bench_help, {"train", "json", "profile"}, {"arch", "batch", "iters", "weights"});
  if (!a) return exit_ok;
  FACENET_CHECK(a->positional().empty(), argument_error, "unexpected argument '" + (a->positional().empty() ? "" : a->positional()[0]) + "'");
  const long batch = a->integer("batch", 8), iters = a->integer("iters", 10);
  FACENET_CHECK(batch >= 1 && batch <= 4096, argument_error, "--batch must be in [1, 4096]");
  FACENET_CHECK(iters >= 1, argument_error, "--iters must be >= 1");
  loaded_model m = model_from_args(*a, true);
  const std::int64_t s = m.net->info().input_size;
  double weights_mib = 0;  // parameters and BN statistics, as float32
  for (const auto& p : m.net->parameters()) weights_mib += static_cast<double>(p.value->numel()) * 4.0 / (1 << 20);
  Tensor<float> x({batch, 3, s, s});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& v : x) v = u(rng);

  const bool train = a->has("train");
  Tensor<float> y, dy;
  std::unique_ptr<models::embedder<float>> e;
  std::function<void()> step;
  if (train) {
    step = [&] {
      m.net->forward(x, y, true);
      if (dy.shape() != y.shape()) {
        dy = Tensor<float>(y.shape());
        for (auto& v : dy) v = 1.0f / static_cast<float>(y.numel());
      }
      m.net->backward_params(dy);  // as training runs it: no gradient for the input images
    };
  } else {
    e = std::make_unique<models::embedder<float>>(std::move(m.net));
    step = [&] { e->embed(x, y); };
  }
  const std::vector<double> ms = time_runs(iters, step);
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median =
      sorted.size() % 2 ? sorted[sorted.size() / 2] : 0.5 * (sorted[sorted.size() / 2 - 1] + sorted[sorted.size() / 2]);
  const double img_per_s = 1000.0 * static_cast<double>(batch) / median;
  const double gflops = forward_flops(m.arch) * (train ? 3 : 1) * static_cast<double>(batch) / (median * 1e6);
  const double rss = peak_rss_mib();
  if (a->has("profile")) {
    layers::profiler prof;
    {
      layers::profile_session on(prof);
      for (long i = 0; i < iters; ++i) step();
    }
    std::printf("per-layer profile: %s, batch %ld, %d threads, %ld runs (times per run; unprofiled median %.3f ms)\n",
                m.arch.c_str(), batch, parallel::max_threads(), iters, median);
    prof.print(stdout, iters);
    std::printf("\n");
  }
  if (a->has("json")) {
    std::string runs;
    for (double t : ms) runs += (runs.empty() ? "" : ", ") + std::to_string(t);
    std::printf("{\"arch\": \"%s\", \"batch\": %ld, \"threads\": %d, \"train\": %s, \"iters\": %ld, \"ms_median\": %.4f, "
                "\"ms_min\": %.4f, \"img_per_s\": %.3f, \"gflops\": %.3f, \"peak_rss_mib\": %.1f, \"weights_mib\": %.1f, "
                "\"ms\": [%s]}\n",
                m.arch.c_str(), batch, parallel::max_threads(), train ? "true" : "false", iters, median, sorted.front(),
                img_per_s, gflops, rss, weights_mib, runs.c_str());
  } else
    std::printf("%s %s, batch %ld, %d threads, %ld runs: median %.2f ms, min %.2f ms, %.1f img/s, %.1f GFLOP/s, "
                "peak RSS %.0f MiB (weights %.0f MiB)\n",
                m.arch.c_str(), train ? "training step" : "inference", batch, parallel::max_threads(), iters, median,
                sorted.front(), img_per_s, gflops, rss, weights_mib);
  return exit_ok;
}

}  // namespace facenet::cli
