// Fixed-capacity shape: views and reshapes never touch the heap.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "facenet/core/error.hpp"

namespace facenet {

class shape {
 public:
  static constexpr int max_rank = 6;

  shape() = default;
  shape(std::initializer_list<std::int64_t> dims) {
    FACENET_CHECK(static_cast<int>(dims.size()) <= max_rank, shape_error,
                  "rank " + std::to_string(dims.size()) + " exceeds the maximum of 6");
    for (std::int64_t d : dims) push_back(d);
  }
  template <class It>
  shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<std::int64_t>(*first));
  }

  void push_back(std::int64_t d) {
    FACENET_CHECK(rank_ < max_rank, shape_error, "rank exceeds the maximum of 6");
    FACENET_CHECK(d >= 0, shape_error, "negative dimension " + std::to_string(d));
    dims_[rank_++] = d;
  }

  int rank() const noexcept { return rank_; }
  std::int64_t operator[](int i) const noexcept { return dims_[i]; }
  std::int64_t& operator[](int i) noexcept { return dims_[i]; }
  // Dimension with Python-style negative indexing, checked.
  std::int64_t dim(int i) const {
    int j = i < 0 ? i + rank_ : i;
    FACENET_CHECK(j >= 0 && j < rank_, shape_error,
                  "dimension " + std::to_string(i) + " out of range for shape " + str());
    return dims_[j];
  }
  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= dims_[i];
    return n;
  }
  const std::int64_t* begin() const noexcept { return dims_.data(); }
  const std::int64_t* end() const noexcept { return dims_.data() + rank_; }

  bool operator==(const shape& o) const noexcept {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (dims_[i] != o.dims_[i]) return false;
    return true;
  }
  bool operator!=(const shape& o) const noexcept { return !(*this == o); }

  std::string str() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    return s + "]";
  }

 private:
  std::array<std::int64_t, max_rank> dims_{};
  int rank_ = 0;
};

}  // namespace facenet
