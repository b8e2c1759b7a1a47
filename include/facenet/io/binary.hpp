// Bounds-checked little-endian byte reading and element-type decoding shared by every weight reader.
// Readers never trust a size or offset from a file: each one goes through span_reader or
// checked_span before memory is touched, so a hostile file ends in a format_error, not a crash.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/core/tensor.hpp"

namespace facenet::io {

// Fuzzing builds (tests/fuzz defines this conventional macro) accept bad checksums, as zlib and libpng do there:
// otherwise almost every mutation of a CRC-protected container dies at the check and the parsing
// behind it is never exercised. Never defined in a normal build.
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
inline constexpr bool skip_checksums = true;
#else
inline constexpr bool skip_checksums = false;
#endif

// Little-endian loads/stores composed from bytes, so the readers are correct on any host.
template <class T>
T load_le(const std::uint8_t* p) noexcept {
  static_assert(std::is_integral<T>::value, "load_le reads integers");
  using U = std::make_unsigned_t<T>;
  U v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) v = static_cast<U>(v | static_cast<U>(static_cast<U>(p[i]) << (8 * i)));
  return static_cast<T>(v);
}
template <class T>
void store_le(std::string& out, T value) {
  using U = std::make_unsigned_t<T>;
  const U v = static_cast<U>(value);
  for (std::size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
inline float bits_to_float(std::uint32_t b) noexcept {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}
inline std::uint32_t float_to_bits(float f) noexcept {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

// a * b for sizes read from files; throws instead of wrapping around.
inline std::uint64_t checked_mul(std::uint64_t a, std::uint64_t b, const std::string& what) {
  FACENET_CHECK(b == 0 || a <= std::numeric_limits<std::uint64_t>::max() / b, format_error,
                what + ": size overflows (" + std::to_string(a) + " x " + std::to_string(b) + ")");
  return a * b;
}
inline std::uint64_t checked_add(std::uint64_t a, std::uint64_t b, const std::string& what) {
  FACENET_CHECK(a <= std::numeric_limits<std::uint64_t>::max() - b, format_error,
                what + ": offset overflows (" + std::to_string(a) + " + " + std::to_string(b) + ")");
  return a + b;
}

// Element count of a shape read from a file; throws instead of wrapping around.
inline std::uint64_t shape_numel(const shape& s, const std::string& what) {
  std::uint64_t n = 1;
  for (std::int64_t d : s) n = checked_mul(n, static_cast<std::uint64_t>(d), what);
  return n;
}

// IEEE binary16 <-> binary32. Conversion to half rounds to nearest even, like numpy and torch.
inline float half_to_float(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (mant << 13));  // inf / nan
  if (exp == 0) {
    if (mant == 0) return bits_to_float(sign);
    // Subnormal half: renormalise into a normal float.
    exp = 127 - 15 + 1;
    while (!(mant & 0x400u)) {
      mant <<= 1;
      --exp;
    }
    mant &= 0x3ffu;
    return bits_to_float(sign | (exp << 23) | (mant << 13));
  }
  return bits_to_float(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}
inline std::uint16_t float_to_half(float f) noexcept {
  const std::uint32_t b = float_to_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((b >> 16) & 0x8000u);
  const std::uint32_t abs = b & 0x7fffffffu;
  if (abs > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u | ((abs >> 13) & 0x3ffu));  // nan
  if (abs >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (abs < 0x38800000u) {  // below the smallest normal half: subnormal or zero
    if (abs < 0x33000000u) return sign;  // below half the smallest subnormal
    const std::uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(abs >> 23);  // 14..24
    std::uint32_t v = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1);
    const std::uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (v & 1u))) ++v;
    return static_cast<std::uint16_t>(sign | v);
  }
  std::uint32_t v = ((abs >> 13) - ((127 - 15) << 10));
  const std::uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (v & 1u))) ++v;  // may carry into the exponent: still correct
  return static_cast<std::uint16_t>(sign | v);
}
inline float bfloat16_to_float(std::uint16_t h) noexcept { return bits_to_float(static_cast<std::uint32_t>(h) << 16); }
inline std::uint16_t float_to_bfloat16(float f) noexcept {
  const std::uint32_t b = float_to_bits(f);
  if ((b & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((b >> 16) | 0x40u);  // keep nan a nan
  return static_cast<std::uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

// The element types the readers understand. Integer tensors are decoded to float only when every
// value is exactly representable (|v| <= 2^24); otherwise decoding throws numeric_error.
enum class element_type { f16, bf16, f32, f64, i8, u8, i16, i32, i64, boolean };

inline std::size_t element_size(element_type t) noexcept {
  switch (t) {
    case element_type::i8: case element_type::u8: case element_type::boolean: return 1;
    case element_type::f16: case element_type::bf16: case element_type::i16: return 2;
    case element_type::f32: case element_type::i32: return 4;
    case element_type::f64: case element_type::i64: return 8;
  }
  return 1;
}
// safetensors spelling, used as named_tensor::source_dtype by every reader.
inline const char* element_type_name(element_type t) noexcept {
  switch (t) {
    case element_type::f16: return "F16";
    case element_type::bf16: return "BF16";
    case element_type::f32: return "F32";
    case element_type::f64: return "F64";
    case element_type::i8: return "I8";
    case element_type::u8: return "U8";
    case element_type::i16: return "I16";
    case element_type::i32: return "I32";
    case element_type::i64: return "I64";
    case element_type::boolean: return "BOOL";
  }
  return "?";
}

inline double decode_element(const std::uint8_t* p, element_type t) noexcept {
  switch (t) {
    case element_type::f16: return half_to_float(load_le<std::uint16_t>(p));
    case element_type::bf16: return bfloat16_to_float(load_le<std::uint16_t>(p));
    case element_type::f32: return bits_to_float(load_le<std::uint32_t>(p));
    case element_type::f64: {
      const std::uint64_t b = load_le<std::uint64_t>(p);
      double d;
      std::memcpy(&d, &b, 8);
      return d;
    }
    case element_type::i8: return static_cast<std::int8_t>(p[0]);
    case element_type::u8: return p[0];
    case element_type::boolean: return p[0] != 0;
    case element_type::i16: return load_le<std::int16_t>(p);
    case element_type::i32: return load_le<std::int32_t>(p);
    case element_type::i64: return static_cast<double>(load_le<std::int64_t>(p));
  }
  return 0;
}
inline bool is_integer_type(element_type t) noexcept {
  return t != element_type::f16 && t != element_type::bf16 && t != element_type::f32 && t != element_type::f64;
}

// Decodes `count` consecutive elements to float.
inline void decode_elements(const std::uint8_t* src, element_type type, std::uint64_t count, float* dst,
                            const std::string& what) {
  const std::size_t esize = element_size(type);
  if (type == element_type::f32) {
    for (std::uint64_t i = 0; i < count; ++i) dst[i] = bits_to_float(load_le<std::uint32_t>(src + i * 4));
    return;
  }
  for (std::uint64_t i = 0; i < count; ++i) {
    const double v = decode_element(src + i * esize, type);
    FACENET_CHECK(!is_integer_type(type) || std::abs(v) <= 16777216.0, numeric_error,
                  what + ": integer value " + std::to_string(v) + " is not exactly representable as float");
    dst[i] = static_cast<float>(v);
  }
}

// A byte range that has been checked against its container. Every offset read from a file is
// turned into one of these before it is dereferenced.
struct byte_span {
  const std::uint8_t* data = nullptr;
  std::uint64_t size = 0;

  byte_span sub(std::uint64_t offset, std::uint64_t length, const std::string& what) const {
    FACENET_CHECK(offset <= size && length <= size - offset, format_error,
                  what + ": range [" + std::to_string(offset) + ", +" + std::to_string(length) + ") exceeds the " +
                      std::to_string(size) + " bytes available");
    return {data + offset, length};
  }
  std::string str() const { return std::string(reinterpret_cast<const char*>(data), static_cast<std::size_t>(size)); }
};

// Sequential reader over a byte_span; `what` (usually the file name) prefixes every error.
class span_reader {
 public:
  span_reader(byte_span bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

  std::uint64_t position() const noexcept { return pos_; }
  std::uint64_t remaining() const noexcept { return bytes_.size - pos_; }
  bool at_end() const noexcept { return pos_ == bytes_.size; }
  const std::string& what() const noexcept { return what_; }

  const std::uint8_t* take(std::uint64_t n, const char* field) {
    FACENET_CHECK(n <= remaining(), format_error,
                  what_ + ": truncated at offset " + std::to_string(pos_) + " reading " + field + " (need " +
                      std::to_string(n) + " bytes, " + std::to_string(remaining()) + " left)");
    const std::uint8_t* p = bytes_.data + pos_;
    pos_ += n;
    return p;
  }
  template <class T>
  T read(const char* field) {
    return load_le<T>(take(sizeof(T), field));
  }
  std::uint8_t byte(const char* field) { return *take(1, field); }
  std::string string(std::uint64_t n, const char* field) {
    const std::uint8_t* p = take(n, field);
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  byte_span span(std::uint64_t n, const char* field) { return {take(n, field), n}; }
  void seek(std::uint64_t pos) {
    FACENET_CHECK(pos <= bytes_.size, format_error,
                  what_ + ": seek to offset " + std::to_string(pos) + " beyond the end (" + std::to_string(bytes_.size) + " bytes)");
    pos_ = pos;
  }

 private:
  byte_span bytes_;
  std::string what_;
  std::uint64_t pos_ = 0;
};

// Element strides, in elements, of a row-major (C order) or column-major (Fortran order) array.
inline std::vector<std::int64_t> contiguous_strides(const shape& s, bool fortran_order) {
  std::vector<std::int64_t> st(static_cast<std::size_t>(s.rank()));
  std::int64_t acc = 1;
  for (int k = 0; k < s.rank(); ++k) {
    const int i = fortran_order ? k : s.rank() - 1 - k;
    st[static_cast<std::size_t>(i)] = acc;
    acc *= s[i];
  }
  return st;
}

// Decodes a (possibly strided) array of `type` elements from `storage` into a new contiguous float
// tensor. `offset` and `strides` are in elements, as torch and numpy record them. The whole
// addressed range is checked against the storage before any element is read.
inline Tensor<float> decode_tensor(byte_span storage, element_type type, const shape& s, std::int64_t offset,
                                   const std::vector<std::int64_t>& strides, const std::string& what) {
  FACENET_CHECK(static_cast<int>(strides.size()) == s.rank(), format_error,
                what + ": " + std::to_string(strides.size()) + " strides for shape " + s.str());
  const std::uint64_t esize = element_size(type);
  const std::uint64_t capacity = storage.size / esize;
  const std::uint64_t numel = shape_numel(s, what);
  FACENET_CHECK(offset >= 0, format_error, what + ": negative storage offset " + std::to_string(offset));
  // Saved weights never repeat storage elements; without this, zero or overlapping strides would let
  // a few bytes of storage demand an arbitrarily large output allocation.
  FACENET_CHECK(numel <= capacity, format_error,
                what + ": shape " + s.str() + " has more elements than its " + std::to_string(capacity) +
                    "-element storage (broadcast or overlapping views are not supported)");
  std::uint64_t last = static_cast<std::uint64_t>(offset);
  if (numel > 0) {
    for (int i = 0; i < s.rank(); ++i) {
      const std::int64_t st = strides[static_cast<std::size_t>(i)];
      FACENET_CHECK(st >= 0, format_error, what + ": negative stride " + std::to_string(st));
      last = checked_add(last, checked_mul(static_cast<std::uint64_t>(s[i] - 1), static_cast<std::uint64_t>(st), what), what);
    }
    FACENET_CHECK(last < capacity, format_error,
                  what + ": shape " + s.str() + " at offset " + std::to_string(offset) + " reaches element " +
                      std::to_string(last) + " but the storage holds " + std::to_string(capacity));
  }
  Tensor<float> out = Tensor<float>::uninitialized(s);
  if (strides == contiguous_strides(s, false)) {  // the common case: one linear pass
    decode_elements(storage.data + static_cast<std::uint64_t>(offset) * esize, type, numel, out.data(), what);
    return out;
  }
  std::int64_t idx[shape::max_rank] = {};
  for (std::uint64_t k = 0; k < numel; ++k) {
    std::int64_t e = offset;
    for (int i = 0; i < s.rank(); ++i) e += idx[i] * strides[static_cast<std::size_t>(i)];
    decode_elements(storage.data + static_cast<std::uint64_t>(e) * esize, type, 1, out.data() + k, what);
    for (int i = s.rank() - 1; i >= 0; --i) {
      if (++idx[i] < s[i]) break;
      idx[i] = 0;
    }
  }
  return out;
}

}  // namespace facenet::io
