// EXIF orientation for JPEG: read tag 0x0112 from the APP1 "Exif" segment (every read bounds-checked,
// so a hostile file can only make us return "no orientation"), and apply it to decoded pixels.
// Phones store portrait photos landscape + orientation 6; ignoring it feeds MTCNN sideways faces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "facenet/core/error.hpp"
#include "facenet/data/image.hpp"

namespace facenet::data {

namespace detail {

// Bounds-checked reads inside the TIFF block of an EXIF segment.
struct tiff_reader {
  const std::uint8_t* p;
  std::size_t size;
  bool little;

  bool u16(std::size_t off, std::uint32_t& v) const {
    if (off > size || size - off < 2) return false;
    v = little ? (p[off] | (p[off + 1] << 8)) : ((p[off] << 8) | p[off + 1]);
    return true;
  }
  bool u32(std::size_t off, std::uint32_t& v) const {
    if (off > size || size - off < 4) return false;
    const std::uint32_t b0 = p[off], b1 = p[off + 1], b2 = p[off + 2], b3 = p[off + 3];
    v = little ? (b0 | (b1 << 8) | (b2 << 16) | (b3 << 24)) : ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3);
    return true;
  }
};

// Orientation from one "Exif\0\0" APP1 payload, or 0.
inline int exif_payload_orientation(const std::uint8_t* p, std::size_t n) {
  static const char magic[6] = {'E', 'x', 'i', 'f', 0, 0};
  if (n < 14) return 0;
  for (int i = 0; i < 6; ++i)
    if (p[i] != static_cast<std::uint8_t>(magic[i])) return 0;
  const std::uint8_t* t = p + 6;
  const std::size_t tn = n - 6;
  tiff_reader r{t, tn, false};
  if (t[0] == 'I' && t[1] == 'I') r.little = true;
  else if (!(t[0] == 'M' && t[1] == 'M')) return 0;
  std::uint32_t v = 0, ifd = 0, count = 0;
  if (!r.u16(2, v) || v != 42 || !r.u32(4, ifd) || !r.u16(ifd, count)) return 0;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::size_t e = static_cast<std::size_t>(ifd) + 2 + 12 * static_cast<std::size_t>(i);
    std::uint32_t tag = 0, type = 0, value = 0;
    if (!r.u16(e, tag) || !r.u16(e + 2, type)) return 0;
    if (tag != 0x0112) continue;
    if (type != 3 || !r.u16(e + 8, value)) return 0;  // SHORT stored in the value field itself
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 0;
  }
  return 0;
}

}  // namespace detail

// EXIF orientation (1..8) of a JPEG byte stream, or 0 when it is not a JPEG or has none.
// Walks the marker segments before the first scan; never reads outside [data, data + size).
inline int jpeg_exif_orientation(const std::uint8_t* data, std::size_t size) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return 0;
  std::size_t pos = 2;
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) return 0;
    const std::uint8_t marker = data[pos + 1];
    if (marker == 0xFF) {  // fill byte
      ++pos;
      continue;
    }
    if (marker == 0xDA || marker == 0xD9) return 0;  // scan or end: no more metadata
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // standalone markers
      pos += 2;
      continue;
    }
    const std::size_t len = (static_cast<std::size_t>(data[pos + 2]) << 8) | data[pos + 3];
    if (len < 2 || pos + 2 + len > size) return 0;
    if (marker == 0xE1) {
      const int o = detail::exif_payload_orientation(data + pos + 4, len - 2);
      if (o) return o;
    }
    pos += 2 + len;
  }
  return 0;
}

// Returns `img` turned upright for EXIF orientation `o` (1 or 0 = unchanged). Orientation 6 means
// "rotate 90 degrees clockwise to display", 8 counter-clockwise; 2, 4, 5, 7 include a mirror.
template <class T>
basic_image<T> apply_exif_orientation(const basic_image<T>& img, int o) {
  FACENET_CHECK(o >= 0 && o <= 8, argument_error, "apply_exif_orientation: orientation " + std::to_string(o) + " is not in 0..8");
  if (o <= 1) return img;
  const bool swap = o >= 5;
  const int w = img.width, h = img.height;
  basic_image<T> out(swap ? h : w, swap ? w : h, img.channels);
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x) {
      int sx = 0, sy = 0;  // source pixel shown at (x, y)
      switch (o) {
        case 2: sx = w - 1 - x, sy = y; break;
        case 3: sx = w - 1 - x, sy = h - 1 - y; break;
        case 4: sx = x, sy = h - 1 - y; break;
        case 5: sx = y, sy = x; break;
        case 6: sx = y, sy = h - 1 - x; break;
        case 7: sx = w - 1 - y, sy = h - 1 - x; break;
        default: sx = w - 1 - y, sy = x; break;  // 8
      }
      for (int c = 0; c < img.channels; ++c) out.at(y, x, c) = img.at(sy, sx, c);
    }
  return out;
}

}  // namespace facenet::data
