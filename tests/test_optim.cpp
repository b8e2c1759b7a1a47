// Optimizers, clipping and LR schedules against torch.optim run by Debian's python3 at test time
// (skipped when torch is missing), plus hand-computed steps, freezing, and bit-exact state resume.
#include <cmath>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>

#include "facenet/optim/adagrad.hpp"
#include "facenet/optim/adam.hpp"
#include "facenet/optim/clip.hpp"
#include "facenet/optim/rmsprop.hpp"
#include "facenet/optim/schedule.hpp"
#include "facenet/optim/sgd.hpp"
#include "testing.hpp"

using namespace facenet::optim;
using facenet::Tensor;
namespace fs = std::filesystem;

namespace {

// One interpreter start for every case (importing torch costs seconds): argv is a list of
// "<input file>" and each input's first line is the torch.optim config as a python dict literal.
const char* torch_py = R"PY(
import sys, torch
torch.set_num_threads(1)
def run(path):
    with open(path) as f: cfg_line = f.readline(); toks = f.read().split()
    cfg = eval(cfg_line); name = cfg.pop('type'); clip = cfg.pop('clip', None)
    it = iter(toks); nparam, steps = int(next(it)), int(next(it)); params = []; out = []
    for _ in range(nparam):
        n = int(next(it)); params.append(torch.tensor([float(next(it)) for _ in range(n)], dtype=torch.float32, requires_grad=True))
    opt = getattr(torch.optim, name)(params, **cfg)
    for s in range(steps):
        for p in params: p.grad = torch.tensor([float(next(it)) for _ in range(p.numel())], dtype=torch.float32)
        if clip is not None: out.append('norm %.17g' % float(torch.nn.utils.clip_grad_norm_(params, clip)))
        opt.step()
    out += [' '.join(repr(float(v)) for v in p.detach()) for p in params]
    with open(path + '.out', 'w') as f: f.write('\n'.join(out) + '\n')
def sched(make, n):
    p = torch.zeros(1, requires_grad=True); o = torch.optim.SGD([p], lr=0.1); s = make(o); out = []
    for _ in range(n): out.append(o.param_groups[0]['lr']); o.step(); s.step()
    return ' '.join(repr(v) for v in out)
import warnings; warnings.simplefilter('ignore')
for path in sys.argv[2:]: run(path)
with open(sys.argv[1], 'w') as f:
    f.write(sched(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10, eta_min=1e-3), 11) + '\n')
    f.write(sched(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5), 10) + '\n')
)PY";

struct model {
  std::vector<parameter> params;
  std::vector<std::vector<Tensor<float>>> grads;  // per step, per parameter
};

model make_model(int steps, std::uint32_t seed) {
  model m;
  m.params.push_back({"block1.weight", facenet::testing::random_tensor<float>({3, 5}, seed), Tensor<float>({3, 5})});
  m.params.push_back({"block1.bias", facenet::testing::random_tensor<float>({5}, seed + 1), Tensor<float>({5})});
  m.params.push_back({"head.weight", facenet::testing::random_tensor<float>({2, 3}, seed + 2), Tensor<float>({2, 3})});
  for (int s = 0; s < steps; ++s) {
    m.grads.emplace_back();
    for (std::size_t i = 0; i < m.params.size(); ++i)
      m.grads.back().push_back(facenet::testing::random_tensor<float>(m.params[i].value.shape(), seed + 100 * s + i, -2, 2));
  }
  return m;
}

void load_grads(optimizer& o, const model& m, int s) {
  for (std::size_t i = 0; i < m.grads[s].size(); ++i) o.parameters()[i].grad.copy_from(m.grads[s][i]);
}

struct torch_case {
  std::string cfg;  // torch.optim config, python dict literal ('clip' = max_norm before each step)
  int steps;
  std::uint32_t seed;
};

// Every case compared with torch, by test name.
const std::map<std::string, torch_case>& torch_cases() {
  static const std::map<std::string, torch_case> cases = {
      {"sgd_plain", {"{'type': 'SGD', 'lr': 0.1}", 4, 1}},
      {"sgd_momentum", {"{'type': 'SGD', 'lr': 0.05, 'momentum': 0.9, 'dampening': 0.1, 'weight_decay': 0.01}", 5, 2}},
      {"sgd_nesterov", {"{'type': 'SGD', 'lr': 0.05, 'momentum': 0.9, 'nesterov': True, 'weight_decay': 5e-4}", 5, 3}},
      {"adam", {"{'type': 'Adam', 'lr': 1e-2, 'weight_decay': 5e-4}", 6, 4}},
      {"adam_amsgrad", {"{'type': 'Adam', 'lr': 3e-3, 'betas': (0.8, 0.99), 'eps': 0.1, 'amsgrad': True, 'clip': 1.5}", 6, 5}},
      {"adagrad",
       {"{'type': 'Adagrad', 'lr': 0.1, 'lr_decay': 0.01, 'weight_decay': 1e-3, 'initial_accumulator_value': 0.1}", 5, 6}},
      {"rmsprop_plain", {"{'type': 'RMSprop', 'lr': 1e-2}", 5, 7}},
      {"rmsprop_centered",
       {"{'type': 'RMSprop', 'lr': 1e-2, 'alpha': 0.9, 'eps': 1.0, 'momentum': 0.9, 'centered': True, 'weight_decay': 5e-4}", 5, 8}},
  };
  return cases;
}

struct torch_results {
  bool available = false;
  std::map<std::string, std::vector<std::string>> lines;  // per case
  std::vector<std::string> schedules;                     // cosine, step
};

// The text torch reads for one case: config line, then initial values and every step's gradients.
std::string case_input(const torch_case& c) {
  const model m = make_model(c.steps, c.seed);
  std::ostringstream in;
  in.precision(9);
  in << c.cfg << '\n' << m.params.size() << ' ' << m.grads.size() << '\n';
  for (const parameter& p : m.params) {
    in << p.value.numel();
    for (float v : p.value) in << ' ' << v;
    in << '\n';
  }
  for (const auto& step : m.grads)
    for (const auto& g : step) {
      for (float v : g) in << v << ' ';
      in << '\n';
    }
  return in.str();
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::vector<std::string> lines;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

// Runs torch once for all cases. gtest_discover_tests starts one process per test, so the outputs
// are cached in the build tree under a hash of everything that feeds them.
const torch_results& torch_reference() {
  static const torch_results results = [] {
    torch_results r;
    if (!fs::exists("/usr/bin/python3")) return r;
    std::string key = torch_py;
    for (const auto& [name, c] : torch_cases()) key += name + case_input(c);
#ifdef FACENET_BINARY_DIR
    const fs::path root = fs::path(FACENET_BINARY_DIR) / "test_cache";
#else
    const fs::path root = fs::temp_directory_path();
#endif
    const fs::path dir = root / ("optim_torch_" + std::to_string(std::hash<std::string>{}(key)));
    if (!fs::exists(dir / "done")) {
      const fs::path tmp = dir.string() + "." + std::to_string(::getpid());
      fs::create_directories(tmp);
      std::ofstream(tmp / "t.py") << torch_py;
      std::string cmd = "/usr/bin/python3 " + (tmp / "t.py").string() + " " + (tmp / "sched.out").string();
      for (const auto& [name, c] : torch_cases()) {
        std::ofstream(tmp / name) << case_input(c);
        cmd += " " + (tmp / name).string();
      }
      const bool ok = std::system((cmd + " > /dev/null 2>&1").c_str()) == 0;
      if (ok) std::ofstream(tmp / "done") << "ok\n";
      std::error_code ec;
      if (ok) fs::rename(tmp, dir, ec);  // another process may have won the race: fine, same content
      if (ok && ec) fs::remove_all(tmp);
      if (!ok) {
        fs::remove_all(tmp);
        return r;
      }
    }
    r.available = true;
    for (const auto& [name, c] : torch_cases()) r.lines[name] = read_lines(dir / (name + ".out"));
    r.schedules = read_lines(dir / "sched.out");
    return r;
  }();
  return results;
}

std::vector<double> numbers(const std::string& line) {
  std::istringstream s(line);
  std::vector<double> v;
  for (double x; s >> x;) v.push_back(x);
  return v;
}

// Replays the case's gradients through `o` and compares every parameter with torch's result.
void expect_matches_torch(optimizer& o, const std::string& name, double clip = 0) {
  const torch_results& ref = torch_reference();
  if (!ref.available) GTEST_SKIP() << "SKIPPED: /usr/bin/python3 with torch not available";
  const model m = make_model(torch_cases().at(name).steps, torch_cases().at(name).seed);
  const std::string& cfg = torch_cases().at(name).cfg;
  const std::vector<std::string>& lines = ref.lines.at(name);
  std::size_t line = 0;
  for (std::size_t s = 0; s < m.grads.size(); ++s) {
    load_grads(o, m, static_cast<int>(s));
    if (clip > 0) {
      const double norm = clip_grad_norm(o, clip);
      ASSERT_EQ(lines[line].rfind("norm ", 0), 0u);
      EXPECT_NEAR(norm, numbers(lines[line++].substr(5))[0], 1e-5 * norm) << "step " << s;
    }
    o.step();
  }
  for (const parameter& p : o.parameters()) {
    ASSERT_LT(line, lines.size());
    const auto ref = numbers(lines[line++]);
    ASSERT_EQ(static_cast<std::int64_t>(ref.size()), p.value.numel()) << p.name;
    for (std::int64_t i = 0; i < p.value.numel(); ++i)
      EXPECT_NEAR(p.value.data()[i], ref[i], 2e-6 * (1 + std::abs(ref[i]))) << p.name << "[" << i << "] " << cfg;
  }
}

std::vector<parameter> clone_params(const model& m) {
  std::vector<parameter> ps;
  for (const parameter& p : m.params) ps.push_back({p.name, p.value.clone(), p.grad.clone(), p.frozen, p.decay});
  return ps;
}

}  // namespace

TEST(optim_torch, sgd_plain) {
  sgd o(clone_params(make_model(0, 1)), {0.1, 0, 0, false, 0});
  expect_matches_torch(o, "sgd_plain");
}
TEST(optim_torch, sgd_momentum_dampening_weight_decay) {
  sgd o(clone_params(make_model(0, 2)), {0.05, 0.9, 0.1, false, 0.01});
  expect_matches_torch(o, "sgd_momentum");
}
TEST(optim_torch, sgd_nesterov) {
  sgd o(clone_params(make_model(0, 3)), {0.05, 0.9, 0, true, 5e-4});
  expect_matches_torch(o, "sgd_nesterov");
}
TEST(optim_torch, adam) {
  adam o(clone_params(make_model(0, 4)), {1e-2, 0.9, 0.999, 1e-8, 5e-4, false});
  expect_matches_torch(o, "adam");
}
TEST(optim_torch, adam_amsgrad_with_clipping) {
  adam o(clone_params(make_model(0, 5)), {3e-3, 0.8, 0.99, 0.1, 0.0, true});
  expect_matches_torch(o, "adam_amsgrad", 1.5);
}
TEST(optim_torch, adagrad) {
  adagrad o(clone_params(make_model(0, 6)), {0.1, 0.01, 1e-3, 0.1, 1e-10});
  expect_matches_torch(o, "adagrad");
}
TEST(optim_torch, rmsprop_plain) {
  rmsprop o(clone_params(make_model(0, 7)), {1e-2, 0.99, 1e-8, 0, false, 0});
  expect_matches_torch(o, "rmsprop_plain");
}
TEST(optim_torch, rmsprop_centered_momentum) {
  rmsprop o(clone_params(make_model(0, 8)), {1e-2, 0.9, 1.0, 0.9, true, 5e-4});
  expect_matches_torch(o, "rmsprop_centered");
}

TEST(optim, sgd_hand_computed) {
  Tensor<float> w = Tensor<float>::full({2}, 1.0f), g = Tensor<float>::full({2}, 0.5f);
  sgd o({{"w", w, g}}, {0.1, 0.9, 0, false, 0.0});
  o.step();  // buf = 0.5, w = 1 - 0.05
  EXPECT_FLOAT_EQ(w(0), 0.95f);
  o.step();  // buf = 0.45 + 0.5 = 0.95, w = 0.95 - 0.095
  EXPECT_FLOAT_EQ(w(1), 0.855f);
  EXPECT_EQ(o.steps(), 2);
}

TEST(optim, adam_first_step_moves_by_lr) {
  // With bias correction the first Adam step is lr * g / (|g| + eps) ~ lr * sign(g).
  Tensor<float> w({3}), g({3});
  g(0) = 4, g(1) = -0.001f, g(2) = 0;
  adam o({{"w", w, g}}, {1e-3, 0.9, 0.999, 1e-8, 0.0, false});
  o.step();
  EXPECT_NEAR(w(0), -1e-3, 1e-9);
  EXPECT_NEAR(w(1), 1e-3 * 1e-3 / (1e-3 + 1e-8), 1e-10);
  EXPECT_EQ(w(2), 0.0f);
}

TEST(optim, freeze_by_prefix_skips_updates_and_state) {
  const model m = make_model(3, 9);
  adam o(clone_params(m), {});
  EXPECT_EQ(o.freeze("block1."), 2u);
  EXPECT_EQ(o.trainable_count(), 1u);
  for (int s = 0; s < 3; ++s) load_grads(o, m, s), o.step();
  EXPECT_EQ(facenet::testing::max_abs_diff(o.parameters()[0].value, m.params[0].value), 0.0);
  EXPECT_GT(facenet::testing::max_abs_diff(o.parameters()[2].value, m.params[2].value), 0.0);
  const auto state = o.export_state();
  EXPECT_FALSE(state.contains("block1.weight/exp_avg"));
  EXPECT_TRUE(state.contains("head.weight/exp_avg"));
  o.unfreeze("block1");
  EXPECT_FALSE(o.frozen("block1.bias"));
  EXPECT_THROW(o.freeze("nothing"), facenet::argument_error);
}

TEST(optim, weight_decay_exclusion) {
  Tensor<float> w = Tensor<float>::full({1}, 2.0f), b = Tensor<float>::full({1}, 2.0f), gw({1}), gb({1});
  sgd o({{"conv.weight", w, gw}, {"conv.bias", b, gb}}, {0.5, 0, 0, false, 0.1});
  o.exclude_from_weight_decay("conv.bias");
  o.step();
  EXPECT_FLOAT_EQ(w(0), 2.0f - 0.5f * 0.2f);
  EXPECT_FLOAT_EQ(b(0), 2.0f);
}

class optim_resume : public ::testing::TestWithParam<std::string> {};

TEST_P(optim_resume, export_import_is_bit_exact) {
  const model m = make_model(8, 10);
  auto make = [&](std::vector<parameter> ps) -> std::unique_ptr<optimizer> {
    const std::string t = GetParam();
    if (t == "sgd") return std::make_unique<sgd>(std::move(ps), sgd_options{0.05, 0.9, 0, true, 5e-4});
    if (t == "adam") return std::make_unique<adam>(std::move(ps), adam_options{});
    if (t == "adagrad") return std::make_unique<adagrad>(std::move(ps), adagrad_options{});
    return std::make_unique<rmsprop>(std::move(ps), rmsprop_options{1e-2, 0.9, 1e-8, 0.9, true, 5e-4});
  };
  auto straight = make(clone_params(m));
  for (int s = 0; s < 8; ++s) load_grads(*straight, m, s), straight->step();

  auto first = make(clone_params(m));
  for (int s = 0; s < 4; ++s) load_grads(*first, m, s), first->step();
  const auto state = first->export_state();
  std::vector<parameter> resumed_params;
  for (const parameter& p : first->parameters()) resumed_params.push_back({p.name, p.value.clone(), Tensor<float>(p.value.shape())});
  auto second = make(std::move(resumed_params));
  second->import_state(state);
  EXPECT_EQ(second->steps(), 4);
  for (int s = 4; s < 8; ++s) load_grads(*second, m, s), second->step();
  for (std::size_t i = 0; i < m.params.size(); ++i)
    EXPECT_EQ(0, std::memcmp(second->parameters()[i].value.data(), straight->parameters()[i].value.data(),
                             sizeof(float) * m.params[i].value.numel()))
        << m.params[i].name;
}

INSTANTIATE_TEST_SUITE_P(all, optim_resume, ::testing::Values("sgd", "adam", "adagrad", "rmsprop"));

TEST(optim, import_rejects_mismatched_state) {
  const model m = make_model(1, 11);
  adam a(clone_params(m), {});
  load_grads(a, m, 0);
  a.step();
  auto state = a.export_state();
  sgd s(clone_params(m), {0.1, 0.9, 0, false, 0});
  EXPECT_THROW(s.import_state(state), facenet::format_error);  // wrong type
  std::vector<parameter> other = clone_params(m);
  other[0].value = Tensor<float>({4, 4}), other[0].grad = Tensor<float>({4, 4});
  adam b(std::move(other), {});
  EXPECT_THROW(b.import_state(state), facenet::shape_error);
  state.add("ghost.weight/exp_avg", Tensor<float>({1}));
  adam c(clone_params(m), {});
  EXPECT_THROW(c.import_state(state), facenet::format_error);
}

TEST(optim, rejects_bad_configuration) {
  const model m = make_model(1, 12);
  EXPECT_THROW(sgd(clone_params(m), {-1.0, 0, 0, false, 0}), facenet::argument_error);
  EXPECT_THROW(sgd(clone_params(m), {0.1, 0, 0, true, 0}), facenet::argument_error);
  EXPECT_THROW(adam(clone_params(m), {1e-3, 1.0, 0.999, 1e-8, 0, false}), facenet::argument_error);
  std::vector<parameter> bad = clone_params(m);
  bad[0].grad = Tensor<float>({2});
  EXPECT_THROW(sgd(std::move(bad), {}), facenet::shape_error);
  std::vector<parameter> dup = clone_params(m);
  dup[1].name = dup[0].name;
  EXPECT_THROW(sgd(std::move(dup), {}), facenet::argument_error);
}

TEST(optim, clip_and_finiteness) {
  Tensor<float> a({2}), b({1}), ga({2}), gb({1});
  ga(0) = 3, ga(1) = 0, gb(0) = 4;  // global norm 5
  std::vector<parameter> ps = {{"a", a, ga}, {"b", b, gb}};
  EXPECT_DOUBLE_EQ(clip_grad_norm(ps, 10.0), 5.0);
  EXPECT_EQ(ga(0), 3.0f);  // under the limit: untouched
  EXPECT_NEAR(clip_grad_norm(ps, 1.0), 5.0, 1e-12);
  EXPECT_NEAR(ga(0), 0.6f, 1e-6);
  EXPECT_NEAR(gb(0), 0.8f, 1e-6);
  check_finite_gradients(ps);
  gb(0) = std::nanf("");
  try {
    check_finite_gradients(ps, "step 17");
    ADD_FAILURE() << "expected numeric_error";
  } catch (const facenet::numeric_error& e) {
    EXPECT_NE(std::string(e.what()).find("step 17: gradient of 'b' is NaN"), std::string::npos) << e.what();
  }
  EXPECT_THROW(clip_grad_norm(ps, 1.0), facenet::numeric_error);
  EXPECT_THROW(clip_grad_norm(ps, 0.0), facenet::argument_error);
}

TEST(schedule, cosine_and_step_match_torch) {
  const torch_results& ref = torch_reference();
  if (!ref.available || ref.schedules.size() != 2) GTEST_SKIP() << "SKIPPED: /usr/bin/python3 with torch not available";
  const auto cos_ref = numbers(ref.schedules[0]), step_ref = numbers(ref.schedules[1]);
  ASSERT_EQ(cos_ref.size(), 11u);
  const lr_schedule c = cosine_schedule(0.1, 10, 1e-3);
  for (std::size_t i = 0; i < cos_ref.size(); ++i) EXPECT_NEAR(c.lr(static_cast<std::int64_t>(i)), cos_ref[i], 1e-12) << i;
  const lr_schedule s = step_schedule(0.1, 3, 0.5);
  for (std::size_t i = 0; i < step_ref.size(); ++i) EXPECT_NEAR(s.lr(static_cast<std::int64_t>(i)), step_ref[i], 1e-15) << i;
}

TEST(schedule, warmup_then_cosine) {
  const lr_schedule s = cosine_schedule(1e-3, 110, 0, 10);
  EXPECT_DOUBLE_EQ(s.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(5), 0.5e-3);
  EXPECT_DOUBLE_EQ(s.lr(10), 1e-3);
  EXPECT_NEAR(s.lr(60), 0.5e-3, 1e-15);
  EXPECT_NEAR(s.lr(110), 0.0, 1e-18);
  EXPECT_THROW(cosine_schedule(1e-3, 10, 0, 10), facenet::argument_error);
  EXPECT_DOUBLE_EQ(constant_schedule(0.3).lr(1000), 0.3);
}

TEST(schedule, davidsandberg_schedule_file) {
  std::istringstream text("# Learning rate schedule\n# Maps an epoch number to a learning rate\n0:  0.05\n60: 0.005  # decay\n\n80: 0.0005\n91: -1\n");
  const lr_schedule s = parse_lr_schedule(text, "schedule.txt");
  EXPECT_DOUBLE_EQ(s.lr(0, 0), 0.05);
  EXPECT_DOUBLE_EQ(s.lr(0, 59), 0.05);
  EXPECT_DOUBLE_EQ(s.lr(0, 60), 0.005);
  EXPECT_DOUBLE_EQ(s.lr(0, 90), 0.0005);
  EXPECT_FALSE(s.stop(0, 90));
  EXPECT_TRUE(s.stop(0, 91));
  EXPECT_TRUE(s.stop(0, 500));
  std::istringstream dash("0: 0.1\n3: -\n");
  EXPECT_TRUE(parse_lr_schedule(dash, "d").stop(0, 3));
  std::istringstream late("5: 0.1\n");
  EXPECT_THROW(parse_lr_schedule(late, "late").lr(0, 2), facenet::argument_error);
  for (const char* bad : {"0 0.1\n", "x: 0.1\n", "0: abc\n", "3: 0.1\n1: 0.2\n", "# only comments\n", "0: 0.1 0.2\n"}) {
    std::istringstream b(bad);
    EXPECT_THROW(parse_lr_schedule(b, "bad.txt"), facenet::format_error) << bad;
  }
  EXPECT_THROW(read_lr_schedule_file("/nonexistent/schedule.txt"), facenet::io_error);
}
