#include "facenet/kernels/batch_norm.hpp"

#include <cmath>

#include "facenet/kernels/reference/batch_norm.hpp"
#include "testing.hpp"

namespace k = facenet::kernels;
namespace ref = facenet::kernels::reference;
using facenet::shape;
using facenet::Tensor;
using facenet::testing::check_gradient;
using facenet::testing::dot;
using facenet::testing::max_abs_diff;
using facenet::testing::max_rel_diff;
using facenet::testing::random_tensor;

namespace {

template <class T>
class batch_norm : public ::testing::Test {};
using scalar_types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(batch_norm, scalar_types);

// The last shapes are large enough to take the threaded paths (over planes and over channels).
const shape bn_shapes[] = {{1, 3, 7, 5}, {3, 17, 5, 9}, {3, 5}, {7, 33}, {2, 19, 1, 1}, {1, 5, 41, 39}, {2, 9, 63, 65}, {5, 40001}};

template <class T>
double bn_tol() {
  return std::is_same<T, float>::value ? 2e-5 : 1e-12;
}

template <class T>
struct bn_params {
  Tensor<T> gamma, beta, mean, var;
  explicit bn_params(std::int64_t c)
      : gamma(random_tensor<T>(shape{c}, 11, 0.5, 1.5)),
        beta(random_tensor<T>(shape{c}, 12)),
        mean(random_tensor<T>(shape{c}, 13, -0.3, 0.3)),
        var(random_tensor<T>(shape{c}, 14, 0.2, 2.0)) {}
};

TYPED_TEST(batch_norm, inference_matches_reference) {
  using T = TypeParam;
  for (const auto& s : bn_shapes) {
    const auto x = random_tensor<T>(s, 1, -2, 3), dy = random_tensor<T>(s, 2);
    const bn_params<T> p(s[1]);
    Tensor<T> y, y_ref, dx, dx_ref, dg, dg_ref, db, db_ref;
    k::batch_norm_forward_inference(x, p.gamma, p.beta, p.mean, p.var, T(1e-3), y);
    ref::batch_norm_forward_inference(x, p.gamma, p.beta, p.mean, p.var, T(1e-3), y_ref);
    EXPECT_LE(max_abs_diff(y, y_ref), 10 * bn_tol<T>()) << s.str();
    k::batch_norm_backward_inference(dy, x, p.gamma, p.mean, p.var, T(1e-3), dx, dg, db);
    ref::batch_norm_backward_inference(dy, x, p.gamma, p.mean, p.var, T(1e-3), dx_ref, dg_ref, db_ref);
    EXPECT_LE(max_abs_diff(dx, dx_ref), bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(dg, dg_ref), bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(db, db_ref), bn_tol<T>()) << s.str();
  }
}

TYPED_TEST(batch_norm, training_matches_reference) {
  using T = TypeParam;
  for (const auto& s : bn_shapes) {
    // An offset mean checks that the variance is computed around the mean, not as E[x^2]-E[x]^2.
    const auto x = random_tensor<T>(s, 3, 4, 6), dy = random_tensor<T>(s, 4);
    const bn_params<T> p(s[1]);
    Tensor<T> rm = p.mean.clone(), rv = p.var.clone(), rm_ref = p.mean.clone(), rv_ref = p.var.clone();
    Tensor<T> y, y_ref, sm, sm_ref, si, si_ref;
    k::batch_norm_forward_training(x, p.gamma, p.beta, T(1e-5), T(0.1), y, sm, si, rm, rv);
    ref::batch_norm_forward_training(x, p.gamma, p.beta, T(1e-5), T(0.1), y_ref, sm_ref, si_ref, rm_ref, rv_ref);
    EXPECT_LE(max_abs_diff(y, y_ref), 20 * bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(sm, sm_ref), bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(si, si_ref), 10 * bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(rm, rm_ref), bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(rv, rv_ref), 10 * bn_tol<T>()) << s.str();
    Tensor<T> dx, dx_ref, dg, dg_ref, db, db_ref;
    k::batch_norm_backward(dy, x, p.gamma, sm, si, dx, dg, db);
    ref::batch_norm_backward(dy, x, p.gamma, sm, si, dx_ref, dg_ref, db_ref);
    EXPECT_LE(max_rel_diff(dx, dx_ref), 50 * bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(dg, dg_ref), 10 * bn_tol<T>()) << s.str();
    EXPECT_LE(max_rel_diff(db, db_ref), bn_tol<T>()) << s.str();
  }
}

// |mean| >> std: a folded dx = b * x + c form cancels catastrophically in float; the kernel must
// centre x first. The reference works in double.
TEST(batch_norm_values, float_backward_with_large_mean) {
  const shape s{4, 3, 9, 7};
  const auto noise = random_tensor<float>(s, 30, -0.5, 0.5);
  Tensor<float> x(s);
  for (std::int64_t i = 0; i < x.numel(); ++i) x.data()[i] = 1000.0f + 0.01f * noise.data()[i];
  const auto dy = random_tensor<float>(s, 31);
  const bn_params<float> p(3);
  Tensor<float> y, sm, si, none, dx, dg, db;
  k::batch_norm_forward_training(x, p.gamma, p.beta, 1e-5f, 0.1f, y, sm, si, none, none);
  k::batch_norm_backward(dy, x, p.gamma, sm, si, dx, dg, db);
  Tensor<double> xd(s), dyd(s), gd(shape{3}), md(shape{3}), sd(shape{3}), dx_ref, dg_ref, db_ref;
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    xd.data()[i] = x.data()[i];
    dyd.data()[i] = dy.data()[i];
  }
  for (std::int64_t c = 0; c < 3; ++c) {
    gd(c) = p.gamma(c);
    md(c) = sm(c);
    sd(c) = si(c);
  }
  ref::batch_norm_backward(dyd, xd, gd, md, sd, dx_ref, dg_ref, db_ref);
  EXPECT_LE(max_rel_diff(dx, dx_ref), 1e-5) << "float dx vs double reference";  // folded form: ~1e-4
}

TEST(batch_norm_values, training_statistics_follow_pytorch) {
  // Channel 0 holds {1, 2, 3, 6}: mean 3, biased var 3.5, unbiased var 14/3.
  Tensor<double> x({2, 1, 1, 2}), gamma({1}), beta({1}), rm({1}), rv({1}), y, sm, si;
  x(0, 0, 0, 0) = 1;
  x(0, 0, 0, 1) = 2;
  x(1, 0, 0, 0) = 3;
  x(1, 0, 0, 1) = 6;
  gamma(0) = 2;
  beta(0) = 0.5;
  rm(0) = 0;
  rv(0) = 1;
  k::batch_norm_forward_training(x, gamma, beta, 0.0, 0.1, y, sm, si, rm, rv);
  EXPECT_DOUBLE_EQ(sm(0), 3.0);
  EXPECT_DOUBLE_EQ(si(0), 1 / std::sqrt(3.5));
  EXPECT_DOUBLE_EQ(y(1, 0, 0, 1), 3 / std::sqrt(3.5) * 2 + 0.5);
  EXPECT_DOUBLE_EQ(rm(0), 0.3);
  EXPECT_DOUBLE_EQ(rv(0), 0.9 + 0.1 * 14.0 / 3.0);
}

TEST(batch_norm_grad, training) {
  for (const shape& s : {shape{3, 5, 7, 3}, shape{6, 9}}) {
    auto x = random_tensor<double>(s, 5, -1, 2);
    const bn_params<double> p(s[1]);
    auto gamma = p.gamma.clone(), beta = p.beta.clone();
    const auto r = random_tensor<double>(s, 6);
    Tensor<double> y, sm, si, none, dx, dg, db;
    k::batch_norm_forward_training(x, gamma, beta, 1e-5, 0.1, y, sm, si, none, none);
    k::batch_norm_backward(r, x, gamma, sm, si, dx, dg, db);
    auto loss = [&] {
      Tensor<double> t, m, i, n0, n1;
      k::batch_norm_forward_training(x, gamma, beta, 1e-5, 0.1, t, m, i, n0, n1);
      return dot(t, r);
    };
    check_gradient(x, dx, loss, "bn dx " + s.str());
    check_gradient(gamma, dg, loss, "bn dgamma " + s.str());
    check_gradient(beta, db, loss, "bn dbeta " + s.str());
  }
}

TEST(batch_norm_grad, inference) {
  for (const shape& s : {shape{3, 5, 7, 3}, shape{6, 9}}) {
    auto x = random_tensor<double>(s, 7, -1, 2);
    const bn_params<double> p(s[1]);
    auto gamma = p.gamma.clone(), beta = p.beta.clone();
    const auto r = random_tensor<double>(s, 8);
    Tensor<double> dx, dg, db;
    k::batch_norm_backward_inference(r, x, gamma, p.mean, p.var, 1e-3, dx, dg, db);
    auto loss = [&] {
      Tensor<double> t;
      k::batch_norm_forward_inference(x, gamma, beta, p.mean, p.var, 1e-3, t);
      return dot(t, r);
    };
    check_gradient(x, dx, loss, "bn eval dx " + s.str());
    check_gradient(gamma, dg, loss, "bn eval dgamma " + s.str());
    check_gradient(beta, db, loss, "bn eval dbeta " + s.str());
  }
}

// Direct convolution (stride 1, no padding) as an independent oracle for folding.
Tensor<double> direct_conv(const Tensor<double>& x, const Tensor<double>& w, const Tensor<double>& b) {
  const std::int64_t N = x.n(), C = x.c(), O = w.size(0), kh = w.size(2), kw = w.size(3);
  const std::int64_t oh = x.h() - kh + 1, ow = x.w() - kw + 1;
  Tensor<double> y({N, O, oh, ow});
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t o = 0; o < O; ++o)
      for (std::int64_t i = 0; i < oh; ++i)
        for (std::int64_t j = 0; j < ow; ++j) {
          double s = b.empty() ? 0.0 : b(o);
          for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t u = 0; u < kh; ++u)
              for (std::int64_t v = 0; v < kw; ++v) s += x(n, c, i + u, j + v) * w(o, c, u, v);
          y(n, o, i, j) = s;
        }
  return y;
}

TEST(batch_norm_fold, equals_conv_then_bn) {
  const auto x = random_tensor<double>(shape{2, 3, 9, 7}, 20);
  const auto w = random_tensor<double>(shape{5, 3, 3, 3}, 21);
  const bn_params<double> p(5);
  for (bool with_bias : {false, true}) {
    const Tensor<double> bias = with_bias ? random_tensor<double>(shape{5}, 22) : Tensor<double>();
    Tensor<double> bn_out, fw, fb, fw_ref, fb_ref;
    k::batch_norm_forward_inference(direct_conv(x, w, bias), p.gamma, p.beta, p.mean, p.var, 1e-3, bn_out);
    k::batch_norm_fold(w, bias, p.gamma, p.beta, p.mean, p.var, 1e-3, fw, fb);
    EXPECT_LE(max_abs_diff(direct_conv(x, fw, fb), bn_out), 1e-12);
    ref::batch_norm_fold(w, bias, p.gamma, p.beta, p.mean, p.var, 1e-3, fw_ref, fb_ref);
    EXPECT_LE(max_abs_diff(fw, fw_ref), 1e-15);
    EXPECT_LE(max_abs_diff(fb, fb_ref), 1e-15);
  }
}

TEST(batch_norm_errors, bad_input_throws) {
  Tensor<float> x({2, 3, 4, 4}), c3({3}), c4({4}), y, a, b, e;
  EXPECT_THROW(k::batch_norm_forward_inference(x, c4, c3, c3, c3, 1e-5f, y), facenet::shape_error);
  EXPECT_THROW(k::batch_norm_forward_inference(Tensor<float>({2, 3, 4}), c3, c3, c3, c3, 1e-5f, y),
               facenet::shape_error);
  EXPECT_THROW(k::batch_norm_forward_inference(x, c3, c3, c3, c3, -1.0f, y), facenet::argument_error);
  // One value per channel cannot be normalised with batch statistics (PyTorch raises too).
  EXPECT_THROW(k::batch_norm_forward_training(Tensor<float>({1, 3}), c3, c3, 1e-5f, 0.1f, y, a, b, e, e),
               facenet::argument_error);
  EXPECT_THROW(k::batch_norm_forward_training(x, c3, c3, 1e-5f, 0.1f, y, a, b, c4, c4), facenet::shape_error);
  EXPECT_THROW(k::batch_norm_fold(Tensor<float>({4, 3, 3, 3}), Tensor<float>({3}), c4, c4, c4, c4, 1e-5f, y, a),
               facenet::shape_error);
  try {
    k::batch_norm_forward_inference(x, c4, c3, c3, c3, 1e-5f, y);
  } catch (const facenet::shape_error& err) {
    EXPECT_NE(std::string(err.what()).find("gamma"), std::string::npos) << err.what();
  }
}

}  // namespace
