// The only file that names xsimd. Kernels use facenet::simd::batch<T> and the helpers below, so an
// xsimd upgrade (8.1 on Debian 12 -> newer API) touches this file alone.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

// GCC 12.2's AVX-512 intrinsic headers raise false -Wmaybe-uninitialized / -Wuninitialized
// warnings (GCC bug 105593, fixed in 12.3) inside xsimd's out-of-line pow/exp/log; the warning is
// attributed to the intrinsic header, so it is silenced where that header is first included.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace facenet::simd {

template <class T>
using batch = xsimd::batch<T>;

// Lanes per register for the architecture this translation unit was compiled for.
template <class T>
inline constexpr std::size_t width = batch<T>::size;

inline const char* arch_name() { return xsimd::default_arch::name(); }

// A vector of exactly N lanes of T from any supported architecture (void if none has one): the
// few-column GEMM keeps one k step of an mr-row packed panel per register (8 floats on AVX-512).
// Used through its members (load_unaligned, store_aligned, broadcast constructor) and simd::fma.
template <class T, std::size_t N>
using sized_batch = xsimd::make_sized_batch_t<T, N>;

template <class T>
inline batch<T> broadcast(T v) {
  return batch<T>(v);
}
template <class T>
inline batch<T> load(const T* p) {
  return batch<T>::load_unaligned(p);
}
template <class T>
inline batch<T> load_aligned(const T* p) {
  return batch<T>::load_aligned(p);
}
template <class T>
inline void store(T* p, const batch<T>& v) {
  v.store_unaligned(p);
}
template <class T>
inline void store_aligned(T* p, const batch<T>& v) {
  v.store_aligned(p);
}
#if defined(__AVX2__)
namespace detail {
// vmaskmov's mask of the first n lanes (all lanes when n >= width).
template <class T>
inline __m256i first_lanes(std::size_t n) {
  if constexpr (sizeof(T) == 4)
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(std::min<std::size_t>(n, 8))),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  else
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(static_cast<long long>(std::min<std::size_t>(n, 4))),
                              _mm256_setr_epi64x(0, 1, 2, 3));
}
}  // namespace detail
#endif

// Loads n < width elements, zero-filling the rest (tails of rows that are not a multiple of width).
// With AVX-512 a masked load/store, with AVX2 a masked load and narrowing stores: the scalar copy
// through a stack buffer cost a store-forwarding stall on every row tail (most of a 3x3 pooling's time on IRv1's 77-wide maps). Masked-off lanes are
// not accessed, so reading up to the end of a buffer stays in bounds.
template <class T>
inline batch<T> load_partial(const T* p, std::size_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && width<T> == 16)
    return batch<T>(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p));
  if constexpr (std::is_same<T, double>::value && width<T> == 8)
    return batch<T>(_mm512_maskz_loadu_pd(static_cast<__mmask8>((1u << n) - 1u), p));
#endif
#if defined(__AVX2__)
  if constexpr (std::is_same<T, float>::value && width<T> == 8) return batch<T>(_mm256_maskload_ps(p, detail::first_lanes<T>(n)));
  if constexpr (std::is_same<T, double>::value && width<T> == 4) return batch<T>(_mm256_maskload_pd(p, detail::first_lanes<T>(n)));
#endif
  alignas(64) T tmp[width<T>] = {};
  for (std::size_t i = 0; i < n; ++i) tmp[i] = p[i];
  return batch<T>::load_aligned(tmp);
}
template <class T>
inline void store_partial(T* p, const batch<T>& v, std::size_t n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && width<T> == 16) {
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
    return;
  }
  if constexpr (std::is_same<T, double>::value && width<T> == 8) {
    _mm512_mask_storeu_pd(p, static_cast<__mmask8>((1u << n) - 1u), v);
    return;
  }
#endif
#if defined(__AVX2__)
  // Not vmaskmov: as a store it took 3.6 ns on the AVX2 machine (Zen 2) against 1.0-1.2 for these
  // at most three narrowing stores, and 1.8 for the copy through a stack buffer.
  if (n >= width<T>) return v.store_unaligned(p);
  if constexpr (std::is_floating_point<T>::value && width<T> * sizeof(T) == 32) {  // stores of 16, 8 and 4 bytes
    __m256i bits;
    if constexpr (std::is_same<T, float>::value)
      bits = _mm256_castps_si256(v);
    else
      bits = _mm256_castpd_si256(v);
    auto* out = reinterpret_cast<char*>(p);
    std::size_t bytes = n * sizeof(T);
    __m128i part = _mm256_castsi256_si128(bits);
    if (bytes >= 16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), part);
      part = _mm256_extracti128_si256(bits, 1);
      out += 16;
      bytes -= 16;
    }
    if (bytes >= 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out), part);
      part = _mm_srli_si128(part, 8);
      out += 8;
      bytes -= 8;
    }
    if (bytes >= 4) {
      const std::int32_t last = _mm_cvtsi128_si32(part);
      std::memcpy(out, &last, sizeof(last));
    }
    return;
  }
#endif
  alignas(64) T tmp[width<T>];
  v.store_aligned(tmp);
  for (std::size_t i = 0; i < n; ++i) p[i] = tmp[i];
}
// Lanes [lo[0], ..., lo[w/2 - 1], hi[0], ..., hi[w/2 - 1]]: two mr-row float panels of a packed GEMM
// operand in one register (8-row panels on AVX-512, 4-row on AVX2).
template <class T>
inline batch<T> load_halves(const T* lo, const T* hi) {
  constexpr std::size_t half = width<T> / 2;
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && width<T> == 16)
    return batch<T>(_mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(_mm256_loadu_ps(lo))),
                                                        _mm256_castps_pd(_mm256_loadu_ps(hi)), 1)));
#elif defined(__AVX__)
  // Two 4-row panels on AVX2. Through the stack the two narrow stores could not forward to the wide
  // load, a stall on every k step of the few-column GEMM.
  if constexpr (std::is_same<T, float>::value && width<T> == 8)
    return batch<T>(_mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(lo)), _mm_loadu_ps(hi), 1));
#endif
  alignas(64) T tmp[width<T>];
  for (std::size_t i = 0; i < half; ++i) tmp[i] = lo[i], tmp[half + i] = hi[i];
  return batch<T>::load_aligned(tmp);
}

// v[i] = p[2 i] for i < n (n <= width), other lanes 0; reads p[0, 2n - 1) only. For stride-2
// im2col: with AVX-512 two masked loads and one two-source permute per vector (AVX2: see below). GCC made the scalar
// loop move two elements at a time, and im2col was 37% of NN4 conv1's time (7x7, stride 2).
template <class T>
inline batch<T> load_even(const T* p, std::size_t n = width<T>) {
  const std::size_t span = 2 * n - 1;  // elements read
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && width<T> == 16) {
    const auto mask = [](std::size_t k) { return static_cast<__mmask16>(k >= 16 ? 0xffffu : (1u << k) - 1u); };
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return batch<T>(_mm512_permutex2var_ps(_mm512_maskz_loadu_ps(mask(span), p), idx,
                                           _mm512_maskz_loadu_ps(mask(span > 16 ? span - 16 : 0), p + 16)));
  }
  if constexpr (std::is_same<T, double>::value && width<T> == 8) {
    const auto mask = [](std::size_t k) { return static_cast<__mmask8>(k >= 8 ? 0xffu : (1u << k) - 1u); };
    const __m512i idx = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    return batch<T>(_mm512_permutex2var_pd(_mm512_maskz_loadu_pd(mask(span), p), idx,
                                           _mm512_maskz_loadu_pd(mask(span > 8 ? span - 8 : 0), p + 8)));
  }
#endif
#if defined(__AVX2__)
  // Two masked loads, the even lanes of each 128-bit half picked by one shuffle, then the 64-bit
  // pairs put in order: [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6] -> [lo0 lo2 lo4 lo6 hi0 hi2 hi4 hi6].
  constexpr std::size_t w = width<T>;
  if constexpr ((std::is_same<T, float>::value && w == 8) || (std::is_same<T, double>::value && w == 4)) {
    const std::size_t rest = span > w ? span - w : 0;
    if constexpr (std::is_same<T, float>::value) {
      const __m256 even = _mm256_shuffle_ps(_mm256_maskload_ps(p, detail::first_lanes<T>(span)),
                                            _mm256_maskload_ps(p + w, detail::first_lanes<T>(rest)), _MM_SHUFFLE(2, 0, 2, 0));
      return batch<T>(_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0))));
    } else {
      const __m256d even = _mm256_shuffle_pd(_mm256_maskload_pd(p, detail::first_lanes<T>(span)),
                                             _mm256_maskload_pd(p + w, detail::first_lanes<T>(rest)), 0);
      return batch<T>(_mm256_permute4x64_pd(even, _MM_SHUFFLE(3, 1, 2, 0)));
    }
  }
#endif
  (void)span;
  alignas(64) T tmp[width<T>] = {};
  for (std::size_t i = 0; i < n; ++i) tmp[i] = p[2 * i];
  return batch<T>::load_aligned(tmp);
}
// a * b + c with one rounding wherever the machine has FMA, at every optimisation level: xsimd 8.1
// has no AVX-512 fma and falls back to a * b + c, which GCC fuses only from -O2 on (-O1 builds -
// the sanitizer builds - then rounded the GEMM differently and ran it at half speed). Any batch
// width (the few-column GEMM uses 8-lane batches); the scalar overload rounds like the vector one,
// so scalar tails and vector bodies agree.
template <class T, class A>
inline xsimd::batch<T, A> fma(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b, const xsimd::batch<T, A>& c) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && xsimd::batch<T, A>::size == 16)
    return xsimd::batch<T, A>(_mm512_fmadd_ps(a, b, c));
  if constexpr (std::is_same<T, double>::value && xsimd::batch<T, A>::size == 8)
    return xsimd::batch<T, A>(_mm512_fmadd_pd(a, b, c));
#endif
  return xsimd::fma(a, b, c);
}
template <class T, class = std::enable_if_t<std::is_floating_point<T>::value>>
inline T fma(T a, T b, T c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}
template <class T>
inline batch<T> max(const batch<T>& a, const batch<T>& b) {
  return xsimd::max(a, b);
}
template <class T>
inline batch<T> min(const batch<T>& a, const batch<T>& b) {
  return xsimd::min(a, b);
}
template <class T>
inline batch<T> sqrt(const batch<T>& a) {
  return xsimd::sqrt(a);
}
// 1/sqrt(a) for float within a few ulp: a hardware estimate and Newton steps, several times the
// throughput of a square root and a division (AVX-512: 14-bit estimate; AVX2: 12-bit estimate, one
// Newton step each: measured on AVX2 over a in [2^-20, 2^20], at most 1.8e-7 relative error, 1.5
// float epsilons); elsewhere (and for double) 1 / sqrt(a) exactly. a > 0.
template <class T>
inline batch<T> rsqrt(const batch<T>& a) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value && width<T> == 16) {
    const __m512 y = _mm512_rsqrt14_ps(a);  // y * (1.5 - a/2 * y^2)
    return batch<T>(_mm512_mul_ps(y, _mm512_fnmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), a), _mm512_mul_ps(y, y),
                                                      _mm512_set1_ps(1.5f))));
  }
#elif defined(__AVX__)
  if constexpr (std::is_same<T, float>::value && width<T> == 8) {
    const __m256 half_a = _mm256_mul_ps(_mm256_set1_ps(0.5f), a), three_halves = _mm256_set1_ps(1.5f);
    const __m256 y = _mm256_rsqrt_ps(a);
    return batch<T>(_mm256_mul_ps(y, _mm256_sub_ps(three_halves, _mm256_mul_ps(half_a, _mm256_mul_ps(y, y)))));
  }
#endif
  return batch<T>(T(1)) / xsimd::sqrt(a);
}
template <class T>
inline batch<T> exp(const batch<T>& a) {
  return xsimd::exp(a);
}
template <class T>
inline batch<T> pow(const batch<T>& a, const batch<T>& b) {
  return xsimd::pow(a, b);
}
// a > b ? x : y, lane-wise.
template <class T>
inline batch<T> select_gt(const batch<T>& a, const batch<T>& b, const batch<T>& x, const batch<T>& y) {
  return xsimd::select(a > b, x, y);
}
// Lane-wise max where a NaN in either operand wins (PyTorch's max-pooling semantics; xsimd::max
// follows maxps and would drop a NaN in the first operand).
template <class T>
inline batch<T> max_propagate_nan(const batch<T>& acc, const batch<T>& v) {
  return xsimd::select((v > acc) || !(v == v), v, acc);  // not v != v: xsimd compares ordered
}
// max_propagate_nan's update carrying an argmax along: lanes where v wins take v and v_at.
template <class T>
inline void max_with_index(batch<T>& acc, batch<T>& at, const batch<T>& v, const batch<T>& v_at) {
  const auto take = (v > acc) || !(v == v);
  acc = xsimd::select(take, v, acc);
  at = xsimd::select(take, v_at, at);
}
// {0, 1, ..., width - 1}.
template <class T>
inline batch<T> iota() {
  alignas(64) T lanes[width<T>];
  for (std::size_t i = 0; i < width<T>; ++i) lanes[i] = static_cast<T>(i);
  return batch<T>::load_aligned(lanes);
}
// v, held in a register from here on. Short of registers (AVX2 has 16), GCC folds a loaded vector
// into every FMA that reads it as a memory operand: the GEMM micro-kernel then loaded each B vector
// once per A row, 20 loads per 12 FMAs, more than two load ports serve (56% of peak on Zen 2).
template <class T>
inline batch<T> in_register(batch<T> v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+v"(v.data));
#endif
  return v;
}
// Horizontal sum (xsimd 8.1 spells it hadd; newer versions reduce_add).
template <class T>
inline T reduce_add(const batch<T>& v) {
  return xsimd::hadd(v);
}
template <class T>
inline T reduce_max(const batch<T>& v) {
  alignas(64) T tmp[width<T>];
  v.store_aligned(tmp);
  T m = tmp[0];
  for (std::size_t i = 1; i < width<T>; ++i) m = tmp[i] > m ? tmp[i] : m;
  return m;
}

}  // namespace facenet::simd
