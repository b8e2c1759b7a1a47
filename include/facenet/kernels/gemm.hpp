// SGEMM/DGEMM: packed, register-blocked, cache-blocked, threaded inside one product.
// The engine lives in detail/gemm_core.hpp (shared with the convolutions); this is the BLAS-like face.
#pragma once

#include <cstdint>
#include <string>

#include "facenet/core/error.hpp"
#include "facenet/kernels/detail/gemm_core.hpp"

namespace facenet::kernels {

// Row-major C[m x n] = alpha * op(A) * op(B) + beta * C; op(A) is m x k (A stored k x m when trans_a),
// op(B) is k x n (B stored n x k when trans_b). beta == 0 means C is not read (may hold garbage/NaN).
template <class T>
void gemm(bool trans_a, bool trans_b, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  const auto dims = [&] {
    return " (m=" + std::to_string(m) + ", n=" + std::to_string(n) + ", k=" + std::to_string(k) +
           ", lda=" + std::to_string(lda) + ", ldb=" + std::to_string(ldb) + ", ldc=" + std::to_string(ldc) + ")";
  };
  FACENET_CHECK(m >= 0 && n >= 0 && k >= 0, argument_error, "gemm: negative dimension" + dims());
  if (m == 0 || n == 0) return;
  FACENET_CHECK(ldc >= n, argument_error, "gemm: ldc must be >= n" + dims());
  FACENET_CHECK(c != nullptr, argument_error, "gemm: C is null" + dims());
  if (k > 0) {
    FACENET_CHECK(lda >= (trans_a ? m : k), argument_error,
                  std::string("gemm: lda must be >= ") + (trans_a ? "m (A transposed)" : "k") + dims());
    FACENET_CHECK(ldb >= (trans_b ? k : n), argument_error,
                  std::string("gemm: ldb must be >= ") + (trans_b ? "k (B transposed)" : "n") + dims());
    FACENET_CHECK(a != nullptr && b != nullptr, argument_error, "gemm: A or B is null" + dims());
  }
  detail::a_source<T> as{a, lda, trans_a, nullptr};
  detail::gemm_run(m, n, k, alpha, as, detail::b_matrix<T>{b, ldb, trans_b}, beta, c, ldc);
}

}  // namespace facenet::kernels
