// Fully connected layer, y = x w^T + b (PyTorch nn.Linear layout: w is [out, in]), through the
// packed GEMM. x may carry trailing dimensions ([N, C, 1, 1] after global pooling): they are
// flattened into `in`.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"
#include "facenet/kernels/gemm.hpp"

namespace facenet::kernels {

namespace detail {
struct linear_dims {
  std::int64_t batch, in, out;
};
// Validates x [N, in...] against w [out, in] and returns the GEMM sizes.
template <class T>
linear_dims linear_check(const Tensor<T>& x, const Tensor<T>& w, const char* kernel) {
  FACENET_CHECK(x.rank() >= 2, shape_error, std::string(kernel) + ": x must be [N, in], got " + x.shape().str());
  FACENET_CHECK(w.rank() == 2, shape_error, std::string(kernel) + ": w must be [out, in], got " + w.shape().str());
  require_contiguous(x, kernel, "x");
  require_contiguous(w, kernel, "w");
  const linear_dims d{x.size(0), x.size(0) == 0 ? 0 : x.numel() / x.size(0), w.size(0)};
  FACENET_CHECK(d.in == w.size(1), shape_error,
                std::string(kernel) + ": x " + x.shape().str() + " has " + std::to_string(d.in) +
                    " features per sample but w " + w.shape().str() + " expects " + std::to_string(w.size(1)));
  return d;
}
template <class T>
void linear_check_dy(const Tensor<T>& dy, const linear_dims& d, const char* kernel) {
  require_contiguous(dy, kernel, "dy");
  FACENET_CHECK(dy.shape() == (shape{d.batch, d.out}), shape_error,
                std::string(kernel) + ": dy must be [" + std::to_string(d.batch) + ", " + std::to_string(d.out) +
                    "], got " + dy.shape().str());
}
}  // namespace detail

template <class T>
void linear_forward(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& bias, Tensor<T>& y) {
  const char* k = "linear_forward";
  const auto d = detail::linear_check(x, w, k);
  if (!bias.empty()) detail::require_vector(bias, d.out, k, "bias");
  y.resize(shape{d.batch, d.out});
  // Bias rows first, then the product accumulates onto them (beta = 1).
  const bool has_bias = !bias.empty();
  if (has_bias)
    for (std::int64_t n = 0; n < d.batch; ++n) std::copy(bias.begin(), bias.end(), y.data() + n * d.out);
  // One GEMM formula for every batch size keeps embeddings bit-identical between batch 1 and batch N
  // (test_cli checks it). Computing y^T = w x^T for one sample read w in place instead of packing it
  // (IRv1's last layer 0.75 -> 0.17 ms) but took GEMM's dot-product path and changed the last bits.
  gemm(false, true, d.batch, d.out, d.in, T(1), x.data(), d.in, w.data(), d.in, has_bias ? T(1) : T(0), y.data(),
       d.out);
}

// Inference fully connected layer with w packed once into the GEMM's A panels: y^T = w x^T. Each
// output does the multiply-adds of linear_forward in the same order (bias first, then the same K
// blocks, one lane per output), so results are bit-identical to it and across batch sizes, while w is
// packed once instead of on every call as linear_forward's B operand. Immutable after construction.
template <class T>
class linear_plan {
 public:
  linear_plan() = default;
  linear_plan(const Tensor<T>& w, const Tensor<T>& bias) : out_(w.rank() == 2 ? w.size(0) : 0), in_(w.rank() == 2 ? w.size(1) : 0) {
    FACENET_CHECK(w.rank() == 2 && w.numel() > 0, shape_error, "linear_plan: w must be non-empty [out, in], got " + w.shape().str());
    detail::require_contiguous(w, "linear_plan", "w");
    if (!bias.empty()) {
      detail::require_vector(bias, out_, "linear_plan", "bias");
      bias_ = bias.clone();
    }
    packed_ = Tensor<T>::uninitialized({detail::packed_a_size<T>(out_, in_)});
    detail::pack_a_full(detail::a_source<T>{w.data(), in_, false, nullptr}, out_, in_, packed_.data());
  }

  bool empty() const noexcept { return packed_.empty(); }

  // y [N, out] from x [N, in...]; ws holds y^T when N > 1.
  void forward(const Tensor<T>& x, Tensor<T>& y, Tensor<T>& ws) const {
    const char* k = "linear_plan::forward";
    FACENET_CHECK(!empty(), argument_error, std::string(k) + ": the plan holds no weights");
    FACENET_CHECK(x.rank() >= 2, shape_error, std::string(k) + ": x must be [N, in], got " + x.shape().str());
    detail::require_contiguous(x, k, "x");
    const std::int64_t n = x.size(0), in = n == 0 ? in_ : x.numel() / n;
    FACENET_CHECK(in == in_, shape_error,
                  std::string(k) + ": x " + x.shape().str() + " has " + std::to_string(in) + " features per sample, the plan expects " +
                      std::to_string(in_));
    FACENET_CHECK(!x.shares_storage_with(y), argument_error, std::string(k) + ": input and output share storage");
    y.resize(shape{n, out_});
    if (n == 0) return;
    // y^T [out, N]: for one sample that is y itself.
    if (n > 1 && (ws.numel() < out_ * n || !ws.is_contiguous())) ws.resize({out_ * n});
    T* yt = n == 1 ? y.data() : ws.data();
    for (std::int64_t o = 0; o < out_; ++o) std::fill(yt + o * n, yt + (o + 1) * n, bias_.empty() ? T(0) : bias_.data()[o]);
    detail::gemm_run(out_, n, in_, T(1), detail::a_source<T>{nullptr, 0, false, packed_.data()},
                     detail::b_matrix<T>{x.data(), in_, true}, bias_.empty() ? T(0) : T(1), yt, n);
    if (n > 1)
      for (std::int64_t j = 0; j < n; ++j)
        for (std::int64_t o = 0; o < out_; ++o) y.data()[j * out_ + o] = yt[o * n + j];
  }

 private:
  std::int64_t out_ = 0, in_ = 0;
  Tensor<T> packed_;  // GEMM A panels of w [out, in]
  Tensor<T> bias_;
};

// dx = dy w, shaped like the forward input x.
template <class T>
void linear_backward_data(const Tensor<T>& dy, const Tensor<T>& x, const Tensor<T>& w, Tensor<T>& dx) {
  const char* k = "linear_backward_data";
  const auto d = detail::linear_check(x, w, k);
  detail::linear_check_dy(dy, d, k);
  dx.resize(x.shape());
  gemm(false, false, d.batch, d.in, d.out, T(1), dy.data(), d.out, w.data(), d.in, T(0), dx.data(), d.in);
}

// dw = dy^T x, db = sum over the batch of dy.
template <class T>
void linear_backward_weight(const Tensor<T>& dy, const Tensor<T>& x, Tensor<T>& dw, Tensor<T>& db) {
  const char* k = "linear_backward_weight";
  FACENET_CHECK(dy.rank() == 2, shape_error, std::string(k) + ": dy must be [N, out], got " + dy.shape().str());
  FACENET_CHECK(x.rank() >= 2 && x.size(0) == dy.size(0), shape_error,
                std::string(k) + ": x " + x.shape().str() + " and dy " + dy.shape().str() + " differ in batch size");
  detail::require_contiguous(x, k, "x");
  detail::require_contiguous(dy, k, "dy");
  const std::int64_t batch = dy.size(0), out = dy.size(1), in = batch == 0 ? 0 : x.numel() / batch;
  dw.resize(shape{out, in});
  db.resize(shape{out});
  if (batch == 0) {
    dw.zero();
    db.zero();
    return;
  }
  gemm(true, false, out, in, batch, T(1), dy.data(), out, x.data(), in, T(0), dw.data(), in);
  detail::channel_sum(detail::channel_layout{batch, out, 1}, dy.data(), dy.data(), dy.data(), db.data(),
                      [](auto g, auto, auto) { return g; });
}

}  // namespace facenet::kernels
