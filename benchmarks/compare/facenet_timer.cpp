// facenet's contender in compare.py, as a persistent process like the others (one model load and
// warm-up per case, then timed runs on request), built from one small translation unit.
// Usage: facenet_timer WEIGHTS ARCH BATCH THREADS train|infer   (WEIGHTS: any format the converter
// reads, e.g. PyTorch's torch.save state_dict, mapped by the library's conversion driver)
// then JSON-lines commands on stdin, one reply line each:
//   {"cmd": "time", "n": k}                          -> {"ms": [k wall times]}
//   {"cmd": "embed", "input": X.f32, "output": E.f32} -> {"ok": true}  (raw float32, BATCH x 3 x S x S in)
//   {"cmd": "profile", "n": k}                       -> {"ok": true}, the per-layer profile of k runs on stderr
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include "facenet/core/parallel.hpp"
#include "facenet/io/convert.hpp"
#include "facenet/layers/profile.hpp"
#include "facenet/models/inception_resnet_v1.hpp"
#include "facenet/models/nn4_small2.hpp"

using namespace facenet;

namespace {

std::unique_ptr<models::model<float>> load(const std::string& path, const std::string& arch) {
  std::unique_ptr<models::model<float>> m;
  if (arch == "nn4_small2") m = std::make_unique<models::nn4_small2<float>>();
  else if (arch == "inception_resnet_v1") m = std::make_unique<models::inception_resnet_v1<float>>();
  else throw unsupported_error("architecture '" + arch + "' is not an embedding network");
  io::conversion_report report;
  io::convert_options opt;
  opt.arch = arch;
  const io::tensor_map w = io::prepare_conversion(path, opt, report);
  FACENET_CHECK(report.ok(), format_error, path + " does not fit " + arch + ": " + report.problems());
  m->load(w);
  return m;
}

// The value of "key": in a one-line JSON command (numbers and plain strings only).
std::string field(const std::string& line, const std::string& key) {
  const std::size_t k = line.find("\"" + key + "\"");
  FACENET_CHECK(k != std::string::npos, argument_error, "command without \"" + key + "\": " + line);
  std::size_t v = line.find_first_not_of(" :", k + key.size() + 2);
  if (line[v] == '"') return line.substr(v + 1, line.find('"', v + 1) - v - 1);
  return line.substr(v, line.find_first_of(",}", v) - v);
}

void read_raw(const std::string& path, Tensor<float>& x) {
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(x.data()), static_cast<std::streamsize>(x.numel() * sizeof(float)));
  FACENET_CHECK(in.gcount() == static_cast<std::streamsize>(x.numel() * sizeof(float)), io_error,
                path + ": expected " + std::to_string(x.numel()) + " float32 values for " + x.shape().str());
}

void write_raw(const std::string& path, const Tensor<float>& y) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(y.data()), static_cast<std::streamsize>(y.numel() * sizeof(float)));
  FACENET_CHECK(out.good(), io_error, "cannot write '" + path + "'");
}

}  // namespace

int main(int argc, char** argv) try {
  FACENET_CHECK(argc == 6, argument_error, "usage: facenet_timer WEIGHTS ARCH BATCH THREADS train|infer");
  auto net = load(argv[1], argv[2]);
  const std::int64_t batch = std::stol(argv[3]), s = net->info().input_size;
  parallel::set_num_threads(std::stoi(argv[4]));
  const bool train = std::string(argv[5]) == "train";
  Tensor<float> x({batch, 3, s, s}), y, dy;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (auto& v : x) v = u(rng);
  models::embedder<float> e(*net);
  // What `facenet bench` times: the embedder, or forward(training) + backward (parameter gradients)
  // with a fixed gradient.
  const auto step = [&] {
    if (!train) return e.embed(x, y);
    net->forward(x, y, true);
    if (dy.shape() != y.shape()) {
      dy = Tensor<float>(y.shape());
      for (auto& v : dy) v = 1.0f / static_cast<float>(y.numel());
    }
    net->backward_params(dy);  // PyTorch's input does not require grad either
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: packing, workspaces
  std::cout << "{\"ok\": true}" << std::endl;
  for (std::string line; std::getline(std::cin, line);) {
    try {
      const std::string cmd = field(line, "cmd");
      if (cmd == "time") {
        std::string ms;
        for (long i = 0, n = std::stol(field(line, "n")); i < n; ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          step();
          const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
          ms += (ms.empty() ? "" : ", ") + std::to_string(t);
        }
        std::cout << "{\"ms\": [" << ms << "]}" << std::endl;
      } else if (cmd == "profile") {
        const long n = std::stol(field(line, "n"));
        layers::profiler prof;
        {
          layers::profile_session on(prof);
          for (long i = 0; i < n; ++i) step();
        }
        prof.print(stderr, n);
        std::cout << "{\"ok\": true}" << std::endl;
      } else if (cmd == "embed") {
        Tensor<float> in({batch, 3, s, s}), out;
        read_raw(field(line, "input"), in);
        e.embed(in, out);
        write_raw(field(line, "output"), out);
        std::cout << "{\"ok\": true}" << std::endl;
      } else {
        throw argument_error("unknown command '" + cmd + "'");
      }
    } catch (const std::exception& err) {
      std::string msg = err.what();
      for (auto& c : msg)
        if (c == '"' || c == '\\') c = '\'';
      std::cout << "{\"error\": \"" << msg << "\"}" << std::endl;
    }
  }
  return 0;
} catch (const std::exception& err) {
  std::fprintf(stderr, "facenet_timer: %s\n", err.what());
  return 1;
}
