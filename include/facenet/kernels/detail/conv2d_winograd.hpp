// Winograd F(m x m, 3x3), m = 2 or 4, for stride-1 3x3 inference convolution, and F(2x2, 5x5) for
// stride-1 5x5 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2015). Each m x m
// output tile reads an a x a input tile d (a = m + r - 1); with U = G g G^T (weights, transformed once
// at pack time) and V = B^T d B, the tile is A^T (U . V) A. Summed over input channels, the a*a element-wise products become a*a GEMMs
// M_xi = U_xi V_xi ([o x c] x [c x tiles]). F(2x2) multiplies 16 times per (o, c) for 4 outputs where
// the direct convolution multiplies 36 times (2.25x fewer); F(4x4) 36 times for 16 outputs (4x fewer),
// with larger transforms and more rounding (its interpolation points are 0, +-1, +-2 and infinity).
// F(2x2, 5x5) uses the same six points, so the same input transform B^T: 36 multiplications per (o, c)
// for 4 outputs where the direct 5x5 convolution takes 100 (2.8x fewer).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>
#include <utility>

#include "facenet/core/parallel.hpp"
#include "facenet/kernels/detail/conv2d_lowering.hpp"
#include "facenet/kernels/detail/gemm_core.hpp"

namespace facenet::kernels::detail {

// Whether the forms for r x r weights (3: F(2x2) and F(4x4); 5: F(2x2, 5x5)) run this convolution.
inline bool winograd_applies(std::int64_t kh, std::int64_t kw, std::int64_t sh, std::int64_t sw, std::int64_t r = 3) {
  return kh == r && kw == r && sh == 1 && sw == 1;
}

// The one-dimensional transforms of F(m, r); the 2-D ones apply them along columns, then rows.
template <int M, int R = 3>
struct winograd_transforms;

template <>
struct winograd_transforms<2> {
  static constexpr int alpha = 4;
  // G v for the 3 weights v: G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]].
  static void weights(const double* v, double* out) {
    out[0] = v[0];
    out[1] = 0.5 * (v[0] + v[1] + v[2]);
    out[2] = 0.5 * (v[0] - v[1] + v[2]);
    out[3] = v[2];
  }
  // B^T d: B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
  template <class V>
  static void input(const V* d, V* t) {
    t[0] = d[0] - d[2];
    t[1] = d[1] + d[2];
    t[2] = d[2] - d[1];
    t[3] = d[1] - d[3];
  }
  // A^T m: A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].
  template <class V>
  static void output(const V* m, V* o) {
    o[0] = m[0] + m[1] + m[2];
    o[1] = m[1] - m[2] - m[3];
  }
  // The weight gradient's transforms (A and G exchanged): A y for 2 values of dy, G^T p for 4 sums.
  template <class V>
  static void output_transposed(const V* y, V* t) {
    t[0] = y[0];
    t[1] = y[0] + y[1];
    t[2] = y[0] - y[1];
    t[3] = -y[1];
  }
  static void weights_transposed(const double* p, double* k) {
    k[0] = p[0] + 0.5 * (p[1] + p[2]);
    k[1] = 0.5 * (p[1] - p[2]);
    k[2] = 0.5 * (p[1] + p[2]) + p[3];
  }
};

template <>
struct winograd_transforms<4> {
  static constexpr int alpha = 6;
  // G = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6], [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]].
  static void weights(const double* v, double* out) {
    out[0] = v[0] / 4;
    out[1] = -(v[0] + v[1] + v[2]) / 6;
    out[2] = -(v[0] - v[1] + v[2]) / 6;
    out[3] = v[0] / 24 + v[1] / 12 + v[2] / 6;
    out[4] = v[0] / 24 - v[1] / 12 + v[2] / 6;
    out[5] = v[2];
  }
  // B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
  //        [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], in shared sums.
  template <class V>
  static void input(const V* d, V* t) {
    const V four(4), minus_four(-4), minus_five(-5);
    const V a = simd::fma(minus_four, d[2], d[4]), b = simd::fma(minus_four, d[1], d[3]);  // d4 - 4 d2, d3 - 4 d1
    const V c = d[4] - d[2], e = V(2) * (d[3] - d[1]);
    t[0] = simd::fma(four, d[0], simd::fma(minus_five, d[2], d[4]));
    t[1] = a + b;
    t[2] = a - b;
    t[3] = c + e;
    t[4] = c - e;
    t[5] = simd::fma(four, d[1], simd::fma(minus_five, d[3], d[5]));
  }
  // A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]].
  template <class V>
  static void output(const V* m, V* o) {
    const V s1 = m[1] + m[2], d1 = m[1] - m[2], s2 = m[3] + m[4], d2 = m[3] - m[4];
    o[0] = m[0] + s1 + s2;
    o[1] = simd::fma(V(2), d2, d1);
    o[2] = simd::fma(V(4), s2, s1);
    o[3] = simd::fma(V(8), d2, d1) + m[5];
  }
  // A y for 4 values of dy: A = [[1, 0, 0, 0], [1, 1, 1, 1], [1, -1, 1, -1], [1, 2, 4, 8], [1, -2, 4, -8],
  // [0, 0, 0, 1]].
  template <class V>
  static void output_transposed(const V* y, V* t) {
    const V even = y[0] + y[2], odd = y[1] + y[3];
    const V even4 = simd::fma(V(4), y[2], y[0]), odd4 = simd::fma(V(8), y[3], V(2) * y[1]);
    t[0] = y[0];
    t[1] = even + odd;
    t[2] = even - odd;
    t[3] = even4 + odd4;
    t[4] = even4 - odd4;
    t[5] = y[3];
  }
  // G^T p for 6 sums.
  static void weights_transposed(const double* p, double* k) {
    k[0] = p[0] / 4 - (p[1] + p[2]) / 6 + (p[3] + p[4]) / 24;
    k[1] = (p[2] - p[1]) / 6 + (p[3] - p[4]) / 12;
    k[2] = (p[3] + p[4] - p[1] - p[2]) / 6 + p[5];
  }
};

// F(2, 5) on F(4, 3)'s points: G[k][j] = p_k^j / prod_{l != k} (p_k - p_l) for p = 0, 1, -1, 2, -2,
// and [0, 0, 0, 0, 1] for infinity; A^T rows are p^0 and p^1 (with the infinity term). Forward only.
template <>
struct winograd_transforms<2, 5> {
  static constexpr int alpha = 6;
  static void weights(const double* v, double* out) {
    const double even = v[0] + v[2] + v[4], odd = v[1] + v[3];
    const double even2 = v[0] + 4 * v[2] + 16 * v[4], odd2 = 2 * v[1] + 8 * v[3];
    out[0] = v[0] / 4;
    out[1] = -(even + odd) / 6;
    out[2] = -(even - odd) / 6;
    out[3] = (even2 + odd2) / 24;
    out[4] = (even2 - odd2) / 24;
    out[5] = v[4];
  }
  template <class V>
  static void input(const V* d, V* t) {
    winograd_transforms<4>::input(d, t);
  }
  // A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]].
  template <class V>
  static void output(const V* m, V* o) {
    o[0] = m[0] + m[1] + m[2] + m[3] + m[4];
    o[1] = simd::fma(V(2), m[3] - m[4], m[1] - m[2]) + m[5];
  }
};

// m x m output tiles covering the output. Tile (ty, tx) reads rows m ty .. m ty + a - 1 and the same
// columns of the zero-padded input (extra zero rows/columns when oh or ow is not a multiple of m). The
// padded copy is split by row and column phase (index mod m) into m * m planes of (th + h) x q values,
// q = tw + h with h = halo(), so that value (i, j) of tile (ty, tx) sits at plane((i % m) * m + j % m)
// + e + (i / m) * q + j / m with e = ty * q + tx. In this "extended" tile index e every transform is one
// contiguous SIMD loop over all tiles of the image, however narrow its rows (IRv1's 17x17 maps have 9
// tiles per row at m = 2); the h extra tiles per row (tx >= tw) are computed and dropped, as the
// implicit GEMM drops its extra columns.
struct winograd_tiling {
  int m, r;
  std::int64_t th, tw;
  int alpha() const { return m + r - 1; }
  // Extra tiles per row and rows of tiles that a tile's reads reach past the last: 1 for 3x3, 2 for
  // F(2x2, 5x5), whose 6-wide input tiles step by 2.
  std::int64_t halo() const { return (alpha() - 1) / m; }
  std::int64_t q() const { return tw + halo(); }
  std::int64_t plane() const { return (th + halo()) * q(); }
  std::int64_t phases() const { return std::int64_t(m) * m; }
  // A channel's phase planes, then zeros that the last extended tile's vectors read (up to halo() - 1
  // values and one vector past the planes): each channel has its own, so a thread transforming its
  // channels never reads one that another thread is padding. 16 = one AVX-512 float vector, the most
  // any target reads.
  std::int64_t channel() const { return phases() * plane() + 16 + halo(); }
  std::int64_t padded_size(std::int64_t c) const { return c * channel(); }
};

inline winograd_tiling winograd_tiling_of(const conv_geometry& g, int m, int r = 3) {
  return {m, r, (g.oh + m - 1) / m, (g.ow + m - 1) / m};
}

// The zero-padded copy of channels [ch0, ch1) of one image in the phase-plane layout above.
template <class T>
void winograd_pad(const conv_geometry& g, const winograd_tiling& tl, const T* x, std::int64_t ch0, std::int64_t ch1, T* xp) {
  const std::int64_t q = tl.q(), plane = tl.plane(), m = tl.m;
  // Each thread zeroes the planes it fills: one thread zeroing all of them took 5% of F(4x4)'s time.
  std::fill(xp + ch0 * tl.channel(), xp + ch1 * tl.channel(), T(0));
  for (std::int64_t ch = ch0; ch < ch1; ++ch)
    for (std::int64_t y = 0; y < g.h; ++y) {
      const T* src = x + (ch * g.h + y) * g.w;
      const std::int64_t py = y + g.pt;
      T* dst = xp + ch * tl.channel() + (py % m) * m * plane + (py / m) * q;
      // Input column xx lands in padded column xx + pl: its phase picks the plane, the quotient the slot.
      for (std::int64_t phase = 0; phase < m; ++phase) {
        const std::int64_t first = (phase - g.pl % m + m) % m;  // first xx with (xx + pl) % m == phase
        T* d = dst + phase * plane + (first + g.pl) / m;
        for (std::int64_t xx = first, k = 0; xx < g.w; xx += m, ++k) d[k] = src[xx];
      }
    }
}

// Elements of A-packed U: one packed [o x c] matrix per transformed point.
template <class T>
std::int64_t winograd_packed_size(int m, std::int64_t o, std::int64_t c, int r = 3) {
  return std::int64_t(m + r - 1) * (m + r - 1) * packed_a_size<T>(o, c);
}

// U_xi[o][c] = (G g G^T)[xi] for OIHW r x r weights, each point's matrix packed as a GEMM A operand.
// Computed in double: it runs once.
template <int M, class T, int R = 3>
void winograd_pack_weights(const T* w, std::int64_t o, std::int64_t c, T* packed) {
  using W = winograd_transforms<M, R>;
  constexpr int A = W::alpha;
  std::vector<T> u(static_cast<std::size_t>(A * A * o * c));
  for (std::int64_t oc = 0; oc < o; ++oc)
    for (std::int64_t ic = 0; ic < c; ++ic) {
      const T* k = w + (oc * c + ic) * R * R;
      double gk[A][R], col[R], out[A];
      for (int x = 0; x < R; ++x) {  // G g: transform each kernel column
        for (int y = 0; y < R; ++y) col[y] = static_cast<double>(k[y * R + x]);
        W::weights(col, out);
        for (int i = 0; i < A; ++i) gk[i][x] = out[i];
      }
      for (int i = 0; i < A; ++i) {  // (G g) G^T: transform each row
        W::weights(gk[i], out);
        for (int j = 0; j < A; ++j) u[static_cast<std::size_t>(((i * A + j) * o + oc) * c + ic)] = static_cast<T>(out[j]);
      }
    }
  for (int xi = 0; xi < A * A; ++xi)
    pack_a_full(a_source<T>{u.data() + xi * o * c, c, false, nullptr}, o, c, packed + xi * packed_a_size<T>(o, c));
}

// Extended tiles are processed a whole SIMD vector at a time: V and M rows have a leading dimension
// rounded up to the vector width, and the padded copy has slack for the last vector's reads.
template <class T>
std::int64_t winograd_ld(std::int64_t n) {
  return round_up(n, static_cast<std::int64_t>(simd::width<T>));
}
// Distance between the points' matrices of `rows` rows: one vector more than rows * ld, so the a*a
// streams a transform reads or writes at once do not all fall in one L1 set (rows * ld is often a
// multiple of 4 KiB: 32 x 96 floats on Block35) and exceed its 8 ways.
template <class T>
std::int64_t winograd_point_stride(std::int64_t rows, std::int64_t ld) {
  return rows * ld + static_cast<std::int64_t>(simd::width<T>);
}

// V[xi][ch][e] = (B^T d B)[xi] for channels [ch0, ch1) and the n extended tiles from tile row ty0 of
// the padded copy xp. V's rows are ld apart and its points `point`; v may start anywhere in a row (a
// chunk holds the tiles of several images one after the other): the last vector's extra columns are
// overwritten by the next image's tiles, or fall in the row's padding.
template <int M, class T, int R = 3>
void winograd_input(const T* xp, std::int64_t ch0, std::int64_t ch1, const winograd_tiling& tl, std::int64_t ty0,
                    std::int64_t n, T* v, std::int64_t ld, std::int64_t point) {
  using V = simd::batch<T>;
  using W = winograd_transforms<M, R>;
  constexpr int A = W::alpha;
  const std::int64_t q = tl.q(), plane = tl.plane();
  for (std::int64_t ch = ch0; ch < ch1; ++ch) {
    const T* base = xp + ch * tl.channel() + ty0 * q;
    T* dst = v + ch * ld;
    for (std::int64_t e = 0; e < n; e += static_cast<std::int64_t>(simd::width<T>)) {
      V s[A][A];  // B^T d: combine the rows of each column j
      for (int j = 0; j < A; ++j) {
        const T* col = base + (j % M) * plane + j / M + e;
        V d[A], t[A];
        for (int i = 0; i < A; ++i) d[i] = simd::load(col + (i % M) * M * plane + (i / M) * q);
        W::input(d, t);
        for (int i = 0; i < A; ++i) s[i][j] = t[i];
      }
      for (int i = 0; i < A; ++i) {  // (.) B: combine the columns
        V t[A];
        W::input(s[i], t);
        for (int j = 0; j < A; ++j) simd::store(dst + (i * A + j) * point + e, t[j]);
      }
    }
  }
}

// y = epilogue(A^T M A) for output channels [o0, o1) of one image and its n extended tiles from tile
// row ty0: M[xi][oc][e] (rows m_ld apart, points m_point; m may start anywhere in a row). Output
// (i, j) of every tile goes to phase[i * m + j][e]; each output row is then interleaved from its m
// phases into `row`, finished (bias, residual, relu) and cropped to the output by epilogue_row.
// Scratch: winograd_staging_size.
template <int M, class T, int R = 3>
void winograd_output(const conv_geometry& g, const conv_forward_args<T>& a, const winograd_tiling& tl, std::int64_t o0,
                     std::int64_t o1, std::int64_t ty0, std::int64_t n, const T* m, std::int64_t m_ld, std::int64_t m_point,
                     T* y, T* scratch) {
  using V = simd::batch<T>;
  using W = winograd_transforms<M, R>;
  constexpr int A = W::alpha;
  const std::int64_t ld = winograd_ld<T>(n), q = tl.q();
  T* const phase = scratch;
  T* const row = scratch + M * M * ld;
  for (std::int64_t oc = o0; oc < o1; ++oc) {
    const T* src = m + oc * m_ld;
    for (std::int64_t e = 0; e < n; e += static_cast<std::int64_t>(simd::width<T>)) {
      V r[M][A];  // A^T M: combine the rows of each column j
      for (int j = 0; j < A; ++j) {
        V col[A], o[M];
        for (int i = 0; i < A; ++i) col[i] = simd::load(src + (i * A + j) * m_point + e);
        W::output(col, o);
        for (int i = 0; i < M; ++i) r[i][j] = o[i];
      }
      for (int i = 0; i < M; ++i) {  // (.) A: combine the columns
        V o[M];
        W::output(r[i], o);
        for (int j = 0; j < M; ++j) simd::store_aligned(phase + (i * M + j) * ld + e, o[j]);
      }
    }
    const T bias = a.bias ? a.bias[oc] : T(0);
    for (std::int64_t ty = ty0; ty < ty0 + n / q; ++ty)
      for (std::int64_t i = 0; i < M && M * ty + i < g.oh; ++i) {
        const T* first = phase + i * M * ld + (ty - ty0) * q;
        for (std::int64_t tx = 0; tx < tl.tw; ++tx)
          for (int j = 0; j < M; ++j) row[M * tx + j] = first[j * ld + tx];
        const std::int64_t off = oc * g.spatial() + (M * ty + i) * g.ow;
        epilogue_row(row, y + off, g.ow, bias, a.residual ? a.residual + off : nullptr, a.residual_scale, a.relu);
      }
  }
}

// Chunks of tiles. The threads share each chunk: they transform its input split by channels,
// multiply split by points (every GEMM spans all the chunk's tiles: splitting the tiles between the
// threads halved N, and F(4x4) gained 1.2x from a second thread instead of about 1.9x) and finish
// split by output channels. Chunks of about 512K values of V and M together (a*a * (c + o) per tile;
// 2 MiB in float) measured fastest single-threaded on IRv1's conv2d_4a and NN4's 3x3s with F(2x2):
// 192K-value chunks made the GEMMs too narrow (N = 38 on conv2d_4a: 1.12x over implicit GEMM instead
// of 1.27x), 2M and 8M were no faster.
// How many units of `size` extended tiles each (a tile row, an image) one chunk holds: at least one.
inline std::int64_t winograd_chunk_fit(const conv_geometry& g, const winograd_tiling& tl, std::int64_t size) {
  const std::int64_t per_tile = std::int64_t(tl.alpha()) * tl.alpha() * (g.c + g.o);
  return std::max<std::int64_t>(1, (std::int64_t(512) * 1024) / (per_tile * size));
}
// Tile rows per chunk of one image, balanced over its chunks.
inline std::int64_t winograd_chunk_rows(const conv_geometry& g, const winograd_tiling& tl) {
  const std::int64_t cap = winograd_chunk_fit(g, tl, tl.q());
  const std::int64_t chunks = (tl.th + cap - 1) / cap;
  return (tl.th + chunks - 1) / chunks;
}

// The chunks of a call over g.n images, as ranges of their tile rows numbered on from one image into
// the next. Images whose tiles fit in a chunk go several whole images to a chunk, so that small maps
// fill their GEMMs too (NN4's 12x12 maps have 9 tiles of 4x4 per image); larger ones are split as
// above. Chunks that straddled images instead ran NN4's conv3 and IRv1's conv2d_4a 5-7% slower (their
// segments then start inside a vector).
struct winograd_chunking {
  std::int64_t th, images_per_chunk, rows;  // images_per_chunk > 0: whole images; else `rows` rows of one image
  std::int64_t per_image() const { return images_per_chunk > 0 ? 1 : (th + rows - 1) / rows; }
  std::int64_t count(std::int64_t n) const {
    return images_per_chunk > 0 ? (n + images_per_chunk - 1) / images_per_chunk : n * per_image();
  }
  std::int64_t max_rows() const { return images_per_chunk > 0 ? images_per_chunk * th : rows; }
  void range(std::int64_t k, std::int64_t n, std::int64_t& r0, std::int64_t& r1) const {
    if (images_per_chunk > 0) {
      r0 = k * images_per_chunk * th;
      r1 = std::min(n, (k + 1) * images_per_chunk) * th;
      return;
    }
    const std::int64_t img = k / per_image(), j = k % per_image();
    r0 = img * th + j * rows;
    r1 = img * th + std::min(th, (j + 1) * rows);
  }
};
inline winograd_chunking winograd_chunking_of(const conv_geometry& g, const winograd_tiling& tl) {
  const std::int64_t rows = winograd_chunk_rows(g, tl);
  if (rows < tl.th || g.n < 2) return {tl.th, 0, rows};
  const std::int64_t fit = winograd_chunk_fit(g, tl, tl.th * tl.q());
  const std::int64_t chunks = (g.n + fit - 1) / fit;
  return {tl.th, (g.n + chunks - 1) / chunks, rows};
}

// Row length of a chunk's V and M for n extended tiles: whole vectors, plus one when the chunk holds
// several images, for the last image's last vector, which starts wherever the image's tiles do (the
// GEMMs compute winograd_ld(n) columns; the output transform reads that vector's extra lanes and
// drops them).
template <class T>
std::int64_t winograd_chunk_ld(std::int64_t n, bool several_images) {
  return winograd_ld<T>(n) + (several_images ? static_cast<std::int64_t>(simd::width<T>) : 0);
}

// Output staging of one thread (winograd_output) for chunks of `rows` tile rows, in whole 64-byte
// lines so that every thread's staging is aligned.
template <class T>
std::int64_t winograd_staging_size(const winograd_tiling& tl, std::int64_t rows) {
  return round_up(tl.phases() * winograd_ld<T>(rows * tl.q()) + tl.m * tl.q(), std::int64_t(64 / sizeof(T)));
}

// Elements of the caller's workspace: the padded copy of one image (chunks take the images in order,
// so the image a chunk continues is the last one padded).
inline std::int64_t winograd_workspace_size(const conv_geometry& g, int m, int r = 3) {
  return winograd_tiling_of(g, m, r).padded_size(g.c);
}

// The g.n images at x: y = epilogue(conv(x)) (residual r, per image, or null) with U pre-packed by
// winograd_pack_weights<M, T, R>.
template <int M, class T, int R = 3>
void forward_images_winograd(const conv_geometry& g, const conv_forward_args<T>& a, const T* packed_u, const T* x, T* y,
                             const T* r, T* ws) {
  constexpr int points = (M + R - 1) * (M + R - 1);
  const winograd_tiling tl = winograd_tiling_of(g, M, R);
  const std::int64_t usize = packed_a_size<T>(g.o, g.c), q = tl.q(), th = tl.th;
  const int threads = parallel::in_parallel() ? 1 : std::max(1, parallel::max_threads());
  const winograd_chunking chunking = winograd_chunking_of(g, tl);
  const std::int64_t rows = chunking.max_rows(), chunks = chunking.count(g.n);
  const bool several = chunking.images_per_chunk > 1;
  const std::int64_t cap = winograd_chunk_ld<T>(rows * q, several), staging = winograd_staging_size<T>(tl, rows);
  // V and M, shared by the threads, then each thread's output staging.
  T* v = thread_scratch<T>(3, points * (winograd_point_stride<T>(g.c, cap) + winograd_point_stride<T>(g.o, cap)) +
                                  threads * staging);
  T* m = v + points * winograd_point_stride<T>(g.c, cap);
  T* out = m + points * winograd_point_stride<T>(g.o, cap);
  parallel::parallel_region(
      [&](int t, int nt) {
        const auto share = [&](std::int64_t count) {
          std::int64_t first = 0, last = 0;
          parallel::split_range(count, nt, t, first, last);
          return std::pair<std::int64_t, std::int64_t>(first, last);
        };
        // Plain variables, not structured bindings: the lambdas below capture them (C++17 forbids
        // capturing a binding; clang rejects it).
        const std::pair<std::int64_t, std::int64_t> cs = share(g.c), ps = share(points), os = share(g.o);
        const std::int64_t c0 = cs.first, c1 = cs.second, p0 = ps.first, p1 = ps.second, o0 = os.first, o1 = os.second;
        std::int64_t padded = -1;  // the image whose channels [c0, c1) are in ws
        // f(image, first tile row, tile rows, first column) for each image of tile rows [r0, r1).
        const auto each_image = [&](std::int64_t r0, std::int64_t r1, auto&& f) {
          for (std::int64_t img = r0 / th, col = 0; img * th < r1; ++img) {
            const std::int64_t ty0 = std::max(r0, img * th) - img * th, ty1 = std::min(r1, (img + 1) * th) - img * th;
            f(img, ty0, ty1 - ty0, col);
            col += (ty1 - ty0) * q;
          }
        };
        for (std::int64_t ci = 0; ci < chunks; ++ci) {
          std::int64_t r0 = 0, r1 = 0;
          chunking.range(ci, g.n, r0, r1);
          const std::int64_t n = (r1 - r0) * q;
          const std::int64_t ld = winograd_chunk_ld<T>(n, several), nw = winograd_ld<T>(n), vpoint = winograd_point_stride<T>(g.c, ld),
                             mpoint = winograd_point_stride<T>(g.o, ld);
          // The previous chunk's GEMMs have read V (second barrier below) before it is overwritten. Each
          // thread pads and transforms only its own channels, so the padded copy needs no barrier.
          each_image(r0, r1, [&](std::int64_t img, std::int64_t ty0, std::int64_t tr, std::int64_t col) {
            if (img != padded) winograd_pad(g, tl, x + img * g.in_size(), c0, c1, ws), padded = img;
            winograd_input<M, T, R>(ws, c0, c1, tl, ty0, tr * q, v + col, ld, vpoint);
          });
          // Zeros between the last tile and the GEMMs' last column: with several images the last
          // image's vectors may not reach it (one image's do), and scratch can hold anything,
          // denormals included. The row's slack vector takes the store's excess.
          if (several && n < nw)
            for (std::int64_t ch = c0; ch < c1; ++ch)
              for (int xi = 0; xi < points; ++xi) simd::store(v + xi * vpoint + ch * ld + n, simd::broadcast(T(0)));
          parallel::barrier(nt);
          // The previous chunk's output transform has read M (first barrier above) before it is overwritten.
          for (std::int64_t xi = p0; xi < p1; ++xi)
            gemm_run(g.o, nw, g.c, T(1), a_source<T>{nullptr, 0, false, packed_u + xi * usize},
                     b_matrix<T>{v + xi * vpoint, ld, false}, T(0), m + xi * mpoint, ld);
          parallel::barrier(nt);
          each_image(r0, r1, [&](std::int64_t img, std::int64_t ty0, std::int64_t tr, std::int64_t col) {
            conv_forward_args<T> ai = a;
            ai.residual = r ? r + img * g.out_size() : nullptr;
            winograd_output<M, T, R>(g, ai, tl, o0, o1, ty0, tr * q, m + col, ld, mpoint, y + img * g.out_size(),
                                     out + t * staging);
          });
        }
      },
      threads);
}

// The weight gradient dw[o][c] = sum over output pixels of dy[o] times the input window, by the same
// tiles with the roles of A and G exchanged (Lavin & Gray, section 5): per tile the 3x3 correlation
// of the a x a input tile d with the m x m tile of dy is G^T [(A dy A^T) . (B^T d B)] G, and the
// sums over tiles and images of the a*a products are GEMMs with the tiles as their depth:
// P_xi[o][c] += D_xi[o][tiles] V_xi[c][tiles]^T.

// dy of one image in its tiles' phase-plane layout: value (i, j) of tile (ty, tx) at
// plane(i * m + j) + ty * q + tx, zero past the output and in the extended column tx = tw (so the
// extended tiles add nothing). winograd_dy_size values, slack included.
inline std::int64_t winograd_dy_size(const conv_geometry& g, const winograd_tiling& tl) {
  return g.o * tl.phases() * tl.plane() + 64;
}
template <class T>
void winograd_dy_planes(const conv_geometry& g, const winograd_tiling& tl, const T* dy, T* dp) {
  const std::int64_t q = tl.q(), plane = tl.plane(), m = tl.m;
  std::fill(dp, dp + winograd_dy_size(g, tl), T(0));
  for (std::int64_t oc = 0; oc < g.o; ++oc)
    for (std::int64_t y = 0; y < g.oh; ++y) {
      const T* row = dy + (oc * g.oh + y) * g.ow;
      T* dst = dp + (oc * tl.phases() + (y % m) * m) * plane + (y / m) * q;
      for (std::int64_t phase = 0; phase < m; ++phase) {
        T* d = dst + phase * plane;
        for (std::int64_t xx = phase, k = 0; xx < g.ow; xx += m, ++k) d[k] = row[xx];
      }
    }
}

// D[xi][oc][e] = (A dy A^T)[xi] for the n extended tiles from tile row ty0 (rows winograd_ld(n) apart).
template <int M, class T>
void winograd_dy_transform(const T* dp, std::int64_t o, const winograd_tiling& tl, std::int64_t ty0, std::int64_t n, T* d) {
  using V = simd::batch<T>;
  using W = winograd_transforms<M>;
  constexpr int A = W::alpha;
  const std::int64_t ld = winograd_ld<T>(n), point = winograd_point_stride<T>(o, ld), plane = tl.plane();
  for (std::int64_t oc = 0; oc < o; ++oc) {
    const T* base = dp + oc * tl.phases() * plane + ty0 * tl.q();
    T* dst = d + oc * ld;
    for (std::int64_t e = 0; e < n; e += static_cast<std::int64_t>(simd::width<T>)) {
      V s[A][M];  // A dy: expand the rows of each column j
      for (int j = 0; j < M; ++j) {
        V y[M], t[A];
        for (int i = 0; i < M; ++i) y[i] = simd::load(base + (i * M + j) * plane + e);
        W::output_transposed(y, t);
        for (int r = 0; r < A; ++r) s[r][j] = t[r];
      }
      for (int r = 0; r < A; ++r) {  // (.) A^T: expand the columns
        V t[A];
        W::output_transposed(s[r], t);
        for (int j = 0; j < A; ++j) simd::store_aligned(dst + (r * A + j) * point + e, t[j]);
      }
    }
  }
}

// dw[o][c][3][3] (overwritten) for the batch of x and dy; the threads take shares of the images, each
// summing its own P, and P's sums are transformed to 3x3 at the end.
template <int M, class T>
void backward_weight_winograd(const conv_geometry& g, const T* x, const T* dy, T* dw) {
  using W = winograd_transforms<M>;
  constexpr int A = W::alpha, points = A * A;
  const winograd_tiling tl = winograd_tiling_of(g, M);
  const std::int64_t rows = winograd_chunk_rows(g, tl), cap = winograd_ld<T>(rows * tl.q()), psize = points * g.o * g.c;
  // Whole 64-byte lines each, so that V and D stay aligned.
  const std::int64_t line = 64 / sizeof(T);
  const std::int64_t xsize = round_up(tl.padded_size(g.c), line), dsize = round_up(winograd_dy_size(g, tl), line);
  const int threads = static_cast<int>(std::min<std::int64_t>(parallel::in_parallel() ? 1 : parallel::max_threads(), g.n));
  T* sums = thread_scratch<T>(6, std::max(threads, 1) * psize);
  parallel::parallel_region(
      [&](int t, int nt) {
        T* p = sums + t * psize;
        std::fill(p, p + psize, T(0));
        T* xp = thread_scratch<T>(3, xsize + dsize + points * (winograd_point_stride<T>(g.c, cap) + winograd_point_stride<T>(g.o, cap)));
        T* dp = xp + xsize;
        T* v = dp + dsize;
        T* d = v + points * winograd_point_stride<T>(g.c, cap);
        std::int64_t first = 0, last = 0;
        parallel::split_range(g.n, nt, t, first, last);
        for (std::int64_t i = first; i < last; ++i) {
          winograd_pad(g, tl, x + i * g.in_size(), 0, g.c, xp);
          winograd_dy_planes(g, tl, dy + i * g.out_size(), dp);
          for (std::int64_t ty0 = 0; ty0 < tl.th; ty0 += rows) {
            const std::int64_t n = (std::min(tl.th, ty0 + rows) - ty0) * tl.q(), ld = winograd_ld<T>(n);
            winograd_input<M>(xp, 0, g.c, tl, ty0, n, v, ld, winograd_point_stride<T>(g.c, ld));
            winograd_dy_transform<M>(dp, g.o, tl, ty0, n, d);
            for (int xi = 0; xi < points; ++xi)
              gemm_run(g.o, g.c, n, T(1), a_source<T>{d + xi * winograd_point_stride<T>(g.o, ld), ld, false, nullptr},
                       b_matrix<T>{v + xi * winograd_point_stride<T>(g.c, ld), ld, true}, T(1), p + xi * g.o * g.c, g.c);
          }
        }
      },
      threads);
  parallel::parallel_for(0, g.o, [&](std::int64_t oc) {
    for (std::int64_t ic = 0; ic < g.c; ++ic) {
      double acc[A][A], col[A], k[3], half[3][A];
      for (int xi = 0; xi < points; ++xi) {
        double sum = 0;
        for (int t = 0; t < threads; ++t) sum += static_cast<double>(sums[t * psize + (xi * g.o + oc) * g.c + ic]);
        acc[xi / A][xi % A] = sum;
      }
      for (int j = 0; j < A; ++j) {  // G^T P: reduce each column
        for (int r = 0; r < A; ++r) col[r] = acc[r][j];
        W::weights_transposed(col, k);
        for (int ky = 0; ky < 3; ++ky) half[ky][j] = k[ky];
      }
      T* out = dw + (oc * g.c + ic) * 9;
      for (int ky = 0; ky < 3; ++ky) {  // (.) G: reduce each row
        W::weights_transposed(half[ky], k);
        for (int kx = 0; kx < 3; ++kx) out[ky * 3 + kx] = static_cast<T>(k[kx]);
      }
    }
  });
}

}  // namespace facenet::kernels::detail
