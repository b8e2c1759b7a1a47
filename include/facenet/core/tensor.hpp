// facenet::Tensor<T>: a handle to one 64-byte-aligned contiguous buffer with an NCHW shape and strides.
//
// Copying a Tensor copies the handle, not the data (like torch.Tensor or ncnn::Mat): views made by
// slice()/reshape() share the buffer. Use clone() for a deep copy. Kernels take tensors by reference
// and check shapes at their boundary.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

#include "facenet/core/error.hpp"
#include "facenet/core/shape.hpp"

namespace facenet {

inline constexpr std::size_t tensor_alignment = 64;

namespace detail {
struct aligned_deleter {
  void operator()(void* p) const noexcept { ::operator delete(p, std::align_val_t(tensor_alignment)); }
};
// Bytes of storage for `count` elements: rounded up to a whole cache line so SIMD tails may read
// (never write) past the end safely.
template <class T>
std::size_t storage_bytes(std::int64_t count) {
  const std::size_t bytes = static_cast<std::size_t>(std::max<std::int64_t>(count, 1)) * sizeof(T);
  return (bytes + tensor_alignment - 1) / tensor_alignment * tensor_alignment;
}
template <class T>
std::shared_ptr<T> allocate_aligned(std::int64_t count) {
  void* p = ::operator new(storage_bytes<T>(count), std::align_val_t(tensor_alignment));
  return std::shared_ptr<T>(static_cast<T*>(p), aligned_deleter{});
}
// Zeroed storage that costs no memory until written: large buffers come straight from an anonymous
// mapping (the OS hands out zero pages on first touch); small ones are allocated and cleared.
template <class T>
std::shared_ptr<T> allocate_zero_pages(std::int64_t count) {
  const std::size_t bytes = storage_bytes<T>(count);
#if defined(MAP_ANONYMOUS)
  if (bytes >= (std::size_t{1} << 20)) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return std::shared_ptr<T>(static_cast<T*>(p), [bytes](T* q) { ::munmap(q, bytes); });
  }
#endif
  std::shared_ptr<T> s = allocate_aligned<T>(count);
  std::memset(static_cast<void*>(s.get()), 0, bytes);
  return s;
}
}  // namespace detail

template <class T>
class Tensor {
  static_assert(std::is_arithmetic<T>::value, "Tensor holds arithmetic types");

 public:
  using value_type = T;

  Tensor() = default;
  explicit Tensor(const facenet::shape& s) { allocate(s, true); }
  Tensor(std::initializer_list<std::int64_t> dims) : Tensor(facenet::shape(dims)) {}

  // A tensor whose contents are left uninitialized (outputs a kernel overwrites entirely).
  static Tensor uninitialized(const facenet::shape& s) {
    Tensor t;
    t.allocate(s, false);
    return t;
  }
  // Zeros that occupy no memory until written (large sizes): for parameters that loading replaces
  // or an initialiser overwrites, so a model never holds an untouched second copy of its weights.
  static Tensor zeros_on_demand(const facenet::shape& s) {
    Tensor t;
    t.take_storage(s, detail::allocate_zero_pages<T>(s.numel()));
    return t;
  }
  static Tensor full(const facenet::shape& s, T value) {
    Tensor t = uninitialized(s);
    t.fill(value);
    return t;
  }
  // Non-owning view of caller memory (contiguous). The caller keeps the memory alive.
  static Tensor wrap(T* data, const facenet::shape& s) {
    Tensor t;
    t.storage_ = std::shared_ptr<T>(std::shared_ptr<T>(), data);  // aliasing ctor: no ownership
    t.data_ = data;
    t.shape_ = s;
    t.capacity_ = s.numel();
    t.set_contiguous_strides();
    return t;
  }

  // --- shape -------------------------------------------------------------------------------------
  const facenet::shape& shape() const noexcept { return shape_; }
  int rank() const noexcept { return shape_.rank(); }
  std::int64_t size(int i) const { return shape_.dim(i); }
  std::int64_t numel() const noexcept { return shape_.numel(); }
  bool empty() const noexcept { return numel() == 0 || data_ == nullptr; }
  std::int64_t stride(int i) const {
    shape_.dim(i);  // range check
    return strides_[i < 0 ? i + rank() : i];
  }
  bool is_contiguous() const noexcept {
    std::int64_t expected = 1;
    for (int i = rank() - 1; i >= 0; --i) {
      if (shape_[i] != 1 && strides_[i] != expected) return false;
      expected *= shape_[i];
    }
    return true;
  }
  // NCHW accessors for rank-4 tensors.
  std::int64_t n() const { return size(0); }
  std::int64_t c() const { return size(1); }
  std::int64_t h() const { return size(2); }
  std::int64_t w() const { return size(3); }

  // --- data --------------------------------------------------------------------------------------
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  T* begin() noexcept { return data_; }
  T* end() noexcept { return data_ + numel(); }
  const T* begin() const noexcept { return data_; }
  const T* end() const noexcept { return data_ + numel(); }

  template <class... I>
  T& operator()(I... idx) noexcept {
    return data_[offset_of(idx...)];
  }
  template <class... I>
  const T& operator()(I... idx) const noexcept {
    return data_[offset_of(idx...)];
  }
  T& at_flat(std::int64_t i) noexcept { return data_[i]; }

  void fill(T value) {
    require_contiguous("fill");
    std::fill(data_, data_ + numel(), value);
  }
  void zero() { fill(T(0)); }

  // --- views -------------------------------------------------------------------------------------
  // Elements [start, start+length) along `dim`, sharing storage.
  Tensor slice(int dim, std::int64_t start, std::int64_t length) const {
    int d = dim < 0 ? dim + rank() : dim;
    FACENET_CHECK(d >= 0 && d < rank(), shape_error, "slice: dimension " + std::to_string(dim) + " out of range for " + shape_.str());
    FACENET_CHECK(start >= 0 && length >= 0 && start + length <= shape_[d], shape_error,
                  "slice: [" + std::to_string(start) + ", " + std::to_string(start + length) + ") out of range for dimension " +
                      std::to_string(d) + " of " + shape_.str());
    Tensor t = *this;
    t.data_ = data_ + start * strides_[d];
    t.shape_[d] = length;
    return t;
  }
  // Image i of a batch, keeping the batch dimension (shape [1, ...]).
  Tensor batch(std::int64_t i) const { return slice(0, i, 1); }

  Tensor reshape(const facenet::shape& s) const {
    require_contiguous("reshape");
    FACENET_CHECK(s.numel() == numel(), shape_error, "reshape: cannot view " + shape_.str() + " as " + s.str());
    Tensor t = *this;
    t.shape_ = s;
    t.set_contiguous_strides();
    return t;
  }

  Tensor clone() const {
    Tensor t = uninitialized(shape_);
    t.copy_from(*this);
    return t;
  }

  // Copies values from `src` (same shape; either may be a strided view). The trailing dimensions that
  // both store densely move as one block (a channel slice of a batch: one memmove per image); only
  // the dimensions before them are walked index by index.
  void copy_from(const Tensor& src) {
    FACENET_CHECK(src.shape_ == shape_, shape_error, "copy_from: shape " + src.shape_.str() + " into " + shape_.str());
    if (numel() == 0) return;
    int outer = rank();
    std::int64_t block = 1;
    for (; outer > 0; --outer) {
      const int d = outer - 1;
      if (shape_[d] != 1 && (strides_[d] != block || src.strides_[d] != block)) break;
      block *= shape_[d];
    }
    const std::size_t bytes = static_cast<std::size_t>(block) * sizeof(T);
    std::int64_t idx[shape::max_rank] = {};
    for (std::int64_t k = 0, n = numel() / block; k < n; ++k) {
      std::int64_t od = 0, os = 0;
      for (int i = 0; i < outer; ++i) {
        od += idx[i] * strides_[i];
        os += idx[i] * src.strides_[i];
      }
      std::memmove(data_ + od, src.data_ + os, bytes);
      for (int i = outer - 1; i >= 0; --i) {
        if (++idx[i] < shape_[i]) break;
        idx[i] = 0;
      }
    }
  }

  // Gives this tensor shape `s`, reusing its buffer when it is owned, contiguous and large enough
  // (steady-state inference calls this every time without touching the allocator).
  void resize(const facenet::shape& s) {
    if (storage_ && s.numel() <= capacity_ && data_ == storage_.get() && is_contiguous()) {
      shape_ = s;
      set_contiguous_strides();
      return;
    }
    allocate(s, false);
  }

  std::int64_t capacity() const noexcept { return capacity_; }
  bool shares_storage_with(const Tensor& o) const noexcept { return storage_ && storage_ == o.storage_; }

  void require_contiguous(const char* what) const {
    FACENET_CHECK(is_contiguous(), shape_error, std::string(what) + ": tensor of shape " + shape_.str() + " is not contiguous");
  }

 private:
  void allocate(const facenet::shape& s, bool zero_fill) {
    take_storage(s, detail::allocate_aligned<T>(s.numel()));
    if (zero_fill) std::memset(static_cast<void*>(data_), 0, static_cast<std::size_t>(capacity_) * sizeof(T));
  }
  // Makes this a contiguous tensor of shape `s` over `storage` (at least s.numel() elements).
  void take_storage(const facenet::shape& s, std::shared_ptr<T> storage) {
    shape_ = s;
    capacity_ = s.numel();
    storage_ = std::move(storage);
    data_ = storage_.get();
    set_contiguous_strides();
  }
  void set_contiguous_strides() noexcept {
    std::int64_t s = 1;
    for (int i = shape_.rank() - 1; i >= 0; --i) {
      strides_[i] = s;
      s *= shape_[i];
    }
  }
  template <class... I>
  std::int64_t offset_of(I... idx) const noexcept {
    const std::int64_t ids[] = {static_cast<std::int64_t>(idx)...};
    std::int64_t off = 0;
    for (std::size_t i = 0; i < sizeof...(I); ++i) off += ids[i] * strides_[i];
    return off;
  }

  std::shared_ptr<T> storage_;
  T* data_ = nullptr;
  facenet::shape shape_;
  std::array<std::int64_t, shape::max_rank> strides_{};
  std::int64_t capacity_ = 0;
};

// Throws a shape_error naming `what` unless `t` has exactly shape `expected`. `what` is a view and the
// message is built only on failure, so passing a literal costs no allocation per call.
template <class T>
void check_shape(const Tensor<T>& t, const shape& expected, std::string_view what) {
  FACENET_CHECK(t.shape() == expected, shape_error,
                std::string(what) + ": expected shape " + expected.str() + ", got " + t.shape().str());
}
template <class T>
void check_rank(const Tensor<T>& t, int rank, std::string_view what) {
  FACENET_CHECK(t.rank() == rank, shape_error,
                std::string(what) + ": expected a rank-" + std::to_string(rank) + " tensor, got shape " + t.shape().str());
}

}  // namespace facenet
