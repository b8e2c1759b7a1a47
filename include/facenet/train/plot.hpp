// Minimal line plots written as PNG: white canvas, a title, axis labels and min/max tick labels (a
// built-in 3x5 pixel font, so no font dependency), one polyline per series. Enough to watch a loss
// curve or a ROC.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/data/image.hpp"
#include "facenet/data/image_io.hpp"

namespace facenet::train {

struct rgb {
  std::uint8_t r = 0, g = 0, b = 0;
};

struct plot_series {
  std::vector<double> x, y;
  rgb color{31, 119, 180};
};

struct plot_options {
  int width = 640, height = 400;
  // Fixed axis ranges; NaN = fit the data.
  double x_min = std::numeric_limits<double>::quiet_NaN(), x_max = x_min, y_min = x_min, y_max = x_min;
  std::string title, x_label, y_label;  // drawn in capitals; empty = none
};

namespace detail {

constexpr int margin = 40;
constexpr int glyph_scale = 2;

constexpr int line_height = 7 * glyph_scale;

// Rows of 3 bits, top to bottom; letters are drawn as capitals. Other characters leave a space.
inline const std::array<std::uint8_t, 5>* glyph(char c) {
  static const std::string chars = "0123456789.-+ABCDEFGHIJKLMNOPQRSTUVWXYZ:()/%,";
  static const std::array<std::array<std::uint8_t, 5>, 45> rows = {{
      {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7},
      {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}, {0, 0, 0, 0, 2}, {0, 0, 7, 0, 0},
      {0, 2, 7, 2, 0},  // +
      {2, 5, 7, 5, 5}, {6, 5, 6, 5, 6}, {3, 4, 4, 4, 3}, {6, 5, 5, 5, 6}, {7, 4, 6, 4, 7}, {7, 4, 6, 4, 4},  // A-F
      {3, 4, 5, 5, 3}, {5, 5, 7, 5, 5}, {7, 2, 2, 2, 7}, {1, 1, 1, 5, 2}, {5, 5, 6, 5, 5}, {4, 4, 4, 4, 7},  // G-L
      {5, 7, 7, 5, 5}, {6, 5, 5, 5, 5}, {2, 5, 5, 5, 2}, {6, 5, 6, 4, 4}, {2, 5, 5, 6, 3}, {6, 5, 6, 5, 5},  // M-R
      {3, 4, 2, 1, 6}, {7, 2, 2, 2, 2}, {5, 5, 5, 5, 7}, {5, 5, 5, 5, 2}, {5, 5, 7, 7, 5}, {5, 5, 2, 5, 5},  // S-X
      {5, 5, 2, 2, 2}, {7, 1, 2, 4, 7},                                                                      // Y-Z
      {0, 2, 0, 2, 0}, {1, 2, 2, 2, 1}, {4, 2, 2, 2, 4}, {1, 1, 2, 4, 4}, {5, 1, 2, 4, 5}, {0, 0, 0, 2, 4}}};
  const char upper = c >= 'a' && c <= 'z' ? static_cast<char>(c - 'a' + 'A') : c;
  const std::size_t i = chars.find(upper);
  return i == std::string::npos ? nullptr : &rows[i];
}

inline int text_width(const std::string& s) { return static_cast<int>(s.size()) * 4 * glyph_scale; }

class canvas {
 public:
  canvas(int w, int h) : img_(w, h, 3, 255) {}
  void dot(int x, int y, rgb c) {
    if (x < 0 || y < 0 || x >= img_.width || y >= img_.height) return;
    img_.at(y, x, 0) = c.r, img_.at(y, x, 1) = c.g, img_.at(y, x, 2) = c.b;
  }
  // Bresenham, two pixels thick so curves stay visible when downscaled.
  void line(int x0, int y0, int x1, int y1, rgb c) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
      dot(x0, y0, c), dot(x0 + 1, y0, c), dot(x0, y0 + 1, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  void text(int x, int y, const std::string& s, rgb c) {
    for (char ch : s) {
      if (const auto* g = glyph(ch))
        for (int r = 0; r < 5; ++r)
          for (int b = 0; b < 3; ++b)
            if (((*g)[r] >> (2 - b)) & 1)
              for (int k = 0; k < glyph_scale * glyph_scale; ++k) dot(x + b * glyph_scale + k % glyph_scale, y + r * glyph_scale + k / glyph_scale, c);
      x += 4 * glyph_scale;
    }
  }
  const data::image& image() const noexcept { return img_; }

 private:
  data::image img_;
};

inline std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// The data range of one axis, widened when flat so the mapping never divides by zero.
inline std::pair<double, double> axis_range(const std::vector<plot_series>& series, std::vector<double> plot_series::*axis,
                                            double lo, double hi) {
  double dlo = std::numeric_limits<double>::infinity(), dhi = -dlo;
  for (const plot_series& s : series)
    for (double v : s.*axis)
      if (std::isfinite(v)) dlo = std::min(dlo, v), dhi = std::max(dhi, v);
  if (!std::isfinite(dlo)) dlo = 0, dhi = 1;
  if (std::isnan(lo)) lo = dlo;
  if (std::isnan(hi)) hi = dhi;
  if (hi <= lo) hi = lo + 1;
  return {lo, hi};
}

}  // namespace detail

// Renders the series into an RGB image (non-finite points break the line).
inline data::image render_line_plot(const std::vector<plot_series>& series, const plot_options& o = {}) {
  FACENET_CHECK(o.width > 3 * detail::margin && o.height > 3 * detail::margin, argument_error,
                "line plot: canvas " + std::to_string(o.width) + "x" + std::to_string(o.height) + " is too small");
  for (const plot_series& s : series)
    FACENET_CHECK(s.x.size() == s.y.size(), argument_error,
                  "line plot: series has " + std::to_string(s.x.size()) + " x values but " + std::to_string(s.y.size()) + " y values");
  const auto [x0, x1] = detail::axis_range(series, &plot_series::x, o.x_min, o.x_max);
  const auto [y0, y1] = detail::axis_range(series, &plot_series::y, o.y_min, o.y_max);
  const int header_lines = !o.title.empty() + !o.y_label.empty();
  const int left = detail::margin + 16, right = o.width - detail::margin / 2,
            top = detail::margin / 2 + header_lines * detail::line_height, bottom = o.height - detail::margin;
  // Structured bindings are copied in: C++17 lambdas cannot capture them (clang rejects it, GCC allows it).
  const auto px = [&, x0 = x0, x1 = x1](double x) {
    return left + static_cast<int>(std::lround((x - x0) / (x1 - x0) * (right - left)));
  };
  const auto py = [&, y0 = y0, y1 = y1](double y) {
    return bottom - static_cast<int>(std::lround((y - y0) / (y1 - y0) * (bottom - top)));
  };
  detail::canvas c(o.width, o.height);
  const rgb axis{0, 0, 0}, grid{225, 225, 225};
  for (int i = 1; i < 4; ++i) {
    c.line(left + (right - left) * i / 4, top, left + (right - left) * i / 4, bottom, grid);
    c.line(left, top + (bottom - top) * i / 4, right, top + (bottom - top) * i / 4, grid);
  }
  c.line(left, bottom, right, bottom, axis);
  c.line(left, top, left, bottom, axis);
  c.text(left, bottom + 8, detail::tick_label(x0), axis);
  const std::string xmax = detail::tick_label(x1);
  c.text(right - static_cast<int>(xmax.size()) * 8, bottom + 8, xmax, axis);
  c.text(2, bottom - 10, detail::tick_label(y0), axis);
  c.text(2, top, detail::tick_label(y1), axis);
  // Title centred on the first line, the y label above its axis, the x label centred under its axis.
  if (!o.title.empty()) c.text((o.width - detail::text_width(o.title)) / 2, 4, o.title, axis);
  if (!o.y_label.empty()) c.text(left, top - detail::line_height, o.y_label, axis);
  if (!o.x_label.empty()) c.text((left + right - detail::text_width(o.x_label)) / 2, bottom + 8, o.x_label, axis);
  for (const plot_series& s : series)
    for (std::size_t i = 1; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i - 1] + s.y[i - 1] + s.x[i] + s.y[i]))
        c.line(px(s.x[i - 1]), py(s.y[i - 1]), px(s.x[i]), py(s.y[i]), s.color);
  return c.image();
}

inline void save_line_plot(const std::string& path, const std::vector<plot_series>& series, const plot_options& o = {}) {
  data::save_png(render_line_plot(series, o), path);
}

// Loss per step (blue) and its running mean over `window` steps (orange).
template <class Records>
void save_loss_plot(const std::string& path, const Records& steps, std::size_t window = 20) {
  plot_options o;
  o.title = "Loss per step (blue) and its mean over " + std::to_string(window) + " steps (orange)";
  o.x_label = "step";
  o.y_label = "loss";
  plot_series raw, smooth;
  smooth.color = {255, 127, 14};
  double sum = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    raw.x.push_back(static_cast<double>(steps[i].step));
    raw.y.push_back(steps[i].loss);
    sum += steps[i].loss;
    if (i >= window) sum -= steps[i - window].loss;
    smooth.x.push_back(raw.x.back());
    smooth.y.push_back(sum / static_cast<double>(std::min(i + 1, window)));
  }
  save_line_plot(path, {raw, smooth}, o);
}

// ROC: true-positive rate against false-positive rate, with the chance diagonal; `title` names the
// step and the area under the curve, for instance.
inline void save_roc_plot(const std::string& path, const std::vector<double>& fpr, const std::vector<double>& tpr,
                          const std::string& title = "ROC") {
  plot_series roc{fpr, tpr};
  plot_series chance{{0, 1}, {0, 1}, {190, 190, 190}};
  plot_options o;
  o.width = o.height = 400;
  o.x_min = o.y_min = 0, o.x_max = o.y_max = 1;
  o.title = title;
  o.x_label = "false accept rate";
  o.y_label = "true accept rate";
  save_line_plot(path, {chance, roc}, o);
}

}  // namespace facenet::train
