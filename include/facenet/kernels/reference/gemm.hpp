// Scalar twin of kernels/gemm.hpp: the test oracle. Plain loops, no blocking, no SIMD, no threads.
#pragma once

#include <cstdint>

namespace facenet::kernels::reference {

// Row-major C[m x n] = alpha * op(A) * op(B) + beta * C; beta == 0 means C is not read.
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      T sum = 0;
      for (std::int64_t p = 0; p < k; ++p) {
        const T av = trans_a ? a[p * lda + i] : a[i * lda + p];
        const T bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
        sum += av * bv;
      }
      T& out = c[i * ldc + j];
      out = beta == T(0) ? alpha * sum : alpha * sum + beta * out;
    }
  }
}

}  // namespace facenet::kernels::reference
