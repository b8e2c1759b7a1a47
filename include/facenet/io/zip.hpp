// Read-only ZIP archives (PKWARE APPNOTE 6.3): central directory, local headers, ZIP64 sizes and
// offsets (torch.save writes them for large archives), stored and deflated entries, CRC-32 checked.
// Used for torch.save's zip format and numpy's .npz.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/detail/stb_image_impl.hpp"
#include "facenet/io/binary.hpp"
#include "facenet/io/mmap_file.hpp"

namespace facenet::io {

inline std::uint32_t crc32(const std::uint8_t* p, std::uint64_t n) noexcept {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  std::uint32_t c = 0xffffffffu;
  for (std::uint64_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

struct zip_entry {
  std::string name;
  std::uint16_t method = 0;  // 0 stored, 8 deflate
  std::uint32_t crc = 0;
  std::uint64_t compressed_size = 0;
  std::uint64_t size = 0;
  std::uint64_t local_header_offset = 0;
};

class zip_archive {
 public:
  // Parses the directory of a zip image; `bytes` must outlive the archive.
  zip_archive(byte_span bytes, std::string what) : bytes_(bytes), what_(std::move(what)) { read_directory(); }

  const std::vector<zip_entry>& entries() const noexcept { return entries_; }
  const zip_entry* find(const std::string& name) const {
    for (const auto& e : entries_)
      if (e.name == name) return &e;
    return nullptr;
  }
  // Contents of a stored entry without copying (torch's zip writer stores everything).
  byte_span stored_data(const zip_entry& e) const {
    FACENET_CHECK(e.method == 0, unsupported_error,
                  what_ + ": entry '" + e.name + "' is compressed (method " + std::to_string(e.method) + "), expected stored");
    const byte_span d = data_span(e);
    check_crc(e, d.data, d.size);
    return d;
  }
  // Contents of a stored or deflated entry.
  std::vector<std::uint8_t> read(const zip_entry& e) const {
    const byte_span d = data_span(e);
    std::vector<std::uint8_t> out;
    if (e.method == 0) {
      out.assign(d.data, d.data + d.size);
    } else if (e.method == 8) {
      // Deflate expands at most ~1032:1; a larger declared size is a lie, not a reason to allocate.
      FACENET_CHECK(e.size <= d.size * 1032 + 64 && e.size < (1ull << 31), format_error,
                    what_ + ": entry '" + e.name + "' declares " + std::to_string(e.size) +
                        " uncompressed bytes from " + std::to_string(d.size) + " compressed");
      FACENET_CHECK(d.size < (1ull << 31) - 16, format_error, what_ + ": entry '" + e.name + "' is too large to inflate");
      // At least one byte, so an empty entry still hands stb a real pointer (it memcpy's 0 bytes to
      // it, and memcpy to null is undefined even then).
      out.resize(std::max<std::size_t>(static_cast<std::size_t>(e.size), 1));
      // stb_image 2.27 reports "bad huffman code" when a valid stream's last codes sit in its final
      // bytes (it tests for end of input before using the bits it already holds); zero padding,
      // which follows the end-of-block code and is never consumed, avoids that.
      std::vector<char> padded(d.data, d.data + d.size);
      padded.resize(padded.size() + 16, 0);
      const int n = stbi_zlib_decode_noheader_buffer(reinterpret_cast<char*>(out.data()), static_cast<int>(e.size),
                                                     padded.data(), static_cast<int>(padded.size()));
      out.resize(static_cast<std::size_t>(e.size));
      FACENET_CHECK(n >= 0 && static_cast<std::uint64_t>(n) == e.size, format_error,
                    what_ + ": entry '" + e.name + "': corrupt deflate stream (got " + std::to_string(n) + " of " +
                        std::to_string(e.size) + " bytes)");
    } else {
      throw unsupported_error(what_ + ": entry '" + e.name + "' uses compression method " + std::to_string(e.method) +
                              " (only stored and deflate are supported)");
    }
    check_crc(e, out.data(), out.size());
    return out;
  }

 private:
  static constexpr std::uint32_t eocd_sig = 0x06054b50, eocd64_sig = 0x06064b50, locator64_sig = 0x07064b50,
                                 central_sig = 0x02014b50, local_sig = 0x04034b50;

  void check_crc(const zip_entry& e, const std::uint8_t* p, std::uint64_t n) const {
    FACENET_CHECK(skip_checksums || crc32(p, n) == e.crc, format_error, what_ + ": entry '" + e.name + "' fails its CRC-32 check");
  }
  byte_span data_span(const zip_entry& e) const {
    span_reader r(bytes_, what_ + ": local header of '" + e.name + "'");
    r.seek(e.local_header_offset);
    FACENET_CHECK(r.read<std::uint32_t>("signature") == local_sig, format_error,
                  what_ + ": bad local header signature for '" + e.name + "' at offset " + std::to_string(e.local_header_offset));
    r.take(22, "local header fields");
    const std::uint16_t name_len = r.read<std::uint16_t>("name length");
    const std::uint16_t extra_len = r.read<std::uint16_t>("extra length");
    r.take(name_len + static_cast<std::uint64_t>(extra_len), "name and extra field");
    return bytes_.sub(r.position(), e.compressed_size, what_ + ": data of entry '" + e.name + "'");
  }
  std::uint64_t find_eocd() const {
    FACENET_CHECK(bytes_.size >= 22, format_error, what_ + ": too small to be a zip archive (" + std::to_string(bytes_.size) + " bytes)");
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
    const std::uint64_t lowest = bytes_.size >= 22 + 65535 ? bytes_.size - 22 - 65535 : 0;
    for (std::uint64_t p = bytes_.size - 22 + 1; p-- > lowest;)
      if (load_le<std::uint32_t>(bytes_.data + p) == eocd_sig) return p;
    throw format_error(what_ + ": no end-of-central-directory record (not a zip archive, or truncated)");
  }
  void read_directory() {
    const std::uint64_t eocd = find_eocd();
    span_reader r(bytes_, what_ + ": end of central directory");
    r.seek(eocd + 4);
    const std::uint16_t disk = r.read<std::uint16_t>("disk number");
    r.take(4, "disk fields");
    std::uint64_t count = r.read<std::uint16_t>("entry count");
    std::uint64_t dir_size = r.read<std::uint32_t>("directory size");
    std::uint64_t dir_offset = r.read<std::uint32_t>("directory offset");
    FACENET_CHECK(disk == 0, unsupported_error, what_ + ": multi-disk zip archives are not supported");
    if (count == 0xffff || dir_size == 0xffffffffu || dir_offset == 0xffffffffu) read_zip64_end(eocd, count, dir_size, dir_offset);
    // Each central record is at least 46 bytes: the count cannot exceed what the file could hold.
    FACENET_CHECK(count <= bytes_.size / 46, format_error,
                  what_ + ": declares " + std::to_string(count) + " entries, more than the file can hold");
    span_reader d(bytes_.sub(dir_offset, dir_size, what_ + ": central directory"), what_ + ": central directory");
    entries_.reserve(static_cast<std::size_t>(count));
    for (std::uint64_t i = 0; i < count; ++i) entries_.push_back(read_central_entry(d));
  }
  void read_zip64_end(std::uint64_t eocd, std::uint64_t& count, std::uint64_t& dir_size, std::uint64_t& dir_offset) const {
    FACENET_CHECK(eocd >= 20, format_error, what_ + ": ZIP64 values without a ZIP64 locator");
    span_reader r(bytes_, what_ + ": ZIP64 locator");
    r.seek(eocd - 20);
    FACENET_CHECK(r.read<std::uint32_t>("signature") == locator64_sig, format_error, what_ + ": missing ZIP64 locator");
    r.take(4, "disk");
    const std::uint64_t rec = r.read<std::uint64_t>("ZIP64 record offset");
    span_reader z(bytes_, what_ + ": ZIP64 end record");
    z.seek(rec);
    FACENET_CHECK(z.read<std::uint32_t>("signature") == eocd64_sig, format_error,
                  what_ + ": bad ZIP64 end record signature at offset " + std::to_string(rec));
    z.take(8 + 2 + 2 + 4 + 4 + 8, "ZIP64 record fields");
    count = z.read<std::uint64_t>("entry count");
    dir_size = z.read<std::uint64_t>("directory size");
    dir_offset = z.read<std::uint64_t>("directory offset");
  }
  zip_entry read_central_entry(span_reader& d) const {
    FACENET_CHECK(d.read<std::uint32_t>("signature") == central_sig, format_error,
                  what_ + ": bad central directory record at offset " + std::to_string(d.position() - 4));
    zip_entry e;
    d.take(4, "versions");
    const std::uint16_t flags = d.read<std::uint16_t>("flags");
    e.method = d.read<std::uint16_t>("method");
    d.take(4, "time and date");
    e.crc = d.read<std::uint32_t>("crc");
    e.compressed_size = d.read<std::uint32_t>("compressed size");
    e.size = d.read<std::uint32_t>("size");
    const std::uint16_t name_len = d.read<std::uint16_t>("name length");
    const std::uint16_t extra_len = d.read<std::uint16_t>("extra length");
    const std::uint16_t comment_len = d.read<std::uint16_t>("comment length");
    d.take(8, "disk and attributes");
    e.local_header_offset = d.read<std::uint32_t>("local header offset");
    e.name = d.string(name_len, "entry name");
    FACENET_CHECK(!(flags & 1), unsupported_error, what_ + ": entry '" + e.name + "' is encrypted");
    read_zip64_extra(span_reader(d.span(extra_len, "extra field"), what_ + ": extra field of '" + e.name + "'"), e);
    d.take(comment_len, "entry comment");
    return e;
  }
  // Fields stored as 0xffffffff in the record come, in order, from the ZIP64 extra block (id 1).
  static void read_zip64_extra(span_reader x, zip_entry& e) {
    while (x.remaining() >= 4) {
      const std::uint16_t id = x.read<std::uint16_t>("extra id");
      const std::uint16_t len = x.read<std::uint16_t>("extra size");
      span_reader block(x.span(len, "extra block"), x.what());
      if (id != 1) continue;
      if (e.size == 0xffffffffu) e.size = block.read<std::uint64_t>("ZIP64 size");
      if (e.compressed_size == 0xffffffffu) e.compressed_size = block.read<std::uint64_t>("ZIP64 compressed size");
      if (e.local_header_offset == 0xffffffffu) e.local_header_offset = block.read<std::uint64_t>("ZIP64 offset");
    }
  }

  byte_span bytes_;
  std::string what_;
  std::vector<zip_entry> entries_;
};

// A zip archive together with the file it maps.
class zip_file {
 public:
  explicit zip_file(const std::string& path) : file_(std::make_unique<mapped_file>(path)), archive_(file_->bytes(), path) {}
  const zip_archive& archive() const noexcept { return archive_; }

 private:
  std::unique_ptr<mapped_file> file_;
  zip_archive archive_;
};

}  // namespace facenet::io
