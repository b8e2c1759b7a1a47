// Winograd F(2x2, 3x3) for stride-1 3x3 inference convolution (Lavin & Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2015). Each 2x2 output tile reads a 4x4 input tile d; with
// U = G g G^T (weights, transformed once at pack time) and V = B^T d B, the tile is A^T (U . V) A.
// Summed over input channels, the 16 element-wise products become 16 GEMMs M_xi = U_xi V_xi
// ([o x c] x [c x tiles]): 16 multiplies per (o, c, tile) instead of 36, so 2.25x fewer flops.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "facenet/core/parallel.hpp"
#include "facenet/kernels/detail/conv2d_lowering.hpp"
#include "facenet/kernels/detail/gemm_core.hpp"

namespace facenet::kernels::detail {

inline constexpr int winograd_points = 16;  // 4x4 transformed tile

inline bool winograd_applies(std::int64_t kh, std::int64_t kw, std::int64_t sh, std::int64_t sw) {
  return kh == 3 && kw == 3 && sh == 1 && sw == 1;
}

// 2x2 output tiles covering the output. Tile (ty, tx) reads rows 2ty..2ty+3 and columns 2tx..2tx+3 of
// the zero-padded input (one extra zero row/column when oh/ow is odd). The padded copy is split by
// row parity and column parity into four planes of (th + 1) x q values, q = tw + 1, so that value
// (i, j) of tile (ty, tx) sits at plane(i % 2, j % 2) + e + (i / 2) * q + j / 2 with e = ty * q + tx.
// In this "extended" tile index e every transform is one contiguous SIMD loop over all tiles of the
// image, however narrow its rows (IRv1's 17x17 maps have 9 tiles per row); the one extra tile per row
// (tx = tw) is computed and dropped, as the implicit GEMM drops its extra columns.
struct winograd_tiling {
  std::int64_t th, tw;
  std::int64_t q() const { return tw + 1; }
  std::int64_t extended() const { return th * q(); }  // extended tiles of one image
  std::int64_t plane() const { return (th + 1) * q(); }
  // The four planes per channel, plus slack read by the last extended tile.
  std::int64_t padded_size(std::int64_t c) const { return c * 4 * plane() + 64; }
};

inline winograd_tiling winograd_tiling_of(const conv_geometry& g) { return {(g.oh + 1) / 2, (g.ow + 1) / 2}; }

// The zero-padded copy of one image in the parity-plane layout above.
template <class T>
void winograd_pad(const conv_geometry& g, const winograd_tiling& tl, const T* x, T* xp) {
  const std::int64_t q = tl.q(), plane = tl.plane();
  std::fill(xp, xp + tl.padded_size(g.c), T(0));
  parallel::parallel_for(
      0, g.c,
      [&](std::int64_t ch) {
        for (std::int64_t y = 0; y < g.h; ++y) {
          const T* src = x + (ch * g.h + y) * g.w;
          const std::int64_t py = y + g.pt;
          T* dst = xp + (ch * 4 + (py % 2) * 2) * plane + (py / 2) * q;
          // Input column xx lands in padded column xx + pl: its parity picks the plane, half of it the slot.
          for (int parity = 0; parity < 2; ++parity) {
            const std::int64_t first = (parity - g.pl % 2 + 2) % 2;  // first xx with (xx + pl) % 2 == parity
            T* d = dst + parity * plane + (first + g.pl) / 2;
            for (std::int64_t xx = first, k = 0; xx < g.w; xx += 2, ++k) d[k] = src[xx];
          }
        }
      },
      min_iterations(g.h * g.w));
}

// Elements of A-packed U: one packed [o x c] matrix per transformed point.
template <class T>
std::int64_t winograd_packed_size(std::int64_t o, std::int64_t c) {
  return winograd_points * packed_a_size<T>(o, c);
}

// U_xi[o][c] = (G g G^T)[xi] for OIHW 3x3 weights, each point's matrix packed as a GEMM A operand.
// G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]. Computed in double: it runs once.
template <class T>
void winograd_pack_weights(const T* w, std::int64_t o, std::int64_t c, T* packed) {
  const auto g_rows = [](const double* v, double* out) {  // G v for a 3-vector v
    out[0] = v[0];
    out[1] = 0.5 * (v[0] + v[1] + v[2]);
    out[2] = 0.5 * (v[0] - v[1] + v[2]);
    out[3] = v[2];
  };
  std::vector<T> u(static_cast<std::size_t>(winograd_points * o * c));
  for (std::int64_t oc = 0; oc < o; ++oc)
    for (std::int64_t ic = 0; ic < c; ++ic) {
      const T* k = w + (oc * c + ic) * 9;
      double gk[4][3], col[3], out[4];
      for (int x = 0; x < 3; ++x) {  // G g: transform each kernel column
        for (int y = 0; y < 3; ++y) col[y] = static_cast<double>(k[y * 3 + x]);
        g_rows(col, out);
        for (int i = 0; i < 4; ++i) gk[i][x] = out[i];
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T: transform each row
        g_rows(gk[i], out);
        for (int j = 0; j < 4; ++j) u[static_cast<std::size_t>(((i * 4 + j) * o + oc) * c + ic)] = static_cast<T>(out[j]);
      }
    }
  for (int xi = 0; xi < winograd_points; ++xi)
    pack_a_full(a_source<T>{u.data() + xi * o * c, c, false, nullptr}, o, c, packed + xi * packed_a_size<T>(o, c));
}

// Extended tiles are processed a whole SIMD vector at a time: V and M rows have a leading dimension
// rounded up to the vector width, and the padded copy has slack for the last vector's reads.
template <class T>
std::int64_t winograd_ld(std::int64_t n) {
  return round_up(n, static_cast<std::int64_t>(simd::width<T>));
}
// Distance between the 16 points' matrices of `rows` rows: one vector more than rows * ld, so the 16
// streams a transform reads or writes at once do not all fall in one L1 set (rows * ld is often a
// multiple of 4 KiB: 32 x 96 floats on Block35) and exceed its 8 ways.
template <class T>
std::int64_t winograd_point_stride(std::int64_t rows, std::int64_t ld) {
  return rows * ld + static_cast<std::int64_t>(simd::width<T>);
}

// V[xi][ch][e] = (B^T d B)[xi] for the n extended tiles from tile row ty0 of the padded copy xp
// (rows of V are winograd_ld(n) apart); B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
template <class T>
void winograd_input(const T* xp, std::int64_t c, const winograd_tiling& tl, std::int64_t ty0, std::int64_t n, T* v) {
  using V = simd::batch<T>;
  const std::int64_t ld = winograd_ld<T>(n), point = winograd_point_stride<T>(c, ld), q = tl.q(), plane = tl.plane();
  for (std::int64_t ch = 0; ch < c; ++ch) {
    const T* base = xp + ch * 4 * plane + ty0 * q;
    T* dst = v + ch * ld;
    for (std::int64_t e = 0; e < n; e += static_cast<std::int64_t>(simd::width<T>)) {
      V s[4][4];  // B^T d: combine the four rows of each column j
      for (int j = 0; j < 4; ++j) {
        const T* col = base + (j % 2) * plane + j / 2 + e;  // row i adds (i % 2) * 2 * plane + (i / 2) * q
        const V d0 = simd::load(col), d1 = simd::load(col + 2 * plane), d2 = simd::load(col + q),
                d3 = simd::load(col + 2 * plane + q);
        s[0][j] = d0 - d2;
        s[1][j] = d1 + d2;
        s[2][j] = d2 - d1;
        s[3][j] = d1 - d3;
      }
      for (int i = 0; i < 4; ++i) {  // (.) B: combine the four columns
        T* p = dst + i * 4 * point + e;
        simd::store_aligned(p, s[i][0] - s[i][2]);
        simd::store_aligned(p + point, s[i][1] + s[i][2]);
        simd::store_aligned(p + 2 * point, s[i][2] - s[i][1]);
        simd::store_aligned(p + 3 * point, s[i][1] - s[i][3]);
      }
    }
  }
}

// y = epilogue(A^T M A) for the n extended tiles from tile row ty0: M[xi][oc][e] (rows winograd_ld(n)
// apart); A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]. Output (i, j) of every tile goes to quarter[2i + j][e];
// each output row is then interleaved from its two quarters into `row`, finished (bias, residual,
// relu) and cropped to the output by epilogue_row. Scratch: 4 * winograd_ld(n) + 2 * q values.
template <class T>
void winograd_output(const conv_geometry& g, const conv_forward_args<T>& a, const winograd_tiling& tl, std::int64_t ty0,
                     std::int64_t n, const T* m, T* y, T* scratch) {
  using V = simd::batch<T>;
  const std::int64_t ld = winograd_ld<T>(n), point = winograd_point_stride<T>(g.o, ld), q = tl.q();
  T* const quarter = scratch;
  T* const row = scratch + 4 * ld;
  for (std::int64_t oc = 0; oc < g.o; ++oc) {
    const T* src = m + oc * ld;
    for (std::int64_t e = 0; e < n; e += static_cast<std::int64_t>(simd::width<T>)) {
      V r[2][4];  // A^T M: combine the four rows of each column j
      for (int j = 0; j < 4; ++j) {
        const T* p = src + j * point + e;
        const V m0 = simd::load_aligned(p), m1 = simd::load_aligned(p + 4 * point), m2 = simd::load_aligned(p + 8 * point),
                m3 = simd::load_aligned(p + 12 * point);
        r[0][j] = m0 + m1 + m2;
        r[1][j] = m1 - m2 - m3;
      }
      for (int i = 0; i < 2; ++i) {  // (.) A: combine the four columns
        simd::store_aligned(quarter + (2 * i) * ld + e, r[i][0] + r[i][1] + r[i][2]);
        simd::store_aligned(quarter + (2 * i + 1) * ld + e, r[i][1] - r[i][2] - r[i][3]);
      }
    }
    const T bias = a.bias ? a.bias[oc] : T(0);
    for (std::int64_t ty = ty0; ty < ty0 + n / q; ++ty)
      for (std::int64_t i = 0; i < 2 && 2 * ty + i < g.oh; ++i) {
        const T* even = quarter + 2 * i * ld + (ty - ty0) * q;
        const T* odd = even + ld;
        for (std::int64_t tx = 0; tx < tl.tw; ++tx) {
          row[2 * tx] = even[tx];
          row[2 * tx + 1] = odd[tx];
        }
        const std::int64_t off = oc * g.spatial() + (2 * ty + i) * g.ow;
        epilogue_row(row, y + off, g.ow, bias, a.residual ? a.residual + off : nullptr, a.residual_scale, a.relu);
      }
  }
}

// Tile rows per chunk: each thread transforms, multiplies and finishes whole chunks in its own
// scratch. Chunks of about 512K values of V and M together (16 * (c + o) per tile; 2 MiB in float)
// measured fastest single-threaded on IRv1's conv2d_4a and NN4's 3x3s: 192K-value chunks made the
// GEMMs too narrow (N = 38 on conv2d_4a: 1.12x over implicit GEMM instead of 1.27x), 2M and 8M were
// no faster. At least one chunk per thread, so batch 1 uses every core.
inline std::int64_t winograd_chunk_rows(const conv_geometry& g, const winograd_tiling& tl, int threads) {
  const std::int64_t per_row = winograd_points * (g.c + g.o) * tl.q();
  const std::int64_t cap = std::max<std::int64_t>(1, (std::int64_t(512) * 1024) / per_row);
  const std::int64_t chunks = std::min(tl.th, round_up((tl.th + cap - 1) / cap, threads));
  return (tl.th + chunks - 1) / chunks;
}

// Scratch elements one thread needs for a chunk of `rows` tile rows: V, M and the output staging.
template <class T>
std::int64_t winograd_thread_scratch(const conv_geometry& g, const winograd_tiling& tl, std::int64_t rows) {
  const std::int64_t ld = winograd_ld<T>(rows * tl.q());
  return winograd_points * (winograd_point_stride<T>(g.c, ld) + winograd_point_stride<T>(g.o, ld)) + 4 * ld + 2 * tl.q() + 64;
}

// Elements of the caller's workspace: the padded copy.
inline std::int64_t winograd_workspace_size(const conv_geometry& g) { return winograd_tiling_of(g).padded_size(g.c); }

// One image: y[o, oh, ow] = epilogue(conv(x)) with U pre-packed by winograd_pack_weights.
template <class T>
void forward_image_winograd(const conv_geometry& g, const conv_forward_args<T>& a, const T* packed_u, const T* x, T* y,
                            T* ws) {
  const winograd_tiling tl = winograd_tiling_of(g);
  winograd_pad(g, tl, x, ws);
  const std::int64_t usize = packed_a_size<T>(g.o, g.c);
  const int threads = parallel::in_parallel() ? 1 : std::max(1, parallel::max_threads());
  const std::int64_t rows = winograd_chunk_rows(g, tl, threads), chunks = (tl.th + rows - 1) / rows;
  parallel::parallel_region(
      [&](int t, int nt) {
        std::int64_t first = 0, last = 0;
        parallel::split_range(chunks, nt, t, first, last);
        const std::int64_t cap = winograd_ld<T>(rows * tl.q());
        T* v = thread_scratch<T>(3, winograd_thread_scratch<T>(g, tl, rows));
        T* m = v + winograd_points * winograd_point_stride<T>(g.c, cap);
        T* out = m + winograd_points * winograd_point_stride<T>(g.o, cap);
        for (std::int64_t ci = first; ci < last; ++ci) {
          const std::int64_t ty0 = ci * rows, n = (std::min(tl.th, ty0 + rows) - ty0) * tl.q(), ld = winograd_ld<T>(n);
          winograd_input(ws, g.c, tl, ty0, n, v);
          // All ld columns (V is defined there too): the output transform reads whole vectors of M,
          // and uninitialised lanes might hold denormals.
          for (int xi = 0; xi < winograd_points; ++xi)
            gemm_run(g.o, ld, g.c, T(1), a_source<T>{nullptr, 0, false, packed_u + xi * usize},
                     b_matrix<T>{v + xi * winograd_point_stride<T>(g.c, ld), ld, false}, T(0),
                     m + xi * winograd_point_stride<T>(g.o, ld), ld);
          winograd_output(g, a, tl, ty0, n, m, y, out);
        }
      },
      static_cast<int>(std::min<std::int64_t>(threads, chunks)));
}

}  // namespace facenet::kernels::detail
