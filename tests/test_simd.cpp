// The partial and strided loads/stores of core/simd.hpp, on whatever architecture this build targets
// (AVX-512 and AVX2 have masked forms, others a scalar copy): every lane count, values and zero
// filling, and no access past the last element - the data ends where an inaccessible page starts, so
// a read or write one element too far crashes the test.
#include "facenet/core/simd.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "testing.hpp"

namespace {

// `count` values of T ending exactly at an inaccessible page.
template <class T>
class guarded_buffer {
 public:
  explicit guarded_buffer(std::size_t count) : page_(static_cast<std::size_t>(sysconf(_SC_PAGESIZE))) {
    base_ = mmap(nullptr, 2 * page_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base_ == MAP_FAILED) throw std::runtime_error("mmap failed");
    if (mprotect(static_cast<char*>(base_) + page_, page_, PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    data_ = reinterpret_cast<T*>(static_cast<char*>(base_) + page_) - count;
  }
  ~guarded_buffer() { munmap(base_, 2 * page_); }
  guarded_buffer(const guarded_buffer&) = delete;
  guarded_buffer& operator=(const guarded_buffer&) = delete;
  T* data() { return data_; }

 private:
  std::size_t page_;
  void* base_ = nullptr;
  T* data_ = nullptr;
};

template <class T>
std::vector<T> lanes_of(const facenet::simd::batch<T>& v) {
  std::vector<T> out(facenet::simd::width<T>);
  v.store_unaligned(out.data());
  return out;
}

template <class T>
void check_partial_loads_and_stores() {
  namespace simd = facenet::simd;
  constexpr std::size_t w = simd::width<T>;
  for (std::size_t n = 0; n <= w; ++n) {
    guarded_buffer<T> in(n);
    for (std::size_t i = 0; i < n; ++i) in.data()[i] = static_cast<T>(i + 1);
    const std::vector<T> got = lanes_of<T>(simd::load_partial(in.data(), n));
    for (std::size_t i = 0; i < w; ++i) EXPECT_EQ(got[i], i < n ? static_cast<T>(i + 1) : T(0)) << "n " << n << " lane " << i;

    guarded_buffer<T> out(n);
    std::vector<T> values(w);
    for (std::size_t i = 0; i < w; ++i) values[i] = static_cast<T>(100 + i);
    simd::store_partial(out.data(), simd::load(values.data()), n);
    for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(out.data()[i], static_cast<T>(100 + i)) << "n " << n << " element " << i;
  }
}

template <class T>
void check_even_loads() {
  namespace simd = facenet::simd;
  constexpr std::size_t w = simd::width<T>;
  for (std::size_t n = 1; n <= w; ++n) {
    const std::size_t span = 2 * n - 1;  // load_even reads p[0, 2n - 1)
    guarded_buffer<T> in(span);
    for (std::size_t i = 0; i < span; ++i) in.data()[i] = static_cast<T>(i);
    const std::vector<T> got = lanes_of<T>(simd::load_even(in.data(), n));
    for (std::size_t i = 0; i < w; ++i) EXPECT_EQ(got[i], i < n ? static_cast<T>(2 * i) : T(0)) << "n " << n << " lane " << i;
  }
}

}  // namespace

TEST(simd, partial_loads_and_stores_touch_only_their_lanes) {
  check_partial_loads_and_stores<float>();
  check_partial_loads_and_stores<double>();
}

TEST(simd, even_loads_pick_every_other_element_within_their_span) {
  check_even_loads<float>();
  check_even_loads<double>();
}
