// Decoding (stb_image: JPEG baseline + progressive, PNG, BMP, PGM/PPM, GIF first frame, TGA, PSD)
// into 8-bit RGB, and PNG encoding (stb_image_write).
//
// The size limit is checked from the header before any pixel memory is allocated, so a 60000x60000
// PNG is refused instead of exhausting memory. JPEGs must contain their end-of-image marker after
// the first scan: stb_image silently zero-fills truncated JPEGs, which would hand the detector a
// half-grey photo.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/data/exif.hpp"
#include "facenet/data/image.hpp"
#include "facenet/detail/stb_image_impl.hpp"
#include "facenet/detail/stb_image_write_impl.hpp"

namespace facenet::data {

struct image_load_options {
  std::int64_t max_pixels = 100'000'000;  // width * height above this is refused before decoding
  int max_dimension = 32768;               // either side above this is refused before decoding
  bool apply_exif_orientation = true;      // JPEG only
};

namespace detail {

inline bool is_jpeg(const std::uint8_t* d, std::size_t n) { return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF; }

// True when an EOI marker follows the first SOS marker (markers inside entropy-coded data are
// byte-stuffed as FF 00, so FF D9 there can only be the end marker).
inline bool jpeg_has_end_after_scan(const std::uint8_t* d, std::size_t n) {
  std::size_t pos = 2;
  while (pos + 4 <= n) {
    if (d[pos] != 0xFF) return false;
    const std::uint8_t m = d[pos + 1];
    if (m == 0xFF) {
      ++pos;
      continue;
    }
    if (m == 0xD9) return false;  // end before any scan
    if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) {
      pos += 2;
      continue;
    }
    const std::size_t len = (static_cast<std::size_t>(d[pos + 2]) << 8) | d[pos + 3];
    if (len < 2 || pos + 2 + len > n) return false;
    if (m == 0xDA) {
      for (std::size_t i = n - 1; i > pos + 2 + len; --i)
        if (d[i] == 0xD9 && d[i - 1] == 0xFF) return true;
      return false;
    }
    pos += 2 + len;
  }
  return false;
}

}  // namespace detail

// Decodes an in-memory file. `what` names it in error messages (a path, or "<memory>").
inline image decode_image(const std::uint8_t* data, std::size_t size, const image_load_options& opt = {},
                          const std::string& what = "<memory>") {
  FACENET_CHECK(size > 0, format_error, what + ": empty file");
  FACENET_CHECK(size <= static_cast<std::size_t>(INT32_MAX), unsupported_error, what + ": file larger than 2 GiB");
  const auto* p = reinterpret_cast<const stbi_uc*>(data);
  const int n = static_cast<int>(size);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(p, n, &w, &h, &comp))
    throw format_error(what + ": not a decodable image (" + std::string(stbi_failure_reason()) +
                       "); supported: JPEG, PNG, BMP, PGM/PPM, GIF, TGA, PSD");
  FACENET_CHECK(w > 0 && h > 0 && w <= opt.max_dimension && h <= opt.max_dimension &&
                    static_cast<std::int64_t>(w) * h <= opt.max_pixels,
                unsupported_error,
                what + ": image is " + std::to_string(w) + "x" + std::to_string(h) + ", over the limit (max side " +
                    std::to_string(opt.max_dimension) + ", max pixels " + std::to_string(opt.max_pixels) + ")");
  const bool jpeg = detail::is_jpeg(data, size);
  FACENET_CHECK(!jpeg || detail::jpeg_has_end_after_scan(data, size), format_error,
                what + ": truncated JPEG (no end-of-image marker after the scan data)");
  int dw = 0, dh = 0, dc = 0;
  stbi_uc* pixels = stbi_load_from_memory(p, n, &dw, &dh, &dc, 3);  // grey / alpha -> RGB
  if (!pixels) throw format_error(what + ": decoding failed (" + std::string(stbi_failure_reason()) + ")");
  image img;
  img.width = dw;
  img.height = dh;
  img.channels = 3;
  img.pixels.assign(pixels, pixels + static_cast<std::size_t>(dw) * dh * 3);
  stbi_image_free(pixels);
  if (jpeg && opt.apply_exif_orientation) img = apply_exif_orientation(img, jpeg_exif_orientation(data, size));
  return img;
}

inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  FACENET_CHECK(f.good(), io_error, path + ": cannot open for reading");
  std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  FACENET_CHECK(!f.bad(), io_error, path + ": read error");
  return bytes;
}

inline image load_image(const std::string& path, const image_load_options& opt = {}) {
  const std::vector<std::uint8_t> bytes = read_file_bytes(path);
  return decode_image(bytes.data(), bytes.size(), opt, path);
}

// Lossless PNG of an 8-bit image with 1, 3 or 4 channels.
inline void save_png(const image& img, const std::string& path) {
  FACENET_CHECK(!img.empty() && (img.channels == 1 || img.channels == 3 || img.channels == 4), argument_error,
                "save_png: cannot write a " + std::to_string(img.width) + "x" + std::to_string(img.height) + "x" +
                    std::to_string(img.channels) + " image to " + path);
  FACENET_CHECK(img.pixels.size() == static_cast<std::size_t>(img.width) * img.height * img.channels, argument_error,
                "save_png: pixel buffer does not match the image size");
  const int ok = stbi_write_png(path.c_str(), img.width, img.height, img.channels, img.pixels.data(),
                                img.width * img.channels);
  FACENET_CHECK(ok != 0, io_error, path + ": cannot write PNG");
}

}  // namespace facenet::data
