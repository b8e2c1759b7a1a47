// Optimizer base: a list of named (value, grad) tensor handles updated in place with PyTorch's
// update rules, L2 weight decay folded into the gradient (torch's weight_decay), freezing by name
// prefix, and state export/import through io::tensor_map for bit-exact resume.
//
// Updates are elementwise, so splitting a tensor over threads never changes a single bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/io/tensor_map.hpp"

namespace facenet::optim {

// value and grad are handles sharing the model's storage.
struct parameter {
  std::string name;
  Tensor<float> value, grad;
  bool frozen = false;
  bool decay = true;  // weight decay applies (off for e.g. biases and BN shifts if the caller wants)
};

inline bool has_prefix(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

inline std::string format_double(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

class optimizer {
 public:
  optimizer(std::vector<parameter> params, double lr, double weight_decay) : params_(std::move(params)), lr_(lr), weight_decay_(weight_decay) {
    FACENET_CHECK(lr >= 0 && std::isfinite(lr), argument_error, "optimizer: learning rate must be finite and >= 0, got " + format_double(lr));
    FACENET_CHECK(weight_decay >= 0, argument_error, "optimizer: negative weight decay " + format_double(weight_decay));
    for (const parameter& p : params_) {
      // Layers allocate gradients at the first backward; a buffer made here would not be theirs.
      FACENET_CHECK(!p.grad.empty() || p.value.empty(), argument_error,
                    "optimizer: parameter '" + p.name +
                        "' has no gradient buffer yet (call layers::allocate_gradients on the model's parameters first)");
      FACENET_CHECK(p.value.shape() == p.grad.shape(), shape_error,
                    "optimizer: parameter '" + p.name + "' has value " + p.value.shape().str() + " but grad " + p.grad.shape().str());
      p.value.require_contiguous(("optimizer: parameter " + p.name).c_str());
      p.grad.require_contiguous(("optimizer: gradient " + p.name).c_str());
      for (const parameter& q : params_)
        FACENET_CHECK(&p == &q || p.name != q.name, argument_error, "optimizer: duplicate parameter name '" + p.name + "'");
    }
    slots_.resize(params_.size());
  }
  virtual ~optimizer() = default;
  optimizer(const optimizer&) = delete;
  optimizer& operator=(const optimizer&) = delete;

  virtual const char* type() const = 0;

  // One update of every trainable parameter from its current gradient.
  void step() {
    for (std::size_t i = 0; i < params_.size(); ++i) {
      parameter& p = params_[i];
      if (p.frozen) continue;
      slot& s = slots_[i];
      if (s.buffers.empty()) {
        for (std::size_t b = 0; b < buffer_names().size(); ++b) s.buffers.emplace_back(p.value.shape());
        init_buffers(s);
      }
      ++s.step;
      const float wd = p.decay ? static_cast<float>(weight_decay_) : 0.0f;
      float* w = p.value.data();
      const float* g = p.grad.data();
      const std::int64_t n = p.value.numel(), chunk = 1 << 14;
      parallel::parallel_for(0, (n + chunk - 1) / chunk, [&](std::int64_t c) {
        const std::int64_t begin = c * chunk, end = std::min(n, begin + chunk);
        update(s, w, g, wd, begin, end);
      });
    }
    ++steps_;
  }

  void zero_grad() {
    for (parameter& p : params_) p.grad.zero();
  }

  double lr() const noexcept { return lr_; }
  void set_lr(double lr) {
    FACENET_CHECK(lr >= 0 && std::isfinite(lr), argument_error, "optimizer: learning rate must be finite and >= 0, got " + format_double(lr));
    lr_ = lr;
  }
  double weight_decay() const noexcept { return weight_decay_; }
  std::int64_t steps() const noexcept { return steps_; }

  // Freezing keeps a parameter's state as it was; unfreezing resumes from it.
  std::size_t freeze(const std::string& prefix) { return set_flag(prefix, &parameter::frozen, true); }
  std::size_t unfreeze(const std::string& prefix) { return set_flag(prefix, &parameter::frozen, false); }
  std::size_t exclude_from_weight_decay(const std::string& prefix) { return set_flag(prefix, &parameter::decay, false); }
  bool frozen(const std::string& name) const { return params_[index_of(name)].frozen; }
  std::size_t trainable_count() const {
    std::size_t n = 0;
    for (const parameter& p : params_) n += !p.frozen;
    return n;
  }

  std::vector<parameter>& parameters() noexcept { return params_; }
  const std::vector<parameter>& parameters() const noexcept { return params_; }

  // Tensors "<param>/<buffer>" plus metadata: optimizer type, step counts, learning rate.
  io::tensor_map export_state() const {
    io::tensor_map m;
    m.metadata["optimizer"] = type();
    m.metadata["optimizer.steps"] = std::to_string(steps_);
    m.metadata["optimizer.lr"] = format_double(lr_);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const slot& s = slots_[i];
      if (s.step == 0) continue;
      m.metadata["optimizer.step/" + params_[i].name] = std::to_string(s.step);
      for (std::size_t b = 0; b < s.buffers.size(); ++b) m.add(params_[i].name + "/" + buffer_names()[b], s.buffers[b].clone());
    }
    return m;
  }

  void import_state(const io::tensor_map& m) {
    const auto type_it = m.metadata.find("optimizer");
    FACENET_CHECK(type_it != m.metadata.end() && type_it->second == type(), format_error,
                  std::string("optimizer state: expected type '") + type() + "', found '" +
                      (type_it == m.metadata.end() ? std::string("none") : type_it->second) + "'");
    std::vector<slot> slots(params_.size());
    std::size_t used = 0;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const auto step_it = m.metadata.find("optimizer.step/" + params_[i].name);
      if (step_it == m.metadata.end()) continue;
      slots[i].step = parse_int(step_it->second, "optimizer.step/" + params_[i].name);
      for (const std::string& b : buffer_names()) {
        const std::string key = params_[i].name + "/" + b;
        FACENET_CHECK(m.contains(key), format_error, "optimizer state: missing tensor '" + key + "'");
        check_shape(m.at(key), params_[i].value.shape(), "optimizer state '" + key + "'");
        slots[i].buffers.push_back(m.at(key).clone());
        ++used;
      }
    }
    FACENET_CHECK(used == m.size(), format_error,
                  "optimizer state: " + std::to_string(m.size() - used) + " tensors name no parameter of this model");
    steps_ = parse_int(metadata_or(m, "optimizer.steps"), "optimizer.steps");
    lr_ = parse_double(metadata_or(m, "optimizer.lr"), "optimizer.lr");
    slots_ = std::move(slots);
  }

 protected:
  struct slot {
    std::vector<Tensor<float>> buffers;  // in buffer_names() order
    std::int64_t step = 0;               // updates this parameter has received
  };
  virtual const std::vector<std::string>& buffer_names() const = 0;
  // Updates elements [begin, end) of one parameter; wd is the weight decay to fold into g.
  virtual void update(slot& s, float* w, const float* g, float wd, std::int64_t begin, std::int64_t end) = 0;

  // Called once per parameter when its zero-filled buffers are created.
  virtual void init_buffers(slot&) {}

  static float f(double v) noexcept { return static_cast<float>(v); }

 private:
  std::size_t set_flag(const std::string& prefix, bool parameter::*flag, bool value) {
    std::size_t n = 0;
    for (parameter& p : params_)
      if (has_prefix(p.name, prefix)) p.*flag = value, ++n;
    FACENET_CHECK(n > 0, argument_error, "optimizer: no parameter name starts with '" + prefix + "'");
    return n;
  }
  std::size_t index_of(const std::string& name) const {
    for (std::size_t i = 0; i < params_.size(); ++i)
      if (params_[i].name == name) return i;
    throw argument_error("optimizer: no parameter named '" + name + "'");
  }
  static std::string metadata_or(const io::tensor_map& m, const std::string& key) {
    const auto it = m.metadata.find(key);
    FACENET_CHECK(it != m.metadata.end(), format_error, "optimizer state: missing metadata '" + key + "'");
    return it->second;
  }
  static std::int64_t parse_int(const std::string& s, const std::string& what) {
    try {
      std::size_t used = 0;
      const long long v = std::stoll(s, &used);
      if (used == s.size() && v >= 0) return v;
    } catch (const std::logic_error&) {
    }
    throw format_error("optimizer state: '" + what + "' is not a step count: '" + s + "'");
  }

  static double parse_double(const std::string& s, const std::string& what) {
    try {
      std::size_t used = 0;
      const double v = std::stod(s, &used);
      if (used == s.size()) return v;
    } catch (const std::logic_error&) {
    }
    throw format_error("optimizer state: '" + what + "' is not a number: '" + s + "'");
  }

  std::vector<parameter> params_;
  std::vector<slot> slots_;
  double lr_, weight_decay_;
  std::int64_t steps_ = 0;
};

}  // namespace facenet::optim
