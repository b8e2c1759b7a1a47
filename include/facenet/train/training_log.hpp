// Per-step training records and their CSV file. A resumed run rewrites the file keeping only the
// rows before the resume step, so a crash between checkpoint and log never duplicates steps.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/atomic_file.hpp"

namespace facenet::train {

struct step_record {
  std::int64_t step = 0;  // 0-based optimizer step
  std::int64_t epoch = 0;
  double lr = 0;
  double loss = 0;
  double active_fraction = 0;  // triplets with non-zero loss (softmax: batch accuracy)
  double mean_distance = 0;    // mean off-diagonal squared embedding distance
  bool collapsed = false;
  double images_per_second = 0;
  double elapsed_seconds = 0;
};

struct eval_record {
  std::int64_t step = 0;
  double accuracy = 0, val = 0, auc = 0, eer = 0;
  std::vector<double> fpr, tpr;
};

class training_log {
 public:
  static constexpr const char* header = "step,epoch,lr,loss,active_fraction,mean_distance,collapsed,images_per_second,elapsed_seconds";

  // Empty path = keep records in memory only. With first_step > 0, rows of earlier steps already in
  // the file are kept and later ones dropped.
  explicit training_log(std::string csv_path = "", std::int64_t first_step = 0) : path_(std::move(csv_path)) {
    if (path_.empty()) return;
    // The kept rows replace the file atomically: a kill during a resume must not lose them.
    std::string text = std::string(header) + '\n';
    if (first_step > 0)
      for (const std::string& r : rows_before(path_, first_step)) text += r + '\n';
    io::write_file_atomically(path_, text);
    out_.open(path_, std::ios::app);
    FACENET_CHECK(out_.good(), io_error, "cannot append to training log '" + path_ + "'");
  }

  void add(const step_record& r) {
    steps_.push_back(r);
    if (!out_.is_open()) return;
    out_ << format_row(r) << '\n';
    out_.flush();
    FACENET_CHECK(out_.good(), io_error, "cannot append to training log '" + path_ + "'");
  }
  void add(const eval_record& r) { evals_.push_back(r); }

  const std::vector<step_record>& steps() const noexcept { return steps_; }
  const std::vector<eval_record>& evaluations() const noexcept { return evals_; }

  static std::string format_row(const step_record& r) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%lld,%lld,%.9g,%.9g,%.6f,%.6f,%d,%.3f,%.3f", static_cast<long long>(r.step),
                  static_cast<long long>(r.epoch), r.lr, r.loss, r.active_fraction, r.mean_distance, r.collapsed ? 1 : 0,
                  r.images_per_second, r.elapsed_seconds);
    return buf;
  }

 private:
  static std::vector<std::string> rows_before(const std::string& path, std::int64_t first_step) {
    std::vector<std::string> rows;
    std::ifstream in(path);
    std::string line;
    if (!std::getline(in, line)) return rows;  // missing or empty file: nothing to keep
    while (std::getline(in, line)) {
      long long step = -1;
      if (std::sscanf(line.c_str(), "%lld,", &step) == 1 && step >= 0 && step < first_step) rows.push_back(line);
    }
    return rows;
  }

  std::string path_;
  std::ofstream out_;
  std::vector<step_record> steps_;
  std::vector<eval_record> evals_;
};

}  // namespace facenet::train
