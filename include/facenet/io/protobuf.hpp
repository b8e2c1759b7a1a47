// Minimal, bounds-checked readers shared by the TensorFlow and Torch7 loaders: a byte cursor that
// names the file and offset in every error, and the protobuf wire format (varint, fixed64,
// length-delimited, fixed32) written from the public encoding spec. Nothing is trusted: every length
// is checked against the bytes that remain before anything is allocated or copied.
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "facenet/core/error.hpp"

namespace facenet::io {

inline std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  FACENET_CHECK(in, io_error, "cannot open '" + path + "'");
  const std::streamoff size = in.tellg();
  FACENET_CHECK(size >= 0, io_error, "cannot determine the size of '" + path + "'");
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
  in.seekg(0);
  if (size > 0) in.read(reinterpret_cast<char*>(bytes.data()), size);
  FACENET_CHECK(in.good() || in.eof(), io_error, "cannot read '" + path + "'");
  return bytes;
}

// A read-only cursor over [data, data+size). `base` is the offset of data[0] in the file so nested
// readers still report file offsets.
class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size, std::string source, std::uint64_t base = 0)
      : data_(data), size_(size), source_(std::make_shared<const std::string>(std::move(source))), base_(base) {}

  std::size_t position() const noexcept { return pos_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t remaining() const noexcept { return size_ - pos_; }
  bool at_end() const noexcept { return pos_ == size_; }
  std::uint64_t file_offset() const noexcept { return base_ + pos_; }
  const std::string& source() const noexcept { return *source_; }
  void seek(std::size_t pos) {
    if (pos > size_) fail("seek to " + std::to_string(pos) + " beyond the end (" + std::to_string(size_) + " bytes)");
    pos_ = pos;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw format_error(*source_ + " at offset " + std::to_string(file_offset()) + ": " + what);
  }
  void require(std::uint64_t n, const char* what) const {
    if (n > remaining())
      fail(std::string("truncated ") + what + ": needs " + std::to_string(n) + " bytes, " +
           std::to_string(remaining()) + " remain");
  }

  const std::uint8_t* bytes(std::uint64_t n, const char* what = "data") {
    require(n, what);
    const std::uint8_t* p = data_ + pos_;
    pos_ += static_cast<std::size_t>(n);
    return p;
  }
  std::string string(std::uint64_t n, const char* what = "string") {
    const std::uint8_t* p = bytes(n, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  // A reader over the next n bytes, advancing this one past them.
  byte_reader sub(std::uint64_t n, const char* what = "nested data") {
    byte_reader r = *this;  // shares the source name instead of copying it per field
    r.data_ = bytes(n, what);
    r.size_ = static_cast<std::size_t>(n);
    r.pos_ = 0;
    r.base_ = file_offset() - n;
    return r;
  }

  template <class U>
  U little_endian(const char* what) {
    static_assert(std::is_unsigned<U>::value, "unsigned only");
    const std::uint8_t* p = bytes(sizeof(U), what);
    U v = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) v |= static_cast<U>(static_cast<U>(p[i]) << (8 * i));
    return v;
  }
  std::uint8_t u8(const char* what = "byte") { return little_endian<std::uint8_t>(what); }
  std::uint32_t u32(const char* what = "uint32") { return little_endian<std::uint32_t>(what); }
  std::uint64_t u64(const char* what = "uint64") { return little_endian<std::uint64_t>(what); }
  std::int32_t i32(const char* what = "int32") { return static_cast<std::int32_t>(u32(what)); }
  std::int64_t i64(const char* what = "int64") { return static_cast<std::int64_t>(u64(what)); }
  double f64(const char* what = "double") {
    const std::uint64_t bits = u64(what);
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
  }

  // Base-128 varint, at most 10 bytes (64 bits).
  std::uint64_t varint(const char* what = "varint") {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      require(1, what);
      const std::uint8_t b = data_[pos_++];
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail(std::string("malformed ") + what + " (longer than 10 bytes)");
  }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  std::shared_ptr<const std::string> source_;
  std::uint64_t base_;
};

namespace pb {

enum class wire_type : std::uint8_t { varint = 0, fixed64 = 1, length_delimited = 2, fixed32 = 5 };

// One decoded field: scalars in `value`, length-delimited payloads as a sub-reader in `payload`.
struct field {
  std::uint32_t number = 0;
  wire_type type = wire_type::varint;
  std::uint64_t value = 0;
  byte_reader payload{nullptr, 0, ""};
  std::uint64_t offset = 0;  // file offset of the tag, for messages
};

// Protobuf nests by recursion in the callers; messages deeper than this are rejected (no real
// TensorFlow file comes close).
inline constexpr int max_depth = 64;

// Iterates the fields of one message. `depth` is carried into nested messages via nested().
class message_reader {
 public:
  message_reader(byte_reader r, int depth = 0) : r_(std::move(r)), depth_(depth) {
    if (depth_ > max_depth) r_.fail("protobuf messages nested deeper than " + std::to_string(max_depth));
  }

  bool next(field& f) {
    if (r_.at_end()) return false;
    f.offset = r_.file_offset();
    const std::uint64_t tag = r_.varint("protobuf tag");
    const std::uint64_t number = tag >> 3;
    if (number == 0 || number > 0x1fffffff) r_.fail("invalid protobuf field number " + std::to_string(number));
    f.number = static_cast<std::uint32_t>(number);
    switch (tag & 7) {
      case 0: f.type = wire_type::varint; f.value = r_.varint("protobuf varint"); break;
      case 1: f.type = wire_type::fixed64; f.value = r_.u64("protobuf fixed64"); break;
      case 2: {
        f.type = wire_type::length_delimited;
        const std::uint64_t len = r_.varint("protobuf length");
        f.payload = r_.sub(len, "protobuf length-delimited field");
        break;
      }
      case 5: f.type = wire_type::fixed32; f.value = r_.u32("protobuf fixed32"); break;
      default:
        r_.fail("unsupported protobuf wire type " + std::to_string(tag & 7) + " for field " + std::to_string(number));
    }
    return true;
  }

  message_reader nested(const field& f) const {
    expect(f, wire_type::length_delimited, "a message");
    return message_reader(f.payload, depth_ + 1);
  }
  std::string string(const field& f) const {
    expect(f, wire_type::length_delimited, "a string");
    byte_reader p = f.payload;
    return p.string(p.size());
  }
  std::uint64_t varint(const field& f) const {
    expect(f, wire_type::varint, "a varint");
    return f.value;
  }
  std::uint32_t fixed32(const field& f) const {
    expect(f, wire_type::fixed32, "a fixed32");
    return static_cast<std::uint32_t>(f.value);
  }

  // Repeated scalars arrive packed (one length-delimited run) or one per field; accept both.
  // `Fixed` is 4 or 8 for fixed-width elements, 0 for varints. Appends raw bit patterns.
  template <int Fixed>
  void repeated(const field& f, std::vector<std::uint64_t>& out, std::uint64_t limit) const {
    auto push = [&](std::uint64_t v) {
      if (out.size() >= limit) fail_at(f, "more repeated values than the tensor holds (" + std::to_string(limit) + ")");
      out.push_back(v);
    };
    if (f.type == wire_type::length_delimited) {
      byte_reader p = f.payload;
      while (!p.at_end()) push(Fixed == 4 ? p.u32("packed fixed32") : Fixed == 8 ? p.u64("packed fixed64") : p.varint("packed varint"));
      return;
    }
    expect(f, Fixed == 4 ? wire_type::fixed32 : Fixed == 8 ? wire_type::fixed64 : wire_type::varint, "a repeated scalar");
    push(f.value);
  }

  [[noreturn]] void fail_at(const field& f, const std::string& what) const {
    throw format_error(r_.source() + " at offset " + std::to_string(f.offset) + ": protobuf field " +
                       std::to_string(f.number) + ": " + what);
  }
  const std::string& source() const noexcept { return r_.source(); }

 private:
  void expect(const field& f, wire_type t, const char* what) const {
    if (f.type != t)
      fail_at(f, std::string("expected ") + what + ", found wire type " + std::to_string(static_cast<int>(f.type)));
  }
  byte_reader r_;
  int depth_;
};

}  // namespace pb
}  // namespace facenet::io
