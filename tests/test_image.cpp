// Image I/O, EXIF orientation, resampling (against PIL / torch oracles), standardization, drawing.
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "facenet/data/exif.hpp"
#include "facenet/data/image.hpp"
#include "facenet/data/image_io.hpp"
#include "facenet/data/standardize.hpp"
#include "facenet/data/transforms.hpp"
#include "fixtures/mtcnn/read_fixture.hpp"
#include "testing.hpp"

namespace fd = facenet::data;
using facenet::Tensor;

namespace {

// Same formula as pattern() in make_mtcnn_fixtures.py.
fd::image pattern(int w, int h, int c = 3) {
  fd::image img(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) img.at(y, x, k) = static_cast<std::uint8_t>((x * 7 + y * 13 + k * 50 + (x * y) % 11) % 256);
  return img;
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("facenet_test_image_" + name)).string();
}

std::vector<std::uint8_t> encode_png(const fd::image& img) {
  const std::string p = temp_path("enc.png");
  fd::save_png(img, p);
  auto bytes = fd::read_file_bytes(p);
  std::filesystem::remove(p);
  return bytes;
}

// A JPEG written by PIL (4:4:4, 45x29; make_mtcnn_fixtures.py). Not stb_image_write's encoder: UBSan
// stops inside it (a left shift of a negative value in stbiw__jpg_writeBits), and the library never writes JPEG.
std::vector<std::uint8_t> fixture_jpeg() {
  const auto fx = facenet::testing::read_fixture(facenet::testing::source_dir().string() + "/tests/fixtures/mtcnn/resize.txt");
  const auto& bytes = fx.at("jpeg_bytes_0").values;
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

// Inserts an APP1 Exif segment with the given orientation right after SOI.
std::vector<std::uint8_t> with_exif(const std::vector<std::uint8_t>& jpeg, int orientation, bool little_endian) {
  std::vector<std::uint8_t> tiff;
  auto u16 = [&](unsigned v) {
    if (little_endian) tiff.insert(tiff.end(), {std::uint8_t(v & 255), std::uint8_t(v >> 8)});
    else tiff.insert(tiff.end(), {std::uint8_t(v >> 8), std::uint8_t(v & 255)});
  };
  auto u32 = [&](unsigned v) {
    if (little_endian) { u16(v & 0xFFFF); u16(v >> 16); }
    else { u16(v >> 16); u16(v & 0xFFFF); }
  };
  tiff.insert(tiff.end(), little_endian ? std::initializer_list<std::uint8_t>{'I', 'I'} : std::initializer_list<std::uint8_t>{'M', 'M'});
  u16(42), u32(8), u16(2);
  u16(0x010F), u16(2), u32(4), u32(0);  // a Make tag first, so the reader must walk entries
  u16(0x0112), u16(3), u32(1), u16(static_cast<unsigned>(orientation)), u16(0);
  u32(0);
  std::vector<std::uint8_t> seg = {'E', 'x', 'i', 'f', 0, 0};
  seg.insert(seg.end(), tiff.begin(), tiff.end());
  const std::size_t len = seg.size() + 2;
  std::vector<std::uint8_t> out(jpeg.begin(), jpeg.begin() + 2);
  out.insert(out.end(), {0xFF, 0xE1, std::uint8_t(len >> 8), std::uint8_t(len & 255)});
  out.insert(out.end(), seg.begin(), seg.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

template <class E, class F>
void expect_error_containing(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected an exception mentioning '" << needle << "'";
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(image_io, png_round_trip_is_lossless) {
  const fd::image img = pattern(31, 17);
  const auto bytes = encode_png(img);
  const fd::image back = fd::decode_image(bytes.data(), bytes.size());
  ASSERT_EQ(back.width, 31);
  ASSERT_EQ(back.height, 17);
  ASSERT_EQ(back.channels, 3);
  EXPECT_EQ(back.pixels, img.pixels);
}

// Empty IDAT chunks (before the data, where stb_image would memcpy into a null buffer, and between
// data chunks) are legal and change no pixel.
TEST(image_io, png_with_empty_idat_chunks_decodes_to_the_same_pixels) {
  const fd::image img = pattern(23, 11);
  const auto bytes = encode_png(img);
  std::size_t idat = 8;  // the first IDAT chunk's offset
  while (std::string(bytes.begin() + idat + 4, bytes.begin() + idat + 8) != "IDAT")
    idat += 12 + (std::size_t(bytes[idat]) << 24 | std::size_t(bytes[idat + 1]) << 16 | std::size_t(bytes[idat + 2]) << 8 | bytes[idat + 3]);
  const std::vector<std::uint8_t> empty = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xAF, 0x06, 0x1E};  // CRC of "IDAT"
  std::vector<std::uint8_t> padded(bytes.begin(), bytes.begin() + idat);
  for (int i = 0; i < 2; ++i) padded.insert(padded.end(), empty.begin(), empty.end());
  padded.insert(padded.end(), bytes.begin() + idat, bytes.end());
  const fd::image back = fd::decode_image(padded.data(), padded.size());
  ASSERT_EQ(back.width, 23);
  EXPECT_EQ(back.pixels, img.pixels);
  EXPECT_EQ(fd::detail::png_without_empty_idat(padded.data(), padded.size()), bytes);
  EXPECT_TRUE(fd::detail::png_without_empty_idat(bytes.data(), bytes.size()).empty());  // nothing to drop
}

TEST(image_io, grey_png_and_pgm_expand_to_rgb) {
  const fd::image grey = pattern(9, 6, 1);
  const auto png = encode_png(grey);
  std::string pgm = "P5\n9 6\n255\n";
  pgm.append(grey.pixels.begin(), grey.pixels.end());
  for (const auto& bytes : {png, std::vector<std::uint8_t>(pgm.begin(), pgm.end())}) {
    const fd::image rgb = fd::decode_image(bytes.data(), bytes.size());
    ASSERT_EQ(rgb.channels, 3);
    ASSERT_EQ(rgb.width, 9);
    for (int y = 0; y < 6; ++y)
      for (int x = 0; x < 9; ++x)
        for (int k = 0; k < 3; ++k) ASSERT_EQ(rgb.at(y, x, k), grey.at(y, x)) << x << "," << y;
  }
}

TEST(image_io, orl_pgm_from_shared) {
  FACENET_REQUIRE_SHARED("data/orl/s1/1.pgm");
  const fd::image img = fd::load_image((facenet::testing::shared_dir() / "data/orl/s1/1.pgm").string());
  EXPECT_EQ(img.width, 92);
  EXPECT_EQ(img.height, 112);
  EXPECT_EQ(img.channels, 3);
  EXPECT_EQ(img.at(50, 40, 0), img.at(50, 40, 2));
}

TEST(image_io, broken_inputs_raise_clear_errors) {
  expect_error_containing<facenet::io_error>([] { fd::load_image("/nonexistent/face.jpg"); }, "/nonexistent/face.jpg");
  const std::vector<std::uint8_t> garbage = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  expect_error_containing<facenet::format_error>([&] { fd::decode_image(garbage.data(), garbage.size(), {}, "x.bin"); },
                                                 "x.bin: not a decodable image");
  expect_error_containing<facenet::format_error>([&] { fd::decode_image(garbage.data(), 0); }, "empty");
  const auto png = encode_png(pattern(40, 30));
  expect_error_containing<facenet::format_error>([&] { fd::decode_image(png.data(), png.size() / 2, {}, "half.png"); },
                                                 "half.png");
  const auto jpg = fixture_jpeg();
  EXPECT_NO_THROW(fd::decode_image(jpg.data(), jpg.size()));
  expect_error_containing<facenet::format_error>([&] { fd::decode_image(jpg.data(), jpg.size() * 2 / 3, {}, "cut.jpg"); },
                                                 "truncated JPEG");
}

TEST(image_io, size_limit_is_checked_before_decoding) {
  const auto png = encode_png(pattern(100, 50));
  fd::image_load_options opt;
  opt.max_dimension = 64;
  expect_error_containing<facenet::unsupported_error>([&] { fd::decode_image(png.data(), png.size(), opt); }, "100x50");
  opt = {};
  opt.max_pixels = 4999;
  EXPECT_THROW(fd::decode_image(png.data(), png.size(), opt), facenet::unsupported_error);
}

TEST(image_io, jpeg_pixels_equal_libjpeg_turbo) {
  // 4:4:4, 4:2:0 and progressive 4:2:0 files written and decoded by PIL: bit-exact equality.
  const auto fx = facenet::testing::read_fixture(facenet::testing::source_dir().string() + "/tests/fixtures/mtcnn/resize.txt");
  for (int i = 0; i < 3; ++i) {
    const auto& bytes = fx.at("jpeg_bytes_" + std::to_string(i)).values;
    const auto& want = fx.at("jpeg_pixels_" + std::to_string(i));
    const std::vector<std::uint8_t> file(bytes.begin(), bytes.end());
    const fd::image img = fd::decode_image(file.data(), file.size());
    ASSERT_EQ(img.height, want.dims[0]);
    ASSERT_EQ(img.width, want.dims[1]);
    int mismatches = 0;
    for (std::size_t k = 0; k < img.pixels.size(); ++k) mismatches += img.pixels[k] != static_cast<int>(want.values[k]);
    EXPECT_EQ(mismatches, 0) << "case " << i;
  }
}

TEST(image_io, shared_jpegs_decode_with_reference_sizes) {
  FACENET_REQUIRE_SHARED("images/multiface.jpg");
  const fd::image img = fd::load_image((facenet::testing::shared_dir() / "images/multiface.jpg").string());
  EXPECT_EQ(img.width, 1200);  // progressive JPEG
  EXPECT_EQ(img.height, 630);
}

TEST(exif, orientation_transforms_match_their_definitions) {
  const fd::image img = pattern(4, 3, 1);  // stored 4 wide, 3 high
  auto px = [&](int x, int y) { return img.at(y, x); };
  const fd::image r6 = fd::apply_exif_orientation(img, 6);  // display = rotate 90 clockwise
  ASSERT_EQ(r6.width, 3);
  ASSERT_EQ(r6.height, 4);
  EXPECT_EQ(r6.at(0, 2), px(0, 0));  // stored top-left ends top-right
  EXPECT_EQ(r6.at(3, 2), px(3, 0));
  const fd::image r8 = fd::apply_exif_orientation(img, 8);
  EXPECT_EQ(r8.at(3, 0), px(0, 0));  // stored top-left ends bottom-left
  const fd::image r3 = fd::apply_exif_orientation(img, 3);
  EXPECT_EQ(r3.at(2, 3), px(0, 0));
  EXPECT_EQ(fd::apply_exif_orientation(img, 2).at(0, 3), px(0, 0));
  EXPECT_EQ(fd::apply_exif_orientation(img, 4).at(2, 0), px(0, 0));
  EXPECT_EQ(fd::apply_exif_orientation(img, 5).at(1, 2), px(1, 2));
  const fd::image r7 = fd::apply_exif_orientation(img, 7);
  EXPECT_EQ(r7.at(3, 2), px(0, 0));
  // 6 then 8 is the identity; 3 twice is the identity.
  EXPECT_EQ(fd::apply_exif_orientation(r6, 8).pixels, img.pixels);
  EXPECT_EQ(fd::apply_exif_orientation(r3, 3).pixels, img.pixels);
  EXPECT_THROW(fd::apply_exif_orientation(img, 9), facenet::argument_error);
}

TEST(exif, jpeg_orientation_is_read_and_applied) {
  const auto jpg = fixture_jpeg();
  EXPECT_EQ(fd::jpeg_exif_orientation(jpg.data(), jpg.size()), 0);
  const fd::image plain = fd::decode_image(jpg.data(), jpg.size());
  for (bool little : {true, false})
    for (int o = 1; o <= 8; ++o) {
      const auto tagged = with_exif(jpg, o, little);
      ASSERT_EQ(fd::jpeg_exif_orientation(tagged.data(), tagged.size()), o);
      const fd::image upright = fd::decode_image(tagged.data(), tagged.size());
      EXPECT_EQ(upright.pixels, fd::apply_exif_orientation(plain, o).pixels) << "orientation " << o;
      fd::image_load_options raw;
      raw.apply_exif_orientation = false;
      EXPECT_EQ(fd::decode_image(tagged.data(), tagged.size(), raw).pixels, plain.pixels);
    }
}

TEST(exif, malformed_segments_never_read_out_of_bounds) {
  const auto tagged = with_exif(fixture_jpeg(), 6, true);
  // Every truncation and a corrupted IFD offset: the reader returns 0 or 6, never crashes.
  for (std::size_t n = 0; n < 80; ++n) {
    const int o = fd::jpeg_exif_orientation(tagged.data(), n);
    EXPECT_TRUE(o == 0 || o == 6) << n;
  }
  auto bad = tagged;
  bad[4 + 2 + 6 + 4] = 0xFF;  // IFD0 offset far past the segment
  std::vector<std::uint8_t> exact(bad.begin(), bad.end());
  EXPECT_EQ(fd::jpeg_exif_orientation(exact.data(), exact.size()), 0);
}

TEST(transforms, resize_area_matches_torch_interpolate_area) {
  const auto fx = facenet::testing::read_fixture(facenet::testing::source_dir().string() + "/tests/fixtures/mtcnn/resize.txt");
  const int cases[][4] = {{37, 23, 16, 11}, {5, 4, 9, 7}, {100, 61, 24, 24}, {13, 17, 13, 17}};
  for (int i = 0; i < 4; ++i) {
    const auto& ref = fx.at("area_" + std::to_string(i));
    const fd::image_f out = fd::resize_area(pattern(cases[i][0], cases[i][1]), cases[i][2], cases[i][3]);
    ASSERT_EQ(out.pixels.size(), ref.values.size()) << i;
    for (std::size_t k = 0; k < ref.values.size(); ++k) ASSERT_NEAR(out.pixels[k], ref.values[k], 1e-4) << i << " @" << k;
  }
}

TEST(transforms, resize_area_of_a_region_equals_resize_of_the_crop) {
  const fd::image img = pattern(50, 40);
  const fd::rect r{7, 3, 44, 29};
  fd::image_f a;
  fd::resize_area(img, r, 12, 9, a);
  const fd::image_f b = fd::resize_area(fd::crop(img, r), 12, 9);
  EXPECT_EQ(a.pixels, b.pixels);
  EXPECT_THROW(fd::resize_area(img, fd::rect{0, 0, 51, 10}, 4, 4, a), facenet::argument_error);
  EXPECT_THROW(fd::resize_area(img, r, 0, 4, a), facenet::argument_error);
}

TEST(transforms, resize_bilinear_pil_matches_pil_exactly) {
  const auto fx = facenet::testing::read_fixture(facenet::testing::source_dir().string() + "/tests/fixtures/mtcnn/resize.txt");
  struct c { int w, h; fd::rect r; int ow, oh; };
  const c cases[] = {{37, 23, {0, 0, 37, 23}, 16, 11}, {5, 4, {0, 0, 5, 4}, 9, 7}, {64, 48, {3, 5, 60, 41}, 20, 20},
                     {200, 150, {10, 7, 190, 143}, 23, 17}};
  for (int i = 0; i < 4; ++i) {
    const auto& ref = fx.at("pil_bilinear_" + std::to_string(i));
    const fd::image out = fd::resize_bilinear_pil(pattern(cases[i].w, cases[i].h), cases[i].r, cases[i].ow, cases[i].oh);
    ASSERT_EQ(out.pixels.size(), ref.values.size()) << i;
    int mismatches = 0;
    for (std::size_t k = 0; k < ref.values.size(); ++k) mismatches += out.pixels[k] != static_cast<int>(ref.values[k]);
    EXPECT_EQ(mismatches, 0) << "case " << i;
  }
}

TEST(transforms, warp_affine_identity_shift_and_inverse) {
  const fd::image img = pattern(20, 15);
  EXPECT_EQ(fd::warp_affine(img, {1, 0, 0, 0, 1, 0}, 20, 15).pixels, img.pixels);
  const fd::image shifted = fd::warp_affine(img, {1, 0, 3, 0, 1, 2}, 10, 8);
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 10; ++x) ASSERT_EQ(shifted.at(y, x, 1), img.at(y + 2, x + 3, 1));
  // Half-pixel shift averages neighbours; outside reads the border value.
  const fd::image_f f = fd::to_float(img);
  const fd::image_f half = fd::warp_affine(f, {1, 0, 0.5, 0, 1, 0}, 20, 15, -1.0f);
  EXPECT_FLOAT_EQ(half.at(4, 6, 0), 0.5f * (f.at(4, 6, 0) + f.at(4, 7, 0)));
  EXPECT_FLOAT_EQ(half.at(4, 19, 0), 0.5f * (f.at(4, 19, 0) - 1.0f));
  const fd::affine2d m = {1.5, -0.3, 4, 0.2, 0.9, -2};
  const fd::affine2d inv = fd::invert(m);
  const double x = 3, y = 7, u = m[0] * x + m[1] * y + m[2], v = m[3] * x + m[4] * y + m[5];
  EXPECT_NEAR(inv[0] * u + inv[1] * v + inv[2], x, 1e-12);
  EXPECT_NEAR(inv[3] * u + inv[4] * v + inv[5], y, 1e-12);
  EXPECT_THROW(fd::invert({1, 2, 0, 2, 4, 0}), facenet::numeric_error);
}

TEST(transforms, tensor_conversion_round_trip) {
  const fd::image img = pattern(7, 5);
  const Tensor<float> t = fd::to_tensor(img, 127.5f, 0.0078125f);
  ASSERT_EQ(t.shape(), facenet::shape({1, 3, 5, 7}));
  EXPECT_FLOAT_EQ(t(0, 2, 4, 6), (img.at(4, 6, 2) - 127.5f) * 0.0078125f);
  EXPECT_EQ(fd::from_tensor(t, 0, 127.5f, 0.0078125f).pixels, img.pixels);
  Tensor<float> wrong({1, 3, 5, 6});
  EXPECT_THROW(fd::to_tensor(img, wrong, 0), facenet::shape_error);
}

TEST(standardize, fixed_unit_and_prewhiten) {
  Tensor<float> x = facenet::testing::random_tensor<float>({2, 3, 4, 5}, 1, 0, 255);
  const Tensor<float> orig = x.clone();
  Tensor<float> f = x.clone();
  fd::standardize(f, fd::standardization::fixed);
  EXPECT_FLOAT_EQ(f.data()[17], (orig.data()[17] - 127.5f) / 128.0f);
  Tensor<float> u = x.clone();
  fd::standardize(u, fd::standardization::unit);
  EXPECT_FLOAT_EQ(u.data()[70], orig.data()[70] / 255.0f);
  for (auto kind : {fd::standardization::prewhiten, fd::standardization::prewhiten_np}) {
    Tensor<float> p = x.clone();
    fd::standardize(p, kind);
    const int ddof = kind == fd::standardization::prewhiten ? 1 : 0;
    for (int b = 0; b < 2; ++b) {
      double s = 0, ss = 0;
      for (int i = 0; i < 60; ++i) s += p.data()[b * 60 + i];
      for (int i = 0; i < 60; ++i) ss += p.data()[b * 60 + i] * p.data()[b * 60 + i];
      EXPECT_NEAR(s / 60, 0.0, 1e-5);
      EXPECT_NEAR(ss / (60 - ddof), 1.0, 1e-4);  // each image whitened on its own
    }
  }
  Tensor<float> flat = Tensor<float>::full({1, 1, 2, 2}, 9.0f);
  fd::standardize(flat, fd::standardization::prewhiten);  // std clamps to 1/sqrt(n): no division by 0
  EXPECT_FLOAT_EQ(flat.data()[0], 0.0f);
  EXPECT_EQ(fd::parse_standardization("prewhiten"), fd::standardization::prewhiten);
  EXPECT_THROW(fd::parse_standardization("zscore"), facenet::argument_error);
}

TEST(drawing, boxes_and_points_stay_inside_the_image) {
  fd::image img(20, 20, 3);
  fd::draw_box(img, 2, 3, 10, 12, {255, 0, 0}, 1);
  EXPECT_EQ(img.at(3, 5, 0), 255);
  EXPECT_EQ(img.at(12, 5, 0), 255);
  EXPECT_EQ(img.at(7, 2, 0), 255);
  EXPECT_EQ(img.at(7, 10, 0), 255);
  EXPECT_EQ(img.at(7, 5, 0), 0);  // inside stays untouched
  fd::draw_box(img, -5, -5, 30, 30, {0, 255, 0}, 3);  // clipped, no out-of-bounds write
  fd::draw_point(img, 19.6f, 0.2f, {0, 0, 255}, 2);
  EXPECT_EQ(img.at(0, 19, 2), 255);
}
