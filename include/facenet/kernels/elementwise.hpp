// Element-wise kernels (add, scale, axpy) and the small SIMD/threading helpers the other
// non-GEMM kernels are written with: one vectorised loop body, specialised by a lambda.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/parallel.hpp"
#include "facenet/core/simd.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::kernels {

namespace detail {

// Below this many elements a flat loop is not worth waking a second thread for.
inline constexpr std::int64_t parallel_grain = 16384;

// Sum of the first `lanes` lanes (all by default), for partial tails.
template <class T>
T lane_sum(const simd::batch<T>& v, std::size_t lanes = simd::width<T>) {
  alignas(64) T tmp[simd::width<T>];
  simd::store_aligned(tmp, v);
  T s = T(0);
  for (std::size_t j = 0; j < lanes; ++j) s += tmp[j];
  return s;
}

// y[i] = f(a[i]) over n elements: full SIMD batches, then one zero-padded partial batch.
template <class T, class F>
void simd_map(T* y, const T* a, std::int64_t n, F&& f) {
  constexpr auto w = static_cast<std::int64_t>(simd::width<T>);
  std::int64_t i = 0;
  for (; i + w <= n; i += w) simd::store(y + i, f(simd::load(a + i)));
  if (i < n) {
    const auto r = static_cast<std::size_t>(n - i);
    simd::store_partial(y + i, f(simd::load_partial(a + i, r)), r);
  }
}

// y[i] = f(a[i], b[i]).
template <class T, class F>
void simd_map2(T* y, const T* a, const T* b, std::int64_t n, F&& f) {
  constexpr auto w = static_cast<std::int64_t>(simd::width<T>);
  std::int64_t i = 0;
  for (; i + w <= n; i += w) simd::store(y + i, f(simd::load(a + i), simd::load(b + i)));
  if (i < n) {
    const auto r = static_cast<std::size_t>(n - i);
    simd::store_partial(y + i, f(simd::load_partial(a + i, r), simd::load_partial(b + i, r)), r);
  }
}

// y[i] = f(a[i], b[i], c[i]).
template <class T, class F>
void simd_map3(T* y, const T* a, const T* b, const T* c, std::int64_t n, F&& f) {
  constexpr auto w = static_cast<std::int64_t>(simd::width<T>);
  std::int64_t i = 0;
  for (; i + w <= n; i += w) simd::store(y + i, f(simd::load(a + i), simd::load(b + i), simd::load(c + i)));
  if (i < n) {
    const auto r = static_cast<std::size_t>(n - i);
    simd::store_partial(
        y + i, f(simd::load_partial(a + i, r), simd::load_partial(b + i, r), simd::load_partial(c + i, r)), r);
  }
}

// sum_i f(a[i], b[i]); the lanes past n of the last partial batch are dropped, so f need not
// map zero to zero.
template <class T, class F>
T simd_sum2(const T* a, const T* b, std::int64_t n, F&& f) {
  constexpr auto w = static_cast<std::int64_t>(simd::width<T>);
  simd::batch<T> acc(T(0));
  std::int64_t i = 0;
  for (; i + w <= n; i += w) acc += f(simd::load(a + i), simd::load(b + i));
  T sum = lane_sum(acc);
  if (i < n) {
    const auto r = static_cast<std::size_t>(n - i);
    sum += lane_sum(f(simd::load_partial(a + i, r), simd::load_partial(b + i, r)), r);
  }
  return sum;
}

template <class T>
T simd_sum(const T* a, std::int64_t n) {
  return simd_sum2(a, a, n, [](auto x, auto) { return x; });
}
template <class T>
T simd_dot(const T* a, const T* b, std::int64_t n) {
  return simd_sum2(a, b, n, [](auto x, auto y) { return x * y; });
}

// Calls f(begin, end) on contiguous chunks of [0, n), one per thread when n is large enough.
template <class F>
void parallel_chunks(std::int64_t n, F&& f, std::int64_t grain = parallel_grain) {
  if (n <= 0) return;
  const int parts = static_cast<int>(std::clamp<std::int64_t>(n / grain, 1, parallel::max_threads()));
  if (parts == 1) {
    f(std::int64_t(0), n);
    return;
  }
  parallel::parallel_region(
      [&](int t, int nt) {
        std::int64_t first, last;
        parallel::split_range(n, nt, t, first, last);
        if (first < last) f(first, last);
      },
      parts);
}

// Flat y = f(a) over whole tensors, threaded for large ones.
template <class T, class F>
void flat_map(T* y, const T* a, std::int64_t n, F&& f) {
  parallel_chunks(n, [&](std::int64_t b, std::int64_t e) { simd_map(y + b, a + b, e - b, f); });
}
template <class T, class F>
void flat_map2(T* y, const T* a, const T* b, std::int64_t n, F&& f) {
  parallel_chunks(n, [&](std::int64_t s, std::int64_t e) { simd_map2(y + s, a + s, b + s, e - s, f); });
}

// Per-thread scratch of parallel_tasks, grown to the largest request and kept, so steady-state
// calls (inference after warm-up) do not allocate. `busy` marks it lent out: a parallel_tasks nested
// inside a task on the same thread gets a buffer of its own instead of sharing it.
template <class T>
class task_scratch {
 public:
  explicit task_scratch(std::int64_t size) : own_(slot()) {
    const auto n = static_cast<std::size_t>(size);
    if (own_.busy) {
      nested_.resize(n);
      data_ = nested_.data();
      return;
    }
    if (own_.buffer.size() < n) own_.buffer.resize(n);
    own_.busy = lent_ = true;
    data_ = own_.buffer.data();
  }
  ~task_scratch() {
    if (lent_) own_.busy = false;
  }
  task_scratch(const task_scratch&) = delete;
  task_scratch& operator=(const task_scratch&) = delete;
  T* data() const noexcept { return data_; }

 private:
  struct thread_buffer {
    std::vector<T> buffer;
    bool busy = false;
  };
  static thread_buffer& slot() {
    static thread_local thread_buffer b;
    return b;
  }
  thread_buffer& own_;
  std::vector<T> nested_;
  T* data_ = nullptr;
  bool lent_ = false;
};

// Runs f(task, scratch) for task in [0, count), split over the threads by contiguous ranges; each
// thread gets `scratch_size` elements of uninitialised T scratch (task_scratch). `work_per_task`
// (elements touched) decides how many threads are worth using.
template <class T, class F>
void parallel_tasks(std::int64_t count, std::int64_t work_per_task, std::int64_t scratch_size, F&& f) {
  if (count <= 0) return;
  const std::int64_t useful = std::max<std::int64_t>(1, count * work_per_task / parallel_grain);
  const int parts = static_cast<int>(std::clamp<std::int64_t>(std::min(useful, count), 1, parallel::max_threads()));
  parallel::parallel_region(
      [&](int t, int nt) {
        std::int64_t first, last;
        parallel::split_range(count, nt, t, first, last);
        if (first == last) return;
        const task_scratch<T> scratch(scratch_size);
        for (std::int64_t i = first; i < last; ++i) f(i, scratch.data());
      },
      parts);
}

template <class T>
void require_same_shape(const Tensor<T>& a, const Tensor<T>& b, const char* kernel, const char* a_name,
                        const char* b_name) {
  FACENET_CHECK(a.shape() == b.shape(), shape_error,
                std::string(kernel) + ": " + b_name + " has shape " + b.shape().str() + " but " + a_name +
                    " has shape " + a.shape().str());
}

template <class T>
void require_contiguous(const Tensor<T>& t, const char* kernel, const char* name) {
  FACENET_CHECK(t.is_contiguous(), shape_error,
                std::string(kernel) + ": " + name + " of shape " + t.shape().str() + " is not contiguous");
}

// Channel-major view used by per-channel kernels: x is [outer, channels, inner] with the channel
// axis at dimension 1 (rank 2 [N,C] has inner 1, rank 4 NCHW has inner H*W).
struct channel_layout {
  std::int64_t outer = 0, channels = 0, inner = 0;
};
template <class T>
channel_layout channels_of(const Tensor<T>& x, const char* kernel, const char* name) {
  FACENET_CHECK(x.rank() >= 2, shape_error,
                std::string(kernel) + ": " + name + " must have rank >= 2 with channels at dimension 1, got " +
                    x.shape().str());
  require_contiguous(x, kernel, name);
  channel_layout l;
  l.outer = x.shape()[0];
  l.channels = x.shape()[1];
  l.inner = 1;
  for (int i = 2; i < x.rank(); ++i) l.inner *= x.shape()[i];
  return l;
}

// Rows per thread so each parallel task touches at least ~parallel_grain elements.
inline std::int64_t rows_per_task(std::int64_t row_length) {
  return std::max<std::int64_t>(1, parallel_grain / std::max<std::int64_t>(1, row_length));
}

// y[n,c,i] = f(a[n,c,i], b[n,c,i], p[c], q[c], r[c]) for the per-channel kernels (batch norm,
// PReLU). With inner > 1 the SIMD lanes run along a channel plane and the parameters are
// broadcast; with inner == 1 ([N,C]) the lanes run along channels and the parameters are loaded.
template <class T, class F>
void channel_map(const channel_layout& l, T* y, const T* a, const T* b, const T* p, const T* q, const T* r, F&& f) {
  if (l.inner == 1) {
    parallel::parallel_for(
        0, l.outer,
        [&](std::int64_t n) {
          const std::int64_t o = n * l.channels;
          constexpr auto w = static_cast<std::int64_t>(simd::width<T>);
          std::int64_t c = 0;
          for (; c + w <= l.channels; c += w)
            simd::store(y + o + c, f(simd::load(a + o + c), simd::load(b + o + c), simd::load(p + c),
                                     simd::load(q + c), simd::load(r + c)));
          if (c < l.channels) {
            const auto m = static_cast<std::size_t>(l.channels - c);
            simd::store_partial(y + o + c,
                                f(simd::load_partial(a + o + c, m), simd::load_partial(b + o + c, m),
                                  simd::load_partial(p + c, m), simd::load_partial(q + c, m),
                                  simd::load_partial(r + c, m)),
                                m);
          }
        },
        rows_per_task(l.channels));
    return;
  }
  parallel::parallel_for(
      0, l.outer * l.channels,
      [&](std::int64_t row) {
        const std::int64_t c = row % l.channels, o = row * l.inner;
        const simd::batch<T> pv(p[c]), qv(q[c]), rv(r[c]);
        simd_map2(y + o, a + o, b + o, l.inner, [&](auto u, auto v) { return f(u, v, pv, qv, rv); });
      },
      rows_per_task(l.inner));
}

// out[c] = sum over n and i of f(a[n,c,i], b[n,c,i], p[c]).
// Per plane the sum runs in T, across planes in double, so long batches stay accurate in float.
template <class T, class F>
void channel_sum(const channel_layout& l, const T* a, const T* b, const T* p, T* out, F&& f) {
  if (l.inner == 1) {
    // Lanes along channels: each thread owns a slice of channels and walks all rows.
    parallel_chunks(
        l.channels,
        [&](std::int64_t c0, std::int64_t c1) {
          constexpr auto w = static_cast<std::int64_t>(simd::width<T>);
          for (std::int64_t c = c0; c < c1; c += w) {
            const auto m = static_cast<std::size_t>(std::min<std::int64_t>(w, c1 - c));
            const bool full = m == simd::width<T>;
            const auto get = [&](const T* src) { return full ? simd::load(src) : simd::load_partial(src, m); };
            const auto pv = get(p + c);
            simd::batch<T> acc(T(0));
            for (std::int64_t n = 0; n < l.outer; ++n) {
              const std::int64_t o = n * l.channels + c;
              acc += f(get(a + o), get(b + o), pv);
            }
            simd::store_partial(out + c, acc, m);
          }
        },
        std::max<std::int64_t>(64, parallel_grain / std::max<std::int64_t>(1, l.outer)));
    return;
  }
  parallel::parallel_for(
      0, l.channels,
      [&](std::int64_t c) {
        const simd::batch<T> pv(p[c]);
        double acc = 0;
        for (std::int64_t n = 0; n < l.outer; ++n) {
          const std::int64_t o = (n * l.channels + c) * l.inner;
          acc += simd_sum2(a + o, b + o, l.inner, [&](auto u, auto v) { return f(u, v, pv); });
        }
        out[c] = static_cast<T>(acc);
      },
      rows_per_task(l.outer * l.inner));
}

// Per-channel parameter vector of `channels` elements (e.g. gamma).
template <class T>
void require_vector(const Tensor<T>& v, std::int64_t channels, const char* kernel, const char* name) {
  FACENET_CHECK(v.numel() == channels && v.rank() == 1, shape_error,
                std::string(kernel) + ": " + name + " must have shape [" + std::to_string(channels) + "], got " +
                    v.shape().str());
  require_contiguous(v, kernel, name);
}

}  // namespace detail

// y = a + b.
template <class T>
void add(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
  detail::require_contiguous(a, "add", "a");
  detail::require_contiguous(b, "add", "b");
  detail::require_same_shape(a, b, "add", "a", "b");
  y.resize(a.shape());
  detail::flat_map2(y.data(), a.data(), b.data(), a.numel(), [](auto u, auto v) { return u + v; });
}

// y += x: how callers accumulate the gradients of a tensor consumed by several branches.
template <class T>
void add_inplace(Tensor<T>& y, const Tensor<T>& x) {
  detail::require_contiguous(y, "add_inplace", "y");
  detail::require_contiguous(x, "add_inplace", "x");
  detail::require_same_shape(y, x, "add_inplace", "y", "x");
  detail::flat_map2(y.data(), y.data(), x.data(), y.numel(), [](auto u, auto v) { return u + v; });
}

// y = s * x.
template <class T>
void scale(const Tensor<T>& x, T s, Tensor<T>& y) {
  detail::require_contiguous(x, "scale", "x");
  y.resize(x.shape());
  const simd::batch<T> sv(s);
  detail::flat_map(y.data(), x.data(), x.numel(), [&](auto u) { return u * sv; });
}

// y += alpha * x (BLAS axpy on whole tensors).
template <class T>
void axpy(T alpha, const Tensor<T>& x, Tensor<T>& y) {
  detail::require_contiguous(x, "axpy", "x");
  detail::require_contiguous(y, "axpy", "y");
  detail::require_same_shape(y, x, "axpy", "y", "x");
  const simd::batch<T> av(alpha);
  detail::flat_map2(y.data(), x.data(), y.data(), y.numel(), [&](auto u, auto v) { return simd::fma(av, u, v); });
}

// y = a * b (element-wise product; masks, gates).
template <class T>
void multiply(const Tensor<T>& a, const Tensor<T>& b, Tensor<T>& y) {
  detail::require_contiguous(a, "multiply", "a");
  detail::require_contiguous(b, "multiply", "b");
  detail::require_same_shape(a, b, "multiply", "a", "b");
  y.resize(a.shape());
  detail::flat_map2(y.data(), a.data(), b.data(), a.numel(), [](auto u, auto v) { return u * v; });
}

}  // namespace facenet::kernels
