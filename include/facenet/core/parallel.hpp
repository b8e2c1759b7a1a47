// The only file that names OpenMP. Without OpenMP everything runs serially with the same results.
#pragma once

#include <cstdint>
#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace facenet::parallel {

inline int max_threads() noexcept {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline void set_num_threads(int n) noexcept {
#ifdef _OPENMP
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}
inline int thread_index() noexcept {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline bool in_parallel() noexcept {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

// Calls f(i) for i in [begin, end), statically split over the threads. Nested calls run serially
// (the outer level already owns the cores). `min_per_thread` keeps tiny loops on one thread.
template <class F>
void parallel_for(std::int64_t begin, std::int64_t end, F&& f, std::int64_t min_per_thread = 1) {
  const std::int64_t n = end - begin;
  if (n <= 0) return;
#ifdef _OPENMP
  if (!omp_in_parallel() && n >= 2 * min_per_thread && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
    for (std::int64_t i = begin; i < end; ++i) f(i);
    return;
  }
#endif
  (void)min_per_thread;
  for (std::int64_t i = begin; i < end; ++i) f(i);
}

// Runs f(thread_index, thread_count) once on each thread of a parallel region (once, serially, when
// already inside a region or without OpenMP). For kernels that partition work themselves.
template <class F>
void parallel_region(F&& f, int threads = 0) {
#ifdef _OPENMP
  if (!omp_in_parallel()) {
    const int nt = threads > 0 ? threads : omp_get_max_threads();
    if (nt > 1) {
#pragma omp parallel num_threads(nt)
      f(omp_get_thread_num(), omp_get_num_threads());
      return;
    }
  }
#endif
  (void)threads;
  f(0, 1);
}

// Inside parallel_region's f(t, nt): waits until all nt threads of the region arrive. With nt == 1
// (a serial region, possibly nested in another one) it returns at once.
inline void barrier(int nt) noexcept {
#ifdef _OPENMP
  if (nt > 1) {
#pragma omp barrier
  }
#endif
  (void)nt;
}

// Splits [0, n) into `parts` near-equal chunks and returns chunk `i` as [first, last).
inline void split_range(std::int64_t n, int parts, int i, std::int64_t& first, std::int64_t& last) noexcept {
  const std::int64_t base = n / parts, rem = n % parts;
  first = i * base + (i < rem ? i : rem);
  last = first + base + (i < rem ? 1 : 0);
}

// Runs f(first, last) for near-equal shares of [0, n), one per thread of a parallel region of
// `threads`, and rethrows on the calling thread the first exception a share threw (none may leave the
// region).
template <class F>
void for_shares(std::int64_t n, int threads, F&& f) {
  std::exception_ptr failure;
  std::mutex failure_mutex;
  parallel_region(
      [&](int t, int nt) {
        std::int64_t first, last;
        split_range(n, nt, t, first, last);
        if (first == last) return;
        try {
          f(first, last);
        } catch (...) {
          std::lock_guard<std::mutex> lock(failure_mutex);
          if (!failure) failure = std::current_exception();
        }
      },
      threads);
  if (failure) std::rethrow_exception(failure);
}

}  // namespace facenet::parallel
