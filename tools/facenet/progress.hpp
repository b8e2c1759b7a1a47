// A progress bar on stderr for long runs; silent when stderr is not a terminal unless forced, so
// logs and CI output stay clean.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace facenet::cli {

class progress_bar {
 public:
  progress_bar(std::string label, long total, bool force = false)
      : label_(std::move(label)), total_(total), enabled_(force || isatty(STDERR_FILENO)),
        start_(std::chrono::steady_clock::now()) {}
  ~progress_bar() { finish(); }

  // `extra` is appended after the bar (e.g. "loss 0.183").
  void update(long done, const std::string& extra = "") {
    if (!enabled_) return;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = total_ > 0 ? static_cast<double>(done) / total_ : 0.0;
    const int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(filled, '#');
    bar.resize(width, '.');
    const double eta = done > 0 ? elapsed * (total_ - done) / done : 0.0;
    std::fprintf(stderr, "\r%s [%s] %ld/%ld %.0fs eta %.0fs %s", label_.c_str(), bar.c_str(), done, total_, elapsed, eta,
                 extra.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void finish() {
    if (enabled_ && drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  std::string label_;
  long total_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace facenet::cli
