// The only file that names Eigen. Used for small dense linear algebra (similarity transforms,
// least squares) and as the GEMM baseline in benchmarks; the hot kernels are our own.
#pragma once

#include <cstdint>

#include <Eigen/Core>
#include <Eigen/Dense>

namespace facenet::eigen {

template <class T>
using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using matrix_map = Eigen::Map<matrix<T>>;
template <class T>
using const_matrix_map = Eigen::Map<const matrix<T>>;
template <class T>
using vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

// Row-major view of caller memory; no copy.
template <class T>
matrix_map<T> map(T* p, std::int64_t rows, std::int64_t cols) {
  return matrix_map<T>(p, rows, cols);
}
template <class T>
const_matrix_map<T> map(const T* p, std::int64_t rows, std::int64_t cols) {
  return const_matrix_map<T>(p, rows, cols);
}

// Least-squares solution of A x = b (QR with column pivoting), A row-major rows x cols.
template <class T>
vector<T> least_squares(const T* a, const T* b, std::int64_t rows, std::int64_t cols) {
  const_matrix_map<T> A(a, rows, cols);
  Eigen::Map<const vector<T>> B(b, rows);
  return A.colPivHouseholderQr().solve(B);
}

// C = A * B through Eigen (row-major, for baselines and tests).
template <class T>
void gemm(const T* a, const T* b, T* c, std::int64_t m, std::int64_t n, std::int64_t k) {
  map(c, m, n).noalias() = map(a, m, k) * map(b, k, n);
}

}  // namespace facenet::eigen
