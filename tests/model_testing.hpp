// Helpers shared by the layer, block and model tests: random parameters for a module, a
// finite-difference check of every parameter and the input of a module (double), and the PyTorch
// parity fixtures (generated into the build tree by tests/fixtures/make_model_fixtures.py).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "facenet/io/safetensors.hpp"
#include "facenet/layers/module.hpp"
#include "testing.hpp"

namespace facenet::testing {

// The names of a module's parameters, in collect() order.
template <class T>
std::vector<std::string> names_of(layers::module<T>& m) {
  std::vector<layers::parameter<T>> p;
  m.collect("", p);
  std::vector<std::string> out;
  for (auto& e : p) out.push_back(e.name);
  return out;
}

// Random but well-conditioned values: BN scales near 1 and positive running variances.
template <class T>
void randomize_parameters(layers::module<T>& m, std::uint32_t seed) {
  std::vector<layers::parameter<T>> params;
  m.collect("", params);
  for (auto& p : params) {
    const std::string& n = p.name;
    const auto ends_with = [&](const std::string& s) {
      return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    if (ends_with("running_var"))
      fill_random(*p.value, seed++, 0.5, 1.5);
    else if (p.value->rank() == 1 && ends_with("weight"))
      fill_random(*p.value, seed++, 0.6, 1.4);
    else
      fill_random(*p.value, seed++, -0.5, 0.5);
  }
}

// loss = sum(module(x) * r); checks d loss / d (every parameter, x) against central differences.
template <class M>
void check_module_gradients(M& m, const shape& input_shape, bool training, std::uint32_t seed, double tol = 1e-6,
                            std::int64_t max_checks = 60) {
  Tensor<double> x = random_tensor<double>(input_shape, seed);
  Tensor<double> y, dx;
  m.forward(x, y, training);
  const Tensor<double> r = random_tensor<double>(y.shape(), seed + 1);
  m.backward(r, dx);
  ASSERT_EQ(dx.shape(), x.shape());
  const auto loss = [&] {
    Tensor<double> out;
    m.forward(x, out, training);
    return dot(out, r);
  };
  std::vector<layers::parameter<double>> params;
  m.collect("", params);
  std::vector<Tensor<double>> analytic;
  for (auto& p : params)
    if (p.grad) analytic.push_back(p.grad->clone());
  const Tensor<double> dx_analytic = dx.clone();
  std::size_t k = 0;
  for (auto& p : params)
    if (p.grad) check_gradient(*p.value, analytic[k++], loss, p.name, tol, 1e-6, max_checks);
  check_gradient(x, dx_analytic, loss, "input", tol, 1e-6, max_checks);
}

// Directory holding the parity fixtures, generated on first use (cached by the script's hash).
// Empty with `why` set when they cannot be made (no torch).
inline std::filesystem::path model_fixture_dir(std::string& why) {
#ifdef FACENET_BINARY_DIR
  const std::filesystem::path out = std::filesystem::path(FACENET_BINARY_DIR) / "fixtures" / "models";
#else
  const std::filesystem::path out = std::filesystem::temp_directory_path() / "facenet_model_fixtures";
#endif
  const auto script = source_dir() / "tests" / "fixtures" / "make_model_fixtures.py";
  // ctest runs tests in parallel and each may be the first to need the fixtures: flock makes the
  // others wait for the one generating them (the script then sees its stamp and returns at once).
  std::filesystem::create_directories(out.parent_path());
  const std::string cmd = "flock '" + out.string() + ".lock' /usr/bin/python3 '" + script.string() + "' '" + out.string() + "'";
  const int rc = std::system(cmd.c_str());
  if (rc != 0) {
    why = "fixture generator failed or python3-torch is missing (" + cmd + " exited with " + std::to_string(rc) + ")";
    return {};
  }
  return out;
}

}  // namespace facenet::testing

#define FACENET_REQUIRE_MODEL_FIXTURES(dir_var)                                 \
  std::filesystem::path dir_var;                                                \
  do {                                                                          \
    std::string why_;                                                           \
    dir_var = ::facenet::testing::model_fixture_dir(why_);                      \
    if (dir_var.empty()) GTEST_SKIP() << "SKIPPED: " << why_;                   \
  } while (0)

#include "facenet/models/model.hpp"

namespace facenet::testing {

// Two threads embedding a and b through one embedder at the same time (`rounds` calls each) get
// exactly want_a and want_b.
template <class T>
void expect_concurrent_embeds(const models::embedder<T>& e, const Tensor<T>& a, const Tensor<T>& want_a, const Tensor<T>& b,
                              const Tensor<T>& want_b, int rounds = 1) {
  Tensor<T> ra, rb;
  std::thread t1([&] {
    for (int i = 0; i < rounds; ++i) e.embed(a, ra);
  });
  std::thread t2([&] {
    for (int i = 0; i < rounds; ++i) e.embed(b, rb);
  });
  t1.join();
  t2.join();
  EXPECT_EQ(max_abs_diff(ra, want_a), 0.0);
  EXPECT_EQ(max_abs_diff(rb, want_b), 0.0);
}

// Error of values such as logits or running statistics: max |ours - ref| / max(max |ref|, floor).
template <class T>
double relative_max_error(const Tensor<T>& ours, const Tensor<float>& ref, double floor) {
  double scale = floor;
  for (float v : ref) scale = std::max(scale, static_cast<double>(std::abs(v)));
  return max_abs_diff(ours, ref) / scale;
}

struct parity_fixture {
  io::tensor_map weights, io;
};

inline parity_fixture load_parity_fixture(const std::filesystem::path& dir, const std::string& name) {
  return {io::load_safetensors((dir / (name + ".weights.safetensors")).string()),
          io::load_safetensors((dir / (name + ".io.safetensors")).string())};
}

// Eval mode: the model's forward and an embedder built from it, batch 8 and batch 1, against PyTorch.
inline void expect_eval_parity(models::model<float>& m, const parity_fixture& f, double tol) {
  m.load(f.weights);
  const Tensor<float>& x = f.io.at("input");
  const Tensor<float> x1 = x.batch(0);
  Tensor<float> y;
  m.forward(x, y, false);
  EXPECT_LE(max_abs_diff(y, f.io.at("eval_out")), tol) << "forward eval, batch 8";
  m.forward(x1, y, false);
  EXPECT_LE(max_abs_diff(y, f.io.at("eval_out_1")), tol) << "forward eval, batch 1";

  models::embedder<float> e(m);
  EXPECT_LE(max_abs_diff(e.embed(x), f.io.at("eval_out")), tol) << "embedder, batch 8";
  EXPECT_LE(max_abs_diff(e.embed(x1), f.io.at("eval_out_1")), tol) << "embedder, batch 1";
}

template <class T>
Tensor<T> converted(const Tensor<float>& t) {
  Tensor<T> out = Tensor<T>::uninitialized(t.shape());
  std::transform(t.begin(), t.end(), out.begin(), [](float v) { return static_cast<T>(v); });
  return out;
}

// Gradient error of one tensor against the float64 reference, norm-wise (what "relative error" of a
// gradient means; per-element relative errors are ill-conditioned near zero): ||ours - ref|| and
// max |ours - ref|, both over max(||ref||, floor). The floor judges gradients that are exactly 0 (a
// conv bias before a train-mode BN) against the scale of the model's gradients instead of round-off.
struct normwise_error {
  double normwise = 0, maxabs = 0;
};
template <class T>
normwise_error normwise_error_of(const Tensor<T>& ours, const Tensor<float>& ref, double floor) {
  double diff2 = 0, ref2 = 0, maxabs = 0;
  for (std::int64_t i = 0; i < ref.numel(); ++i) {
    const double d = static_cast<double>(ours.data()[i]) - static_cast<double>(ref.data()[i]);
    diff2 += d * d;
    ref2 += static_cast<double>(ref.data()[i]) * ref.data()[i];
    maxabs = std::max(maxabs, std::abs(d));
  }
  const double scale = std::max(std::sqrt(ref2), floor);
  return {std::sqrt(diff2) / scale, maxabs / scale};
}

// Bounds of expect_train_parity. Every gradient's norm-wise and max-abs error (normwise_error_of,
// floor = 1e-4 x the largest reference gradient norm) must be <= max(grad, torch_band x PyTorch's own
// float32 worst error on this fixture, per metric); gradients named in `kink_free` (reached from the
// loss without crossing a ReLU or max-pool decision) must be <= kink_free_grad.
struct train_bounds {
  double out = 0;
  double grad = 0;
  double torch_band = 0;
  std::vector<std::string> kink_free;
  double kink_free_grad = 0;
};

// Train mode (batch statistics): output, input and parameter gradients of sum(out * r), and the
// running statistics after the step, against the float64 reference.
template <class T>
void expect_train_parity(models::model<T>& m, const parity_fixture& f, const train_bounds& b) {
  m.load(f.weights);
  Tensor<T> y, dx;
  m.forward(converted<T>(f.io.at("input")), y, true);
  EXPECT_LE(max_abs_diff(y, f.io.at("train_out")), b.out) << "forward train";
  m.backward(converted<T>(f.io.at("r")), dx);

  std::vector<std::pair<std::string, const Tensor<T>*>> grads{{"input", &dx}};
  std::size_t stats = 0;
  for (auto& p : m.parameters()) {
    if (p.grad) {
      grads.emplace_back(p.name, p.grad);
      continue;
    }
    const std::string key = "after_train." + p.name;
    ASSERT_TRUE(f.io.contains(key)) << key;
    EXPECT_LE(relative_max_error(*p.value, f.io.at(key), 1e-3), 1e-4) << key;
    ++stats;
  }
  double largest = 0;
  normwise_error torch_worst;
  for (const auto& g : grads) {
    const std::string key = "grad." + g.first;
    ASSERT_TRUE(f.io.contains(key)) << key;
    largest = std::max(largest, std::sqrt(dot(f.io.at(key), f.io.at(key))));
    torch_worst.normwise = std::max(torch_worst.normwise, f.io.at("torch_f32_normwise_error." + key).data()[0] * 1.0);
    torch_worst.maxabs = std::max(torch_worst.maxabs, f.io.at("torch_f32_maxabs_error." + key).data()[0] * 1.0);
  }
  const normwise_error bound{std::max(b.grad, b.torch_band * torch_worst.normwise),
                             std::max(b.grad, b.torch_band * torch_worst.maxabs)};
  normwise_error worst;
  std::string worst_name;
  for (const auto& g : grads) {
    const normwise_error e = normwise_error_of(*g.second, f.io.at("grad." + g.first), 1e-4 * largest);
    const bool strict = std::find(b.kink_free.begin(), b.kink_free.end(), g.first) != b.kink_free.end();
    EXPECT_LE(e.normwise, strict ? b.kink_free_grad : bound.normwise) << "grad." << g.first << " norm-wise";
    EXPECT_LE(e.maxabs, strict ? b.kink_free_grad : bound.maxabs) << "grad." << g.first << " max-abs / norm";
    if (e.normwise > worst.normwise) worst_name = g.first;
    worst.normwise = std::max(worst.normwise, e.normwise);
    worst.maxabs = std::max(worst.maxabs, e.maxabs);
  }
  for (const auto& name : b.kink_free)
    EXPECT_TRUE(std::any_of(grads.begin(), grads.end(), [&](const auto& g) { return g.first == name; })) << name;
  std::cout << "[ INFO     ] " << grads.size() << " gradients, worst norm-wise error " << worst.normwise << " ("
            << worst_name << "), worst max-abs/norm " << worst.maxabs << "; PyTorch float32 worst: norm-wise "
            << torch_worst.normwise << ", max-abs/norm " << torch_worst.maxabs << "\n";
  EXPECT_GT(stats, 0u);
}

// Load must name exactly what is missing, unexpected or mis-shaped.
inline void expect_load_errors_name_the_tensor(models::model<float>& m, const std::string& some_param) {
  io::tensor_map good = m.export_weights();
  const auto message_of = [&](const io::tensor_map& w) -> std::string {
    try {
      m.load(w);
    } catch (const format_error& e) {
      return e.what();
    }
    return "";
  };
  io::tensor_map missing, extra = m.export_weights(), misshaped;
  for (const auto& e : good.entries()) {
    if (e.name != some_param) missing.add(e.name, e.value);
    misshaped.add(e.name, e.name == some_param ? Tensor<float>(shape{e.value.numel() + 1}) : e.value);
  }
  extra.add("bogus.weight", Tensor<float>(shape{2}));
  extra.add("conv.num_batches_tracked", Tensor<float>(shape{}));  // PyTorch counters are ignored
  EXPECT_NE(message_of(missing).find("missing: " + some_param), std::string::npos) << message_of(missing);
  EXPECT_NE(message_of(extra).find("unexpected: bogus.weight"), std::string::npos) << message_of(extra);
  EXPECT_EQ(message_of(extra).find("num_batches_tracked"), std::string::npos);
  EXPECT_NE(message_of(misshaped).find("mis-shaped: " + some_param), std::string::npos) << message_of(misshaped);
  EXPECT_EQ(message_of(good), "");
  // A non-finite weight is refused by name and element, not loaded into NaN embeddings.
  io::tensor_map poisoned;
  for (const auto& e : good.entries()) {
    Tensor<float> v = e.value.clone();
    if (e.name == some_param) v.data()[v.numel() - 1] = std::nanf("");
    poisoned.add(e.name, v);
  }
  try {
    m.load(poisoned);
    ADD_FAILURE() << "a NaN in " << some_param << " was accepted";
  } catch (const numeric_error& e) {
    const std::string expected =
        "'" + some_param + "' holds NaN at element " + std::to_string(good.at(some_param).numel() - 1);
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

}  // namespace facenet::testing
