// Inverted dropout as torch.nn.functional.dropout: in training each element is kept with
// probability 1 - p and scaled by 1 / (1 - p); in eval it is the identity. The mask (0 or the
// scale) is returned for backward. Random numbers come from a counter-based hash of (seed, index),
// so results do not depend on the thread count and a seed replays the same mask.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"
#include "facenet/kernels/elementwise.hpp"

namespace facenet::kernels {

namespace detail {
// SplitMix64 finaliser of seed and element index -> uniform double in [0, 1) with 53 random bits.
inline double dropout_uniform(std::uint64_t seed, std::uint64_t index) noexcept {
  std::uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}
}  // namespace detail

template <class T>
void dropout_forward(const Tensor<T>& x, T p, std::uint64_t seed, bool training, Tensor<T>& y, Tensor<T>& mask) {
  const char* k = "dropout_forward";
  detail::require_contiguous(x, k, "x");
  FACENET_CHECK(p >= T(0) && p <= T(1), argument_error,
                std::string(k) + ": p must be in [0, 1], got " + std::to_string(p));
  y.resize(x.shape());
  mask.resize(x.shape());
  if (!training || p == T(0)) {
    mask.fill(T(1));
    detail::flat_map(y.data(), x.data(), x.numel(), [](auto v) { return v; });
    return;
  }
  // p == 1 drops everything (PyTorch returns zeros rather than 0 * inf).
  const T keep_scale = p < T(1) ? T(1) / (T(1) - p) : T(0);
  const double drop = static_cast<double>(p);
  detail::parallel_chunks(x.numel(), [&](std::int64_t b, std::int64_t e) {
    T* m = mask.data();
    for (std::int64_t i = b; i < e; ++i)
      m[i] = detail::dropout_uniform(seed, static_cast<std::uint64_t>(i)) < drop ? T(0) : keep_scale;
    detail::simd_map2(y.data() + b, x.data() + b, m + b, e - b, [](auto v, auto s) { return v * s; });
  });
}

// dx = dy * mask.
template <class T>
void dropout_backward(const Tensor<T>& dy, const Tensor<T>& mask, Tensor<T>& dx) {
  const char* k = "dropout_backward";
  detail::require_contiguous(dy, k, "dy");
  detail::require_contiguous(mask, k, "mask");
  detail::require_same_shape(mask, dy, k, "mask", "dy");
  dx.resize(dy.shape());
  detail::flat_map2(dx.data(), dy.data(), mask.data(), dy.numel(), [](auto g, auto s) { return g * s; });
}

}  // namespace facenet::kernels
