// Face crops with margin (facenet-pytorch and davidsandberg semantics) and 5-point similarity alignment.
#include <cmath>

#include "facenet/detect/align.hpp"
#include "testing.hpp"

namespace fd = facenet::data;
namespace dt = facenet::detect;

namespace {

fd::image smooth_image(int w, int h, const fd::affine2d& dst_to_base) {
  fd::image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const double bx = dst_to_base[0] * x + dst_to_base[1] * y + dst_to_base[2];
      const double by = dst_to_base[3] * x + dst_to_base[4] * y + dst_to_base[5];
      for (int k = 0; k < 3; ++k)
        img.at(y, x, k) = static_cast<std::uint8_t>(std::lround(128 + 100 * std::sin(bx / 9.0 + k) * std::cos(by / 7.0)));
    }
  return img;
}

dt::landmarks apply(const fd::affine2d& m, const dt::landmarks& pts) {
  dt::landmarks out;
  for (int i = 0; i < 5; ++i)
    out[i] = {static_cast<float>(m[0] * pts[i][0] + m[1] * pts[i][1] + m[2]),
              static_cast<float>(m[3] * pts[i][0] + m[4] * pts[i][1] + m[5])};
  return out;
}

}  // namespace

TEST(crop, facenet_pytorch_margin_scales_with_the_box) {
  const dt::box b{100.7f, 50.2f, 200.7f, 180.2f};
  dt::crop_options opt;
  opt.margin = 32;
  const fd::rect r = dt::face_crop_rect(b, 1000, 1000, opt);
  // margin * w / (size - margin) = 32 * 100 / 128 = 25 -> +-12.5; height 130 -> 32.5 -> +-16.25
  EXPECT_EQ(r.x0, 88);
  EXPECT_EQ(r.x1, 213);
  EXPECT_EQ(r.y0, 33);
  EXPECT_EQ(r.y1, 196);
  opt.mode = dt::margin_mode::davidsandberg;  // 32 original pixels, 16 per side
  const fd::rect d = dt::face_crop_rect(b, 1000, 1000, opt);
  EXPECT_EQ(d.x0, 84);
  EXPECT_EQ(d.x1, 216);
  EXPECT_EQ(d.y0, 34);
  EXPECT_EQ(d.y1, 196);
}

TEST(crop, clamps_to_the_image_and_rejects_empty_boxes) {
  const fd::rect r = dt::face_crop_rect({-8.27f, 1870.2f, 10.29f, 1892.9f}, 1665, 1880);
  EXPECT_EQ(r.x0, 0);
  EXPECT_EQ(r.x1, 10);
  EXPECT_EQ(r.y0, 1870);
  EXPECT_EQ(r.y1, 1880);
  const fd::image img(50, 40, 3, 7);
  const fd::image face = dt::extract_face(img, {-3, -3, 20, 30});
  EXPECT_EQ(face.width, 160);
  EXPECT_EQ(face.at(80, 80, 1), 7);
  EXPECT_THROW(dt::extract_face(img, {60, 10, 80, 30}), facenet::argument_error);
  dt::crop_options bad;
  bad.margin = 160;
  EXPECT_THROW(dt::face_crop_rect({0, 0, 10, 10}, 50, 40, bad), facenet::argument_error);
}

TEST(crop, extract_face_is_the_pil_resize_of_the_window) {
  fd::image img(64, 48, 3);
  for (std::size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<std::uint8_t>(i * 31 % 251);
  dt::crop_options opt;
  opt.image_size = 96;
  const dt::box b{5.5f, 4.2f, 50.9f, 40.1f};
  EXPECT_EQ(dt::extract_face(img, b, opt).pixels, fd::resize_bilinear_pil(img, fd::rect{5, 4, 50, 40}, 96, 96).pixels);
}

TEST(similarity, recovers_an_exact_similarity) {
  const double s = 1.7, th = 0.3;
  const fd::affine2d m = {s * std::cos(th), -s * std::sin(th), 12.5, s * std::sin(th), s * std::cos(th), -4.25};
  const dt::landmarks src = {{{10, 20}, {50, 22}, {31, 40}, {15, 60}, {47, 61}}};
  const fd::affine2d est = dt::similarity_transform(src, apply(m, src));
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(est[i], m[i], 1e-4) << i;
}

TEST(similarity, is_a_least_squares_minimum_on_noisy_points) {
  const dt::landmarks src = {{{10, 20}, {50, 22}, {31, 40}, {15, 60}, {47, 61}}};
  const dt::landmarks dst = {{{38.3f, 51.7f}, {73.5f, 51.5f}, {56.0f, 71.7f}, {41.5f, 92.4f}, {70.7f, 92.2f}}};
  const fd::affine2d est = dt::similarity_transform(src, dst);
  ASSERT_DOUBLE_EQ(est[0], est[4]);  // a similarity: [[a, -b], [b, a]]
  ASSERT_DOUBLE_EQ(est[1], -est[3]);
  auto cost = [&](double a, double b, double tx, double ty) {
    double c = 0;
    for (int i = 0; i < 5; ++i) {
      const double u = a * src[i][0] - b * src[i][1] + tx - dst[i][0], v = b * src[i][0] + a * src[i][1] + ty - dst[i][1];
      c += u * u + v * v;
    }
    return c;
  };
  const double best = cost(est[0], est[3], est[2], est[5]);
  // Any perturbation of the four free parameters increases the residual.
  for (int k = 0; k < 4; ++k)
    for (double eps : {1e-3, -1e-3}) {
      double p[4] = {est[0], est[3], est[2], est[5]};
      p[k] += eps;
      EXPECT_GT(cost(p[0], p[1], p[2], p[3]), best) << k << " " << eps;
    }
  const dt::landmarks same = {{{3, 3}, {3, 3}, {3, 3}, {3, 3}, {3, 3}}};
  EXPECT_THROW(dt::similarity_transform(same, dst), facenet::numeric_error);
}

TEST(align, warps_a_rotated_scaled_face_back_onto_the_template) {
  for (int size : {160, 96}) {
    const dt::landmarks tmpl = dt::canonical_template(size);
    EXPECT_NEAR(tmpl[0][0], 38.2946f * size / 112, 1e-4);
    // The "photo": template coordinates rotated by 20 degrees, scaled by 2.3, shifted.
    const double s = 2.3, th = 20 * M_PI / 180;
    const fd::affine2d to_photo = {s * std::cos(th), -s * std::sin(th), 140, s * std::sin(th), s * std::cos(th), 60};
    const fd::image photo = smooth_image(640, 560, fd::invert(to_photo));
    const fd::image aligned = dt::align_face(photo, apply(to_photo, tmpl), size);
    ASSERT_EQ(aligned.width, size);
    const fd::affine2d identity = {1, 0, 0, 0, 1, 0};
    const fd::image expected = smooth_image(size, size, identity);
    double diff = 0;
    for (std::size_t i = 0; i < aligned.pixels.size(); ++i) diff += std::abs(aligned.pixels[i] - expected.pixels[i]);
    EXPECT_LT(diff / aligned.pixels.size(), 1.0) << size;
  }
  const fd::image img(10, 10, 3);
  dt::landmarks nan_pts{};
  nan_pts[2][0] = NAN;
  EXPECT_THROW(dt::align_face(img, nan_pts), facenet::argument_error);
}

// A model's own template (unit coordinates, here a narrower, lower face than ArcFace's) is where
// the landmarks land: the same photo aligned onto it equals the photo's own pixels there.
TEST(align, warps_onto_a_custom_unit_template) {
  const dt::landmarks unit = {{{0.35f, 0.41f}, {0.67f, 0.40f}, {0.51f, 0.60f}, {0.37f, 0.76f}, {0.66f, 0.76f}}};
  const int size = 96;
  const dt::landmarks tmpl = dt::scale_template(unit, size);
  EXPECT_NEAR(tmpl[2][1], 0.60f * size, 1e-4);
  const double s = 1.7, th = -12 * M_PI / 180;
  const fd::affine2d to_photo = {s * std::cos(th), -s * std::sin(th), 90, s * std::sin(th), s * std::cos(th), 40};
  const fd::image photo = smooth_image(400, 360, fd::invert(to_photo));
  const fd::image aligned = dt::align_face(photo, apply(to_photo, tmpl), size, unit);
  const fd::image expected = smooth_image(size, size, {1, 0, 0, 0, 1, 0});
  double diff = 0;
  for (std::size_t i = 0; i < aligned.pixels.size(); ++i) diff += std::abs(aligned.pixels[i] - expected.pixels[i]);
  EXPECT_LT(diff / aligned.pixels.size(), 1.0);
  // ArcFace's template puts the same landmarks elsewhere: a visibly different crop.
  const fd::image arcface = dt::align_face(photo, apply(to_photo, tmpl), size);
  double other = 0;
  for (std::size_t i = 0; i < arcface.pixels.size(); ++i) other += std::abs(arcface.pixels[i] - expected.pixels[i]);
  EXPECT_GT(other / arcface.pixels.size(), 10.0);
  EXPECT_THROW(dt::scale_template(unit, 0), facenet::argument_error);
}
