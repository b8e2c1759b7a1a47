// Per-layer profile of a network's passes: wall time, FLOPs and share of every module that a
// sequential or concat runs, as a tree (NN4's inception_3a / 3x3 / conv1, IRv1's repeat_1 / 0 / branch1).
//
//   layers::profiler prof;
//   { layers::profile_session on(prof); embedder.embed(x, y); }   // this thread only
//   prof.print(stdout);
//
// Without an active session the hooks cost one thread-local pointer test per layer call (no clock,
// no allocation). The profiler follows the thread that activated it; the kernels' OpenMP workers run
// inside a timed call and are covered by its wall time. FLOPs are reported by conv2d and linear
// (profile_flops), 2 x multiply-adds, and belong to the innermost open scope.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <tuple>
#include <typeinfo>
#include <utility>
#include <vector>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>

#include <cstdlib>
#endif

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/layers/module.hpp"

namespace facenet::layers {

enum class profile_pass { forward, backward, infer };

inline const char* profile_pass_name(profile_pass p) noexcept {
  switch (p) {
    case profile_pass::forward: return "forward (training)";
    case profile_pass::backward: return "backward";
    case profile_pass::infer: return "inference";
  }
  return "?";
}

// One module in one pass at one place of the tree.
struct profile_node {
  std::string label;   // its state_dict component, or a name derived from its parameters / type
  std::string stem;    // common prefix of its parameter names (strips NN4's flat names in children)
  std::string kind;    // C++ class: basic_conv, pool2d, concat, residual_block, ...
  std::string detail;  // kernel geometry of a conv unit ("3x3 64->192"), else empty
  std::string out;     // output (backward: input-gradient) shape at the first call
  profile_pass pass = profile_pass::infer;
  std::size_t parent = npos;
  int depth = 0;
  long calls = 0;
  double seconds = 0;     // wall time including children
  double self_flops = 0;  // FLOPs reported while this was the innermost scope
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
};

class profiler {
 public:
  using clock = std::chrono::steady_clock;

  // Opens the scope of `key` (a module) under the innermost open one; `describe` fills label, stem,
  // kind and detail the first time this node is seen.
  template <class Describe>
  void enter(const void* key, profile_pass pass, Describe&& describe) {
    const std::size_t parent = stack_.empty() ? profile_node::npos : stack_.back().node;
    const auto id = std::make_tuple(parent, key, static_cast<int>(pass));
    auto it = index_.find(id);
    if (it == index_.end()) {
      profile_node n;
      n.pass = pass;
      n.parent = parent;
      n.depth = parent == profile_node::npos ? 0 : nodes_[parent].depth + 1;
      describe(n, parent == profile_node::npos ? std::string() : nodes_[parent].stem);
      nodes_.push_back(std::move(n));
      it = index_.emplace(id, nodes_.size() - 1).first;
    }
    stack_.push_back({it->second, clock::now()});
  }
  void leave(const shape& out) {
    FACENET_CHECK(!stack_.empty(), argument_error, "profiler: leave() without enter()");
    const open o = stack_.back();
    stack_.pop_back();
    profile_node& n = nodes_[o.node];
    n.seconds += std::chrono::duration<double>(clock::now() - o.start).count();
    if (n.calls++ == 0) n.out = out.str();
  }
  void add_flops(double flops) {
    if (stack_.empty())
      unattributed_flops_ += flops;
    else
      nodes_[stack_.back().node].self_flops += flops;
  }

  const std::vector<profile_node>& nodes() const noexcept { return nodes_; }
  // FLOPs of every node including everything under it (children always follow their parent).
  std::vector<double> subtree_flops() const {
    std::vector<double> f(nodes_.size());
    for (std::size_t i = nodes_.size(); i-- > 0;) {
      f[i] += nodes_[i].self_flops;
      if (nodes_[i].parent != profile_node::npos) f[nodes_[i].parent] += f[i];
    }
    return f;
  }
  // Sum over the top-level nodes of a pass: the time the profiled layers took.
  double total_seconds(profile_pass pass) const { return sum_top(pass, [](const profile_node& n) { return n.seconds; }); }
  double total_flops(profile_pass pass) const {
    const std::vector<double> f = subtree_flops();
    double t = 0;
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      if (nodes_[i].pass == pass && nodes_[i].parent == profile_node::npos) t += f[i];
    return t;
  }
  double unattributed_flops() const noexcept { return unattributed_flops_; }
  bool has(profile_pass pass) const {
    return std::any_of(nodes_.begin(), nodes_.end(), [&](const profile_node& n) { return n.pass == pass; });
  }
  void clear() {
    FACENET_CHECK(stack_.empty(), argument_error, "profiler: clear() inside an open scope");
    nodes_.clear();
    index_.clear();
    unattributed_flops_ = 0;
  }

  // The tree of each pass (time per run, share of the pass, GFLOP/s), then the hottest leaves and
  // the time per kind of work, so the next kernel to improve is the first line of those lists.
  // `runs`: how many times the profiled code ran (times are divided by it).
  void print(std::FILE* out, long runs = 1, std::size_t hottest = 12) const;

 private:
  struct open {
    std::size_t node;
    clock::time_point start;
  };
  template <class F>
  double sum_top(profile_pass pass, F&& f) const {
    double s = 0;
    for (const auto& n : nodes_)
      if (n.pass == pass && n.parent == profile_node::npos) s += f(n);
    return s;
  }
  // Time spent in each node's children, and whether it has any.
  std::vector<double> child_seconds() const {
    std::vector<double> s(nodes_.size());
    for (const auto& n : nodes_)
      if (n.parent != profile_node::npos) s[n.parent] += n.seconds;
    return s;
  }
  std::vector<bool> leaves() const {
    std::vector<bool> leaf(nodes_.size(), true);
    for (const auto& n : nodes_)
      if (n.parent != profile_node::npos) leaf[n.parent] = false;
    return leaf;
  }
  std::string path(std::size_t i) const {
    const profile_node& n = nodes_[i];
    return n.parent == profile_node::npos ? n.label : path(n.parent) + "/" + n.label;
  }
  void print_pass(std::FILE* out, profile_pass pass, long runs, std::size_t hottest) const;

  std::vector<profile_node> nodes_;
  std::map<std::tuple<std::size_t, const void*, int>, std::size_t> index_;
  std::vector<open> stack_;
  double unattributed_flops_ = 0;
};

namespace detail {

inline profiler*& active_profiler_slot() noexcept {
  static thread_local profiler* active = nullptr;
  return active;
}

// "facenet::blocks::basic_conv<float>" -> "basic_conv".
inline std::string short_type_name(const std::type_info& t) {
  std::string name = t.name();
#if __has_include(<cxxabi.h>)
  int status = 0;
  if (char* d = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status)) {
    name = d;
    std::free(d);
  }
#endif
  name = name.substr(0, name.find('<'));
  const std::size_t colon = name.rfind("::");
  return colon == std::string::npos ? name : name.substr(colon + 2);
}

inline std::string trim_to_separator(std::string s) {
  const std::size_t sep = s.find_last_of("_.");
  return sep == std::string::npos ? std::string() : s.substr(0, sep);
}

// Fills what a profile shows for a module: its state_dict component when it has one, otherwise the
// common prefix of its parameter names without the parent's (NN4's flat "inception_3a_3x3_conv1"
// under "inception_3a_3x3" shows as "conv1"), otherwise its type.
template <class T>
void describe_module(profile_node& n, const std::string& parent_stem, const std::string& name, module<T>& m) {
  n.kind = short_type_name(typeid(m));
  std::vector<parameter<T>> params;
  m.collect("", params);
  std::vector<std::string> stems;
  for (const auto& p : params) {
    const std::size_t dot = p.name.rfind('.');
    const std::string s = dot == std::string::npos ? std::string() : p.name.substr(0, dot);
    if (stems.empty() || stems.back() != s) stems.push_back(s);
  }
  std::vector<shape> convs;
  m.conv_kernels(convs);
  if (convs.size() == 1)
    n.detail = std::to_string(convs[0][2]) + "x" + std::to_string(convs[0][3]) + " " + std::to_string(convs[0][1]) +
               "->" + std::to_string(convs[0][0]);
  std::string stem;
  if (!stems.empty()) {
    stem = stems[0];
    for (const auto& s : stems) stem.resize(std::mismatch(stem.begin(), stem.end(), s.begin(), s.end()).first - stem.begin());
    if (stems.size() > 1 && stem != stems[0]) stem = trim_to_separator(stem);
    if (stem.empty() || stem == parent_stem) stem = stems[0];
  }
  n.stem = name.empty() ? stem : std::string();
  if (!name.empty()) {
    n.label = name;
  } else if (stem.empty()) {
    n.label = n.kind;
  } else {
    const std::string prefix = parent_stem.empty() ? std::string() : parent_stem + "_";
    n.label = !prefix.empty() && stem.compare(0, prefix.size(), prefix) == 0 ? stem.substr(prefix.size()) : stem;
  }
}

}  // namespace detail

// Makes `p` the active profiler of this thread while alive (restores the previous one after).
class profile_session {
 public:
  explicit profile_session(profiler& p) : previous_(detail::active_profiler_slot()) { detail::active_profiler_slot() = &p; }
  ~profile_session() { detail::active_profiler_slot() = previous_; }
  profile_session(const profile_session&) = delete;
  profile_session& operator=(const profile_session&) = delete;

 private:
  profiler* previous_;
};

inline profiler* active_profiler() noexcept { return detail::active_profiler_slot(); }

// Counts FLOPs for the innermost open scope (a no-op without an active profiler).
inline void profile_flops(double flops) {
  if (profiler* p = active_profiler()) p->add_flops(flops);
}

// Times one child call: `profile_scope s(name, child, pass, y); child.forward(x, y, ...);` — `out`
// is read when the scope closes (after the call has written it).
template <class T>
class profile_scope {
 public:
  profile_scope(const std::string& name, module<T>& m, profile_pass pass, const Tensor<T>& out)
      : p_(active_profiler()), out_(out) {
    if (p_)
      p_->enter(&m, pass, [&](profile_node& n, const std::string& parent_stem) {
        detail::describe_module(n, parent_stem, name, m);
      });
  }
  ~profile_scope() {
    if (p_) p_->leave(out_.shape());
  }
  profile_scope(const profile_scope&) = delete;
  profile_scope& operator=(const profile_scope&) = delete;

 private:
  profiler* p_;
  const Tensor<T>& out_;
};

// ---------------------------------------------------------------------------------------- report

inline void profiler::print(std::FILE* out, long runs, std::size_t hottest) const {
  FACENET_CHECK(runs >= 1, argument_error, "profiler::print: runs must be >= 1");
  for (profile_pass pass : {profile_pass::infer, profile_pass::forward, profile_pass::backward})
    if (has(pass)) print_pass(out, pass, runs, hottest);
}

inline void profiler::print_pass(std::FILE* out, profile_pass pass, long runs, std::size_t hottest) const {
  const double total = total_seconds(pass), per_run = 1e3 / static_cast<double>(runs);
  const std::vector<double> flops = subtree_flops(), inner = child_seconds();
  const std::vector<bool> leaf = leaves();
  const auto gflops = [&](std::size_t i) { return nodes_[i].seconds > 0 ? flops[i] / nodes_[i].seconds * 1e-9 : 0.0; };
  const auto share = [&](double s) { return total > 0 ? 100.0 * s / total : 0.0; };
  std::fprintf(out, "\n%s: %.3f ms per run in profiled layers, %.3f GFLOP per run, %.1f GFLOP/s\n",
               profile_pass_name(pass), total * per_run, total_flops(pass) * 1e-9 / static_cast<double>(runs),
               total > 0 ? total_flops(pass) / total * 1e-9 : 0.0);
  std::fprintf(out, "%-44s %-16s %-12s %-18s %10s %7s %8s\n", "layer", "kind", "conv", "out", "ms", "share", "GFLOP/s");
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const profile_node& n = nodes_[i];
    if (n.pass != pass) continue;
    const std::string label = std::string(2 * static_cast<std::size_t>(n.depth), ' ') + n.label;
    // A container holding a single conv (NN4's pool -> 1x1 branch) would show that conv's geometry too.
    const std::string conv = leaf[i] ? n.detail : std::string();
    std::fprintf(out, "%-44s %-16s %-12s %-18s %10.3f %6.1f%% %8.1f\n", label.c_str(), n.kind.c_str(), conv.c_str(),
                 n.out.c_str(), n.seconds * per_run, share(n.seconds), gflops(i));
  }

  // Leaves, plus the own time of containers (concatenation, residual add, a block's unlisted conv).
  struct item {
    std::string what, kind;
    double seconds, flops;
  };
  std::vector<item> items;
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    const profile_node& n = nodes_[i];
    if (n.pass != pass) continue;
    const std::string kind = n.kind + (n.detail.empty() ? "" : " " + n.detail.substr(0, n.detail.find(' ')));
    if (leaf[i])
      items.push_back({path(i), kind, n.seconds, flops[i]});
    else
      items.push_back({path(i) + " (own)", n.kind + " (own)", n.seconds - inner[i], n.self_flops});
  }
  std::sort(items.begin(), items.end(), [](const item& a, const item& b) { return a.seconds > b.seconds; });
  std::fprintf(out, "hottest (leaves and containers' own time):\n");
  for (std::size_t i = 0; i < items.size() && i < hottest; ++i)
    std::fprintf(out, "  %6.1f%% %9.3f ms %8.1f GFLOP/s  %s [%s]\n", share(items[i].seconds), items[i].seconds * per_run,
                 items[i].seconds > 0 ? items[i].flops / items[i].seconds * 1e-9 : 0.0, items[i].what.c_str(),
                 items[i].kind.c_str());

  std::map<std::string, item> by_kind;
  for (const auto& it : items) {
    item& k = by_kind.try_emplace(it.kind, item{it.kind, it.kind, 0, 0}).first->second;
    k.seconds += it.seconds;
    k.flops += it.flops;
  }
  std::vector<item> kinds;
  for (auto& kv : by_kind) kinds.push_back(kv.second);
  std::sort(kinds.begin(), kinds.end(), [](const item& a, const item& b) { return a.seconds > b.seconds; });
  std::fprintf(out, "by kind:\n");
  for (const auto& k : kinds)
    std::fprintf(out, "  %6.1f%% %9.3f ms %8.1f GFLOP/s  %s\n", share(k.seconds), k.seconds * per_run,
                 k.seconds > 0 ? k.flops / k.seconds * 1e-9 : 0.0, k.what.c_str());
}

}  // namespace facenet::layers
