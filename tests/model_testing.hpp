// Helpers shared by the layer, block and model tests: random parameters for a module, a
// finite-difference check of every parameter and the input of a module (double), and the PyTorch
// parity fixtures (generated into the build tree by tests/fixtures/make_model_fixtures.py).
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "facenet/io/safetensors.hpp"
#include "facenet/layers/module.hpp"
#include "testing.hpp"

namespace facenet::testing {

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

// Gradient error of one tensor: max |ours - ref| / max(max |ref|, floor). `floor` keeps tensors whose
// exact gradient is 0 (a conv bias right before a training-mode BN) from dividing by round-off.
template <class T>
double gradient_error(const Tensor<T>& ours, const Tensor<float>& ref, double floor) {
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

// Train mode (batch statistics): output, input and parameter gradients of sum(out * r), and the
// running statistics after the step. Each gradient must be within max(grad_tol, slack * the error of
// PyTorch's own float32 run) of the float64 reference (parameter gradients also within param_floor):
// in double that is the plain acceptance bound; in float it admits the digits float32 loses in deep
// train-mode BN stacks (ours lose more than PyTorch's in a few tensors, hence param_floor).
template <class T>
void expect_train_parity(models::model<T>& m, const parity_fixture& f, double out_tol, double grad_tol, double slack,
                         double param_floor = 0) {
  m.load(f.weights);
  const auto bound = [&](const std::string& key) {
    return std::max(grad_tol, slack * static_cast<double>(f.io.at("torch_f32_error." + key).data()[0]));
  };
  Tensor<T> y, dx;
  m.forward(converted<T>(f.io.at("input")), y, true);
  EXPECT_LE(max_abs_diff(y, f.io.at("train_out")), out_tol) << "forward train";
  m.backward(converted<T>(f.io.at("r")), dx);
  EXPECT_LE(gradient_error(dx, f.io.at("grad.input"), 0), bound("grad.input")) << "grad.input";

  double global = 0;
  for (const auto& e : f.io.entries())
    if (e.name.rfind("grad.", 0) == 0)
      for (float v : e.value) global = std::max(global, static_cast<double>(std::abs(v)));
  std::size_t checked = 0, stats = 0;
  for (auto& p : m.parameters()) {
    if (p.grad) {
      const std::string key = "grad." + p.name;
      ASSERT_TRUE(f.io.contains(key)) << key;
      EXPECT_LE(gradient_error(*p.grad, f.io.at(key), 1e-4 * global), std::max(bound(key), param_floor)) << key;
      ++checked;
    } else {
      const std::string key = "after_train." + p.name;
      ASSERT_TRUE(f.io.contains(key)) << key;
      EXPECT_LE(gradient_error(*p.value, f.io.at(key), 1e-3), 1e-4) << key;
      ++stats;
    }
  }
  EXPECT_GT(checked, 0u);
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
