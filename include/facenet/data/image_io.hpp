// Decoding (stb_image: JPEG baseline + progressive, PNG, BMP, PGM/PPM, GIF first frame, TGA, PSD)
// into 8-bit RGB, and PNG encoding (stb_image_write).
//
// JPEGs are decoded by stb_image with three of its kernels swapped for libjpeg's arithmetic
// (the "islow" integer IDCT of jidctint.c, YCbCr -> RGB with jdcolor.c's 16-bit tables, and
// libjpeg-turbo's h2v2 "fancy" chroma upsampling with its alternating rounding bias), so the
// pixels come out as PIL / libjpeg-turbo decode them, i.e. what facenet-pytorch saw. stb's own rounding differs by +-1 on ~1% of values,
// which moves MTCNN probabilities of small faces by up to 0.006.
//
// The size limit is checked from the header before any pixel memory is allocated, so a 60000x60000
// PNG is refused instead of exhausting memory. JPEGs must contain their end-of-image marker after
// the first scan: stb_image silently zero-fills truncated JPEGs, which would hand the detector a
// half-grey photo.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
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

// Offset just past the start-of-image marker, or 0 when stb_image would not take the bytes for a
// JPEG: like stb, fill bytes (FF FF ... D8) are accepted before SOI.
inline std::size_t jpeg_soi_end(const std::uint8_t* d, std::size_t n) {
  std::size_t pos = 0;
  if (n == 0 || d[0] != 0xFF) return 0;
  while (pos < n && d[pos] == 0xFF) ++pos;
  return pos < n && d[pos] == 0xD8 ? pos + 1 : 0;
}
inline bool is_jpeg(const std::uint8_t* d, std::size_t n) { return jpeg_soi_end(d, n) != 0; }

// A copy of a PNG file without its empty IDAT chunks, or nothing when it has none (or is no PNG).
// stb_image 2.27 copies each IDAT chunk with memcpy into a buffer it allocates only for a non-empty
// chunk, so an empty first IDAT makes it call memcpy(NULL, p, 0), undefined behaviour (found by
// fuzz_image). Empty IDAT chunks add nothing to the zlib stream: dropping them changes no pixel.
// Chunks: 4-byte big-endian length, 4-byte type, data, 4-byte CRC, after the 8-byte signature.
inline std::vector<std::uint8_t> png_without_empty_idat(const std::uint8_t* d, std::size_t n) {
  static const std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (n < 8 || !std::equal(signature, signature + 8, d)) return {};
  std::vector<std::uint8_t> out;
  std::size_t pos = 8, kept_from = 0;
  while (pos + 12 <= n) {
    const std::size_t len = std::size_t(d[pos]) << 24 | std::size_t(d[pos + 1]) << 16 | std::size_t(d[pos + 2]) << 8 | d[pos + 3];
    if (len == 0 && std::memcmp(d + pos + 4, "IDAT", 4) == 0) {
      out.insert(out.end(), d + kept_from, d + pos);
      kept_from = pos + 12;
    }
    if (len > n - pos - 12) break;  // a truncated chunk: stb reports it
    pos += 12 + len;
  }
  if (kept_from == 0) return {};
  out.insert(out.end(), d + kept_from, d + n);
  return out;
}

// True when an EOI marker follows the first SOS marker (markers inside entropy-coded data are
// byte-stuffed as FF 00, so FF D9 there can only be the end marker).
inline bool jpeg_has_end_after_scan(const std::uint8_t* d, std::size_t n) {
  std::size_t pos = jpeg_soi_end(d, n);
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

// What in the Huffman tables would make stb_image (Debian's 2.27) write or read outside its arrays, or
// null when nothing: a DHT segment declaring more than 256 codes in one table (2.27 lacks upstream's
// later check and writes the code lengths and symbols past its 257-entry arrays), or a scan that
// decodes with a table no earlier DHT defined (stb's decoder state is malloc'ed, not cleared, so the
// table would be whatever the heap held: found by fuzz_image). The walk follows stb's parsing:
// segments are skipped by their length, anything else (junk, entropy-coded data, FF 00 stuffing,
// restart markers) is scanned byte by byte for the next marker, so every DHT and SOS stb can reach is
// checked (and, on damaged files, a few more).
inline const char* jpeg_huffman_problem(const std::uint8_t* d, std::size_t n) {
  const auto at = [&](std::size_t i) -> std::uint32_t { return i < n ? d[i] : 0; };  // stb reads 0 past the end
  bool defined[2][4] = {};  // [DC, AC][table id]
  bool progressive = false;
  std::size_t pos = jpeg_soi_end(d, n);
  while (pos < n) {
    if (d[pos] != 0xFF) {
      ++pos;
      continue;
    }
    while (pos < n && d[pos] == 0xFF) ++pos;
    if (pos + 2 >= n) return nullptr;
    const std::uint8_t m = d[pos++];
    if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) continue;  // no length field
    if (m == 0xD9) return nullptr;  // end of image: stb stops here
    const std::size_t len = (static_cast<std::size_t>(d[pos]) << 8) | d[pos + 1];
    if (len < 2) return nullptr;  // stb refuses the segment and stops
    if (m == 0xC2) progressive = true;
    if (m == 0xC4) {
      // Tables as stb reads them: class/id byte, 16 counts, the symbols.
      std::size_t t = pos + 2;
      for (std::int64_t left = static_cast<std::int64_t>(len) - 2; left > 0;) {
        std::uint32_t codes = 0;
        for (std::size_t i = 1; i <= 16; ++i) codes += at(t + i);
        if (codes > 256) return "a Huffman table declares more than 256 codes";
        const std::uint32_t table_class = at(t) >> 4, id = at(t) & 15;
        if (table_class <= 1 && id <= 3) defined[table_class][id] = true;  // others: stb refuses the file
        t += 17 + codes;
        left -= 17 + static_cast<std::int64_t>(codes);
      }
    }
    if (m == 0xDA) {
      // Components (id, DC << 4 | AC table), then spectral start and end, successive approximation.
      const std::size_t count = at(pos + 2), spectral = pos + 3 + 2 * count;
      const bool dc_first = at(spectral) == 0 && (at(spectral + 2) >> 4) == 0, ac = at(spectral + 1) > 0;
      for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t dc_id = at(pos + 4 + 2 * i) >> 4, ac_id = at(pos + 4 + 2 * i) & 15;
        if (dc_id > 3 || ac_id > 3) continue;  // stb refuses the scan
        const bool needs_dc = progressive ? dc_first : true, needs_ac = progressive ? ac : true;
        if ((needs_dc && !defined[0][dc_id]) || (needs_ac && !defined[1][ac_id]))
          return "a scan uses a Huffman table that no DHT segment defined";
      }
    }
    pos += len;
  }
  return nullptr;
}

// The maximum sample value of a binary PGM/PPM header, 0 when the bytes are not one, -1 when the
// width, height or maximum does not fit an int: stb_image 2.27 accumulates them in an int without a
// check (signed overflow). Reads the header as stb does: whitespace and '#' comments, then a run of
// digits, three times.
inline std::int64_t pnm_max_value(const std::uint8_t* d, std::size_t n) {
  if (n < 2 || d[0] != 'P' || (d[1] != '5' && d[1] != '6')) return 0;
  const auto space = [](std::uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
  std::size_t pos = 2;
  std::int64_t v = 0;
  for (int field = 0; field < 3; ++field) {
    for (;;) {
      while (pos < n && space(d[pos])) ++pos;
      if (pos >= n || d[pos] != '#') break;
      while (pos < n && d[pos] != '\n' && d[pos] != '\r') ++pos;
    }
    for (v = 0; pos < n && d[pos] >= '0' && d[pos] <= '9'; ++pos) {
      v = v * 10 + (d[pos] - '0');
      if (v > std::numeric_limits<int>::max()) return -1;
    }
  }
  return v;
}

// libjpeg's jpeg_idct_islow (jidctint.c): 13-bit constants, 2 extra bits between the passes,
// rounded descaling; `data` holds dequantized coefficients in natural order. stb's own IDCT keeps
// 12-bit constants and rounds differently.
inline void idct_islow_libjpeg(stbi_uc* out, int out_stride, short data[64]) {
  constexpr int const_bits = 13, pass1_bits = 2;
  auto descale = [](std::int64_t x, int n) { return (x + (std::int64_t(1) << (n - 1))) >> n; };
  // One 1-D pass: reads the 8 inputs through get(k), writes them descaled by `shift` via put(k, v).
  auto pass = [&](auto get, auto put, int shift) {
    std::int64_t z2 = get(2), z3 = get(6);
    std::int64_t z1 = (z2 + z3) * 4433;                // FIX(0.541196100)
    const std::int64_t t2 = z1 + z3 * -15137;          // FIX(1.847759065)
    const std::int64_t t3 = z1 + z2 * 6270;            // FIX(0.765366865)
    const std::int64_t t0 = (get(0) + get(4)) * (std::int64_t(1) << const_bits);
    const std::int64_t t1 = (get(0) - get(4)) * (std::int64_t(1) << const_bits);
    const std::int64_t t10 = t0 + t3, t13 = t0 - t3, t11 = t1 + t2, t12 = t1 - t2;
    std::int64_t o0 = get(7), o1 = get(5), o2 = get(3), o3 = get(1);
    z1 = o0 + o3, z2 = o1 + o2, z3 = o0 + o2;
    std::int64_t z4 = o1 + o3;
    const std::int64_t z5 = (z3 + z4) * 9633;          // FIX(1.175875602)
    o0 *= 2446, o1 *= 16819, o2 *= 25172, o3 *= 12299;  // 0.298631336 2.053119869 3.072711026 1.501321110
    z1 *= -7373, z2 *= -20995, z3 *= -16069, z4 *= -3196;  // 0.899976223 2.562915447 1.961570560 0.390180644
    z3 += z5, z4 += z5;
    o0 += z1 + z3, o1 += z2 + z4, o2 += z2 + z3, o3 += z1 + z4;
    put(0, descale(t10 + o3, shift)), put(7, descale(t10 - o3, shift));
    put(1, descale(t11 + o2, shift)), put(6, descale(t11 - o2, shift));
    put(2, descale(t12 + o1, shift)), put(5, descale(t12 - o1, shift));
    put(3, descale(t13 + o0, shift)), put(4, descale(t13 - o0, shift));
  };
  std::int64_t ws[64];
  for (int c = 0; c < 8; ++c)  // columns
    pass([&](int k) { return static_cast<std::int64_t>(data[k * 8 + c]); }, [&](int k, std::int64_t v) { ws[k * 8 + c] = v; },
         const_bits - pass1_bits);
  for (int r = 0; r < 8; ++r)  // rows, + 128 level shift, clamped
    pass([&](int k) { return ws[r * 8 + k]; },
         [&](int k, std::int64_t v) {
           v += 128;
           out[r * out_stride + k] = static_cast<stbi_uc>(v < 0 ? 0 : (v > 255 ? 255 : v));
         },
         const_bits + pass1_bits + 3);
}

// libjpeg's ycc_rgb_convert (jdcolor.c): 16-bit fixed point, Cb/Cr centred on 128, results clamped.
inline void ycbcr_to_rgb_libjpeg(stbi_uc* out, const stbi_uc* y, const stbi_uc* pcb, const stbi_uc* pcr, int count,
                                 int step) {
  constexpr int scale_bits = 16;
  constexpr std::int32_t one_half = std::int32_t(1) << (scale_bits - 1);
  auto fix = [](double v) { return static_cast<std::int32_t>(v * (1 << scale_bits) + 0.5); };
  auto clamp8 = [](int v) { return static_cast<stbi_uc>(v < 0 ? 0 : (v > 255 ? 255 : v)); };
  for (int i = 0; i < count; ++i, out += step) {
    const std::int32_t cb = pcb[i] - 128, cr = pcr[i] - 128, yy = y[i];
    out[0] = clamp8(yy + ((fix(1.40200) * cr + one_half) >> scale_bits));
    out[1] = clamp8(yy + ((-fix(0.34414) * cb + one_half - fix(0.71414) * cr) >> scale_bits));
    out[2] = clamp8(yy + ((fix(1.77200) * cb + one_half) >> scale_bits));
    if (step == 4) out[3] = 255;
  }
}

// libjpeg-turbo's h2v2_fancy_upsample for one output row: triangle filter 3:1 vertically (near,
// far row) and 3:1 horizontally, rounding bias +8 towards the previous column and +7 towards the
// next one (stb uses +8 for both).
inline stbi_uc* upsample_h2v2_libjpeg(stbi_uc* out, stbi_uc* near_row, stbi_uc* far_row, int w, int /*hs*/) {
  if (w == 1) {
    out[0] = out[1] = static_cast<stbi_uc>((3 * near_row[0] + far_row[0] + 2) >> 2);
    return out;
  }
  int this_sum = 3 * near_row[0] + far_row[0];
  int next_sum = 3 * near_row[1] + far_row[1];
  int last_sum = this_sum;
  out[0] = static_cast<stbi_uc>((this_sum * 4 + 8) >> 4);
  out[1] = static_cast<stbi_uc>((this_sum * 3 + next_sum + 7) >> 4);
  for (int i = 1; i < w - 1; ++i) {
    last_sum = this_sum;
    this_sum = next_sum;
    next_sum = 3 * near_row[i + 1] + far_row[i + 1];
    out[2 * i] = static_cast<stbi_uc>((this_sum * 3 + last_sum + 8) >> 4);
    out[2 * i + 1] = static_cast<stbi_uc>((this_sum * 3 + next_sum + 7) >> 4);
  }
  last_sum = this_sum;
  this_sum = next_sum;
  out[2 * w - 2] = static_cast<stbi_uc>((this_sum * 3 + last_sum + 8) >> 4);
  out[2 * w - 1] = static_cast<stbi_uc>((this_sum * 4 + 7) >> 4);
  return out;
}

// stbi__jpeg_load with the three kernels above (stb's internals are visible here because the
// implementation is compiled into this translation unit).
inline stbi_uc* load_jpeg_libjpeg_compatible(const stbi_uc* data, int size, int* w, int* h, int* comp, int req_comp) {
  stbi__context ctx;
  stbi__start_mem(&ctx, data, size);
  auto* j = static_cast<stbi__jpeg*>(stbi__malloc(sizeof(stbi__jpeg)));
  if (!j) return nullptr;
  j->s = &ctx;
  stbi__setup_jpeg(j);
  j->idct_block_kernel = idct_islow_libjpeg;
  j->YCbCr_to_RGB_kernel = ycbcr_to_rgb_libjpeg;
  j->resample_row_hv_2_kernel = upsample_h2v2_libjpeg;
  stbi_uc* pixels = load_jpeg_image(j, w, h, comp, req_comp);
  STBI_FREE(j);
  return pixels;
}

// Grey, grey + alpha, RGB or RGBA pixels -> RGB: grey is replicated, alpha dropped (stb's own rule).
inline void expand_to_rgb(const stbi_uc* src, std::size_t count, int channels, std::uint8_t* dst) {
  for (std::size_t i = 0; i < count; ++i, src += channels, dst += 3) {
    const bool grey = channels < 3;
    dst[0] = src[0];
    dst[1] = src[grey ? 0 : 1];
    dst[2] = src[grey ? 0 : 2];
  }
}

}  // namespace detail

// Decodes an in-memory file. `what` names it in error messages (a path, or "<memory>").
inline image decode_image(const std::uint8_t* data, std::size_t size, const image_load_options& opt = {},
                          const std::string& what = "<memory>") {
  FACENET_CHECK(size > 0, format_error, what + ": empty file");
  FACENET_CHECK(size <= static_cast<std::size_t>(INT32_MAX), unsupported_error, what + ": file larger than 2 GiB");
  const std::vector<std::uint8_t> png = detail::png_without_empty_idat(data, size);
  if (!png.empty()) return decode_image(png.data(), png.size(), opt, what);
  const auto* p = reinterpret_cast<const stbi_uc*>(data);
  const int n = static_cast<int>(size);
  const bool jpeg = detail::is_jpeg(data, size);
  // Before stbi_info, which already parses the tables in front of the frame header.
  if (jpeg)
    if (const char* problem = detail::jpeg_huffman_problem(data, size))
      throw format_error(what + ": corrupt JPEG (" + problem + ")");
  const std::int64_t pnm_max = detail::pnm_max_value(data, size);
  FACENET_CHECK(pnm_max >= 0, format_error, what + ": corrupt PGM/PPM header (a number does not fit an int)");
  FACENET_CHECK(pnm_max <= 255, unsupported_error,
                what + ": 16-bit PGM/PPM is not supported (stb_image 2.27 reads its samples in the wrong byte order)");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(p, n, &w, &h, &comp))
    throw format_error(what + ": not a decodable image (" + std::string(stbi_failure_reason()) +
                       "); supported: JPEG, PNG, BMP, PGM/PPM, GIF, TGA, PSD");
  FACENET_CHECK(w > 0 && h > 0 && w <= opt.max_dimension && h <= opt.max_dimension &&
                    static_cast<std::int64_t>(w) * h <= opt.max_pixels,
                unsupported_error,
                what + ": image is " + std::to_string(w) + "x" + std::to_string(h) + ", over the limit (max side " +
                    std::to_string(opt.max_dimension) + ", max pixels " + std::to_string(opt.max_pixels) + ")");
  FACENET_CHECK(!jpeg || detail::jpeg_has_end_after_scan(data, size), format_error,
                what + ": truncated JPEG (no end-of-image marker after the scan data)");
  // Other formats decode to the file's own channel count and are expanded to RGB here, as stb would:
  // stb_image 2.27's PNM loader converts 16-bit samples with its 8-bit routine when asked for another
  // channel count, and the buffer it returns is then read past its end.
  int dw = 0, dh = 0, dc = 0;
  stbi_uc* pixels = jpeg ? detail::load_jpeg_libjpeg_compatible(p, n, &dw, &dh, &dc, 3)
                         : stbi_load_from_memory(p, n, &dw, &dh, &dc, 0);
  if (!pixels) throw format_error(what + ": decoding failed (" + std::string(stbi_failure_reason()) + ")");
  const std::unique_ptr<stbi_uc, void (*)(void*)> owned(pixels, stbi_image_free);
  const int channels = jpeg ? 3 : dc;
  FACENET_CHECK(channels >= 1 && channels <= 4, format_error, what + ": decoded to " + std::to_string(channels) + " channels");
  image img;
  img.width = dw;
  img.height = dh;
  img.channels = 3;
  img.pixels.resize(static_cast<std::size_t>(dw) * dh * 3);
  detail::expand_to_rgb(pixels, static_cast<std::size_t>(dw) * dh, channels, img.pixels.data());
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
