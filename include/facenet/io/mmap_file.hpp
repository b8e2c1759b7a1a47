// Read-only file contents for the weight readers: memory-mapped through POSIX mmap when available,
// otherwise read into memory. Readers decode straight from the mapping into aligned tensors, so a
// large checkpoint is never held twice.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>
#include <string>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#define FACENET_HAVE_MMAP 1
#endif

#include "facenet/core/error.hpp"
#include "facenet/io/atomic_file.hpp"  // write_file_atomically, for the writers that include this file
#include "facenet/io/binary.hpp"

namespace facenet::io {

class mapped_file {
 public:
  mapped_file() = default;
  explicit mapped_file(const std::string& path) : path_(path) {
#ifdef FACENET_HAVE_MMAP
    if (try_map()) return;
#endif
    read_all();
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;
  mapped_file(mapped_file&& o) noexcept { swap(o); }
  mapped_file& operator=(mapped_file&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }
  ~mapped_file() { release(); }

  const std::uint8_t* data() const noexcept { return mapped_ ? mapped_ : buffer_.data(); }
  std::uint64_t size() const noexcept { return size_; }
  byte_span bytes() const noexcept { return {data(), size_}; }
  const std::string& path() const noexcept { return path_; }
  bool is_mapped() const noexcept { return mapped_ != nullptr; }

  // Hands the whole pages inside `part` (bytes already decoded) back to the OS: a read-only mapping
  // rereads them from the file if touched again, so this only lowers resident memory while a large
  // file is decoded tensor by tensor.
  void drop_pages(byte_span part) const noexcept {
#ifdef FACENET_HAVE_MMAP
    if (!mapped_ || part.data < mapped_ || part.data + part.size > mapped_ + size_) return;
    const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto begin = (reinterpret_cast<std::uintptr_t>(part.data) + page - 1) / page * page;
    const auto end = (reinterpret_cast<std::uintptr_t>(part.data) + part.size) / page * page;
    if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
#else
    (void)part;
#endif
  }

 private:
#ifdef FACENET_HAVE_MMAP
  bool try_map() {
    const int fd = ::open(path_.c_str(), O_RDONLY);
    if (fd < 0) throw io_error("cannot open '" + path_ + "': " + std::strerror(errno));
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    if (ok && st.st_size > 0) {
      void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
      ok = p != MAP_FAILED;
      if (ok) {
        mapped_ = static_cast<const std::uint8_t*>(p);
        size_ = static_cast<std::uint64_t>(st.st_size);
      }
    } else {
      ok = false;  // empty or special file: the plain read path handles both
    }
    ::close(fd);
    return ok;
  }
#endif
  void read_all() {
    std::ifstream in(path_, std::ios::binary);
    FACENET_CHECK(in.good(), io_error, "cannot open '" + path_ + "'");
    buffer_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    FACENET_CHECK(!in.bad(), io_error, "error reading '" + path_ + "'");
    size_ = buffer_.size();
  }
  void release() noexcept {
#ifdef FACENET_HAVE_MMAP
    if (mapped_) ::munmap(const_cast<std::uint8_t*>(mapped_), static_cast<std::size_t>(size_));
#endif
    mapped_ = nullptr;
  }
  void swap(mapped_file& o) noexcept {
    std::swap(path_, o.path_);
    std::swap(mapped_, o.mapped_);
    std::swap(buffer_, o.buffer_);
    std::swap(size_, o.size_);
  }

  std::string path_;
  const std::uint8_t* mapped_ = nullptr;
  std::vector<std::uint8_t> buffer_;
  std::uint64_t size_ = 0;
};

}  // namespace facenet::io
