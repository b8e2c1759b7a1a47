// Learning-rate schedules, evaluated in closed form from (step, epoch) so a resumed run gets the
// same rate as an uninterrupted one:
//   constant, cosine annealing (torch CosineAnnealingLR closed form; the default, from 1e-3),
//   step decay (torch StepLR), an optional linear warm-up in front of any of them, and
//   davidsandberg's schedule file: "epoch: lr" lines, '#' comments, lr "-" or <= 0 meaning stop.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"

namespace facenet::optim {

enum class schedule_kind { constant, cosine, step, file };

struct lr_schedule {
  schedule_kind kind = schedule_kind::cosine;
  double base_lr = 1e-3;
  std::int64_t total_steps = 0;  // cosine: the annealing period T_max, in steps
  double min_lr = 0;             // cosine: eta_min
  std::int64_t step_size = 1;    // step: decay every step_size steps
  double gamma = 0.1;            // step: decay factor
  std::int64_t warmup_steps = 0;
  double warmup_start_factor = 0;  // warm-up rises linearly from base_lr * factor
  std::vector<std::pair<std::int64_t, double>> epochs;  // file: (first epoch, lr), ascending

  // The rate for optimizer step `step` (0-based) in epoch `epoch`; <= 0 from a file means stop.
  double lr(std::int64_t step, std::int64_t epoch = 0) const {
    FACENET_CHECK(step >= 0 && epoch >= 0, argument_error, "lr_schedule: negative step or epoch");
    if (kind == schedule_kind::file) return from_file(epoch);
    if (step < warmup_steps)
      return base_lr * (warmup_start_factor + (1 - warmup_start_factor) * static_cast<double>(step) / static_cast<double>(warmup_steps));
    const std::int64_t t = step - warmup_steps;
    switch (kind) {
      case schedule_kind::cosine: {
        const std::int64_t period = total_steps - warmup_steps;
        FACENET_CHECK(period > 0, argument_error, "lr_schedule: cosine needs total_steps > warmup_steps");
        return min_lr + (base_lr - min_lr) * (1 + std::cos(M_PI * static_cast<double>(t) / static_cast<double>(period))) / 2;
      }
      case schedule_kind::step:
        FACENET_CHECK(step_size > 0, argument_error, "lr_schedule: step_size must be > 0");
        return base_lr * std::pow(gamma, static_cast<double>(t / step_size));
      default:
        return base_lr;
    }
  }
  bool stop(std::int64_t step, std::int64_t epoch) const { return kind == schedule_kind::file && lr(step, epoch) <= 0; }

 private:
  // davidsandberg get_learning_rate_from_file: the last entry whose epoch is <= epoch (past the
  // last entry, its rate holds).
  double from_file(std::int64_t epoch) const {
    FACENET_CHECK(!epochs.empty() && epochs.front().first <= epoch, argument_error,
                  "lr_schedule: the schedule file has no rate for epoch " + std::to_string(epoch));
    double r = epochs.front().second;
    for (const auto& [e, v] : epochs)
      if (e <= epoch) r = v;
    return r;
  }
};

inline lr_schedule constant_schedule(double lr) {
  lr_schedule s;
  s.kind = schedule_kind::constant;
  s.base_lr = lr;
  return s;
}
inline lr_schedule cosine_schedule(double base_lr, std::int64_t total_steps, double min_lr = 0, std::int64_t warmup_steps = 0) {
  FACENET_CHECK(total_steps > warmup_steps && warmup_steps >= 0, argument_error,
                "cosine_schedule: need total_steps (" + std::to_string(total_steps) + ") > warmup_steps (" +
                    std::to_string(warmup_steps) + ") >= 0");
  lr_schedule s;
  s.kind = schedule_kind::cosine;
  s.base_lr = base_lr, s.total_steps = total_steps, s.min_lr = min_lr, s.warmup_steps = warmup_steps;
  return s;
}
inline lr_schedule step_schedule(double base_lr, std::int64_t step_size, double gamma, std::int64_t warmup_steps = 0) {
  FACENET_CHECK(step_size > 0, argument_error, "step_schedule: step_size must be > 0");
  lr_schedule s;
  s.kind = schedule_kind::step;
  s.base_lr = base_lr, s.step_size = step_size, s.gamma = gamma, s.warmup_steps = warmup_steps;
  return s;
}

inline lr_schedule parse_lr_schedule(std::istream& in, const std::string& name) {
  lr_schedule s;
  s.kind = schedule_kind::file;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    line = line.substr(0, line.find('#'));
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = name + ":" + std::to_string(line_no);
    const auto colon = line.find(':');
    FACENET_CHECK(colon != std::string::npos, format_error, where + ": expected 'epoch: lr', got '" + line + "'");
    std::istringstream e(line.substr(0, colon)), v(line.substr(colon + 1));
    std::int64_t epoch = -1;
    std::string lr_text, extra;
    FACENET_CHECK(static_cast<bool>(e >> epoch) && epoch >= 0 && !(e >> extra), format_error,
                  where + ": epoch must be an integer >= 0 in '" + line + "'");
    FACENET_CHECK(static_cast<bool>(v >> lr_text) && !(v >> extra), format_error, where + ": expected one learning rate in '" + line + "'");
    double lr = -1;
    if (lr_text != "-") {
      try {
        std::size_t used = 0;
        lr = std::stod(lr_text, &used);
        FACENET_CHECK(used == lr_text.size(), format_error, where + ": bad learning rate '" + lr_text + "'");
      } catch (const std::logic_error&) {
        throw format_error(where + ": bad learning rate '" + lr_text + "'");
      }
    }
    FACENET_CHECK(s.epochs.empty() || epoch > s.epochs.back().first, format_error,
                  where + ": epochs must increase (" + std::to_string(epoch) + " after " +
                      std::to_string(s.epochs.empty() ? 0 : s.epochs.back().first) + ")");
    s.epochs.emplace_back(epoch, lr);
  }
  FACENET_CHECK(!s.epochs.empty(), format_error, name + ": no 'epoch: lr' entries");
  return s;
}

inline lr_schedule read_lr_schedule_file(const std::string& path) {
  std::ifstream in(path);
  FACENET_CHECK(in.good(), io_error, "cannot open learning-rate schedule '" + path + "'");
  return parse_lr_schedule(in, path);
}

}  // namespace facenet::optim
