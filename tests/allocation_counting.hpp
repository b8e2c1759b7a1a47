// Counts every C++ heap allocation (plain and over-aligned operator new, which Tensor buffers use) so
// a test can prove that steady-state inference allocates nothing. It replaces the global operator
// new / delete: include it in exactly one translation unit of a test executable.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

#include <gtest/gtest.h>

#include "facenet/models/model.hpp"
#include "testing.hpp"

// ThreadSanitizer's static runtime (clang) defines operator new itself: replacing it there fails to
// link, so under TSan nothing is counted and the allocation checks skip, visibly.
#if defined(__SANITIZE_THREAD__)
#define FACENET_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FACENET_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef FACENET_COUNT_ALLOCATIONS
#define FACENET_COUNT_ALLOCATIONS 1
#endif

namespace facenet::testing {

struct allocation_count {
  long calls = 0, bytes = 0;
};

namespace detail {
inline std::atomic<long> allocation_calls{0}, allocation_bytes{0};

inline void* counted_allocation(std::size_t n, std::size_t alignment) {
  allocation_calls.fetch_add(1, std::memory_order_relaxed);
  allocation_bytes.fetch_add(static_cast<long>(n), std::memory_order_relaxed);
  const std::size_t size = n ? n : 1;
  // aligned_alloc wants a size that is a multiple of the alignment.
  void* p = alignment > alignof(std::max_align_t) ? std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment)
                                                  : std::malloc(size);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace detail

// Allocations made by f() on every thread while it ran.
template <class F>
allocation_count count_allocations(F&& f) {
  const long calls = detail::allocation_calls.load(), bytes = detail::allocation_bytes.load();
  f();
  return {detail::allocation_calls.load() - calls, detail::allocation_bytes.load() - bytes};
}

// embed() allocates nothing from its second call at a batch size on, nor at a smaller batch after a
// larger one: every workspace, scratch and output buffer is reused.
template <class T>
void expect_embed_allocation_free(const models::embedder<T>& e, const Tensor<T>& one, const Tensor<T>& batch) {
  if (!FACENET_COUNT_ALLOCATIONS) GTEST_SKIP() << "allocation counting is off under ThreadSanitizer";
  Tensor<T> y1, yn;
  const auto embed = [&](const Tensor<T>& x, Tensor<T>& y) { return count_allocations([&] { e.embed(x, y); }); };
  const allocation_count first = embed(one, y1);
  EXPECT_GT(first.calls, 0) << "the counter sees the first call's allocations";
  const allocation_count again = embed(one, y1);
  EXPECT_EQ(again.calls, 0) << again.bytes << " bytes allocated by the second batch-1 embed()";
  embed(batch, yn);
  const allocation_count batch_again = embed(batch, yn);
  EXPECT_EQ(batch_again.calls, 0) << batch_again.bytes << " bytes allocated by the second batch-" << batch.size(0)
                                  << " embed()";
  const allocation_count back = embed(one, y1);
  EXPECT_EQ(back.calls, 0) << back.bytes << " bytes allocated by a batch-1 embed() after a larger batch";
}

}  // namespace facenet::testing

#if FACENET_COUNT_ALLOCATIONS
// The whole replaceable set - nothrow and array forms too - so no allocation function of the
// runtime's is ever paired with these frees: AddressSanitizer defines its own nothrow new, and
// std::stable_sort's temporary buffer (nothrow new, then sized delete) was reported as an
// alloc-dealloc mismatch once this header shared an executable with the clustering tests.
void* operator new(std::size_t n) { return facenet::testing::detail::counted_allocation(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return facenet::testing::detail::counted_allocation(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return operator new(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return operator new(n, a);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept { return operator new(n, a, t); }
// GCC 12 pairs the inlined builtin operator new with these frees and warns falsely
// (-Wmismatched-new-delete); the replacements above are malloc-based, so free is right.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
#pragma GCC diagnostic pop
#endif  // FACENET_COUNT_ALLOCATIONS
