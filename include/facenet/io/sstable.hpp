// Reader for the LevelDB table format ("SSTable") that TensorFlow uses for checkpoint `.index`
// files, written from LevelDB's doc/table_format.md:
//   file   = data blocks, meta blocks, metaindex block, index block, 48-byte footer
//   footer = metaindex BlockHandle, index BlockHandle (varint64 offset + size each), zero padding to
//            40 bytes, magic 0xdb4775248b80fb57 (little endian)
//   block  = entries (varint shared, varint non_shared, varint value_len, key suffix, value),
//            uint32 restart offsets, uint32 restart count; followed on disk by a 1-byte compression
//            type and a 4-byte masked crc32c of (block contents + type byte).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"
#include "facenet/io/binary.hpp"
#include "facenet/io/protobuf.hpp"

namespace facenet::io {

namespace detail {
inline const std::array<std::uint32_t, 256>& crc32c_table() {
  static const std::array<std::uint32_t, 256> table = [] {
    std::array<std::uint32_t, 256> t{};
    for (std::uint32_t i = 0; i < 256; ++i) {
      std::uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // Castagnoli, reflected
      t[i] = c;
    }
    return t;
  }();
  return table;
}
}  // namespace detail

// CRC-32C (Castagnoli), continuing from `crc` (0 to start).
inline std::uint32_t crc32c_extend(std::uint32_t crc, const std::uint8_t* data, std::size_t n) {
  const auto& t = detail::crc32c_table();
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) crc = t[(crc ^ data[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}
inline std::uint32_t crc32c(const std::uint8_t* data, std::size_t n) { return crc32c_extend(0, data, n); }
// LevelDB/TensorFlow store CRCs "masked" so that CRCs of data containing CRCs stay well distributed.
inline std::uint32_t crc32c_mask(std::uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

namespace sstable {

inline constexpr std::uint64_t table_magic = 0xdb4775248b80fb57ull;
inline constexpr std::size_t footer_size = 48;
inline constexpr std::size_t block_trailer_size = 5;

struct block_handle {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
};

inline block_handle read_handle(byte_reader& r) {
  block_handle h;
  h.offset = r.varint("block handle offset");
  h.size = r.varint("block handle size");
  return h;
}

// Verifies the trailer of the block at `h` and returns a reader over its contents.
inline byte_reader block_contents(const byte_reader& file, const block_handle& h, const char* what) {
  byte_reader r = file;
  if (h.offset > file.size() || h.size > file.size() - h.offset ||
      block_trailer_size > file.size() - h.offset - h.size)
    file.fail(std::string(what) + " block [" + std::to_string(h.offset) + ", +" + std::to_string(h.size) +
              "] (+5 byte trailer) lies outside the " + std::to_string(file.size()) + "-byte file");
  r.seek(static_cast<std::size_t>(h.offset));
  const std::uint8_t* start = r.bytes(h.size);
  const std::uint8_t type = r.u8("block compression type");
  const std::uint32_t stored = r.u32("block crc");
  std::uint32_t crc = crc32c_extend(crc32c(start, static_cast<std::size_t>(h.size)), &type, 1);
  if (!skip_checksums && crc32c_mask(crc) != stored)
    throw format_error(file.source() + " at offset " + std::to_string(h.offset) + ": " + what +
                       " block checksum mismatch (stored masked crc32c " + std::to_string(stored) + ", computed " +
                       std::to_string(crc32c_mask(crc)) + ")");
  if (type == 1)
    throw unsupported_error(file.source() + " at offset " + std::to_string(h.offset) + ": " + what +
                            " block is snappy-compressed; TensorFlow writes checkpoint indexes uncompressed, "
                            "re-save the checkpoint without compression");
  if (type != 0)
    throw format_error(file.source() + " at offset " + std::to_string(h.offset) + ": unknown block compression type " +
                       std::to_string(type));
  return byte_reader(start, static_cast<std::size_t>(h.size), file.source(), h.offset);
}

// Decodes every key/value entry of one block, in order, appending to `out`. Prefix compression lets
// a few bytes stand for a long key, so decoded bytes are charged against `budget`.
inline void read_block_entries(byte_reader block, std::vector<std::pair<std::string, std::string>>& out,
                               std::uint64_t& budget) {
  if (block.size() < 4) block.fail("block smaller than its restart count");
  block.seek(block.size() - 4);
  const std::uint32_t restarts = block.u32("restart count");
  if (restarts == 0 || restarts > (block.size() - 4) / 4) block.fail("invalid restart count " + std::to_string(restarts));
  const std::size_t entries_end = block.size() - 4 - std::size_t{restarts} * 4;
  block.seek(0);
  byte_reader entries = block.sub(entries_end, "block entries");
  std::string key;
  while (!entries.at_end()) {
    const std::uint64_t shared = entries.varint("key shared length");
    const std::uint64_t non_shared = entries.varint("key length");
    const std::uint64_t value_len = entries.varint("value length");
    if (shared > key.size()) entries.fail("entry shares " + std::to_string(shared) + " bytes of a " +
                                          std::to_string(key.size()) + "-byte previous key");
    key.resize(static_cast<std::size_t>(shared));
    key += entries.string(non_shared, "key");
    entries.require(value_len, "value");
    const std::uint64_t cost = key.size() + value_len + 64;
    if (cost > budget) entries.fail("entries expand to more than 16x the file size (hostile prefix compression?)");
    budget -= cost;
    out.emplace_back(key, entries.string(value_len, "value"));
  }
}

// All entries of the table, in key order.
inline std::vector<std::pair<std::string, std::string>> read_all(const byte_reader& file) {
  if (file.size() < footer_size)
    file.fail("file of " + std::to_string(file.size()) + " bytes is smaller than the 48-byte table footer");
  byte_reader footer = file;
  footer.seek(file.size() - footer_size);
  byte_reader handles = footer.sub(footer_size - 8, "footer handles");
  const std::uint64_t magic = footer.u64("table magic");
  if (magic != table_magic) footer.fail("bad table magic (not a LevelDB/TensorFlow SSTable)");
  read_handle(handles);  // metaindex: TensorFlow writes no filters or stats we need
  const block_handle index_handle = read_handle(handles);

  std::uint64_t budget = 16 * static_cast<std::uint64_t>(file.size()) + (std::uint64_t{1} << 20);
  std::vector<std::pair<std::string, std::string>> index;
  read_block_entries(block_contents(file, index_handle, "index"), index, budget);
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& kv : index) {
    byte_reader v(reinterpret_cast<const std::uint8_t*>(kv.second.data()), kv.second.size(), file.source(),
                  index_handle.offset);
    read_block_entries(block_contents(file, read_handle(v), "data"), entries, budget);
  }
  for (std::size_t i = 1; i < entries.size(); ++i)
    if (!(entries[i - 1].first < entries[i].first))
      file.fail("keys out of order: '" + entries[i - 1].first + "' before '" + entries[i].first + "'");
  return entries;
}

}  // namespace sstable
}  // namespace facenet::io
