// Durable, atomic file replacement for everything the library writes (weights files, training
// checkpoints): temp file + fsync + rename + directory fsync, so a crash, a kill -9 or a full disk
// never leaves a torn file in place of the previous one.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>

#include "facenet/core/error.hpp"

namespace facenet::io {

namespace detail {

inline std::string errno_text() { return std::strerror(errno); }

// Owns a POSIX descriptor so every early throw closes it.
class fd_guard {
 public:
  explicit fd_guard(int fd) : fd_(fd) {}
  ~fd_guard() {
    if (fd_ >= 0) ::close(fd_);
  }
  fd_guard(const fd_guard&) = delete;
  fd_guard& operator=(const fd_guard&) = delete;
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

inline void write_all(int fd, const std::string& bytes, const std::string& path) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    FACENET_CHECK(n > 0, io_error, "cannot write '" + path + "' (" + std::to_string(done) + " of " +
                                       std::to_string(bytes.size()) + " bytes written): " + errno_text());
    done += static_cast<std::size_t>(n);
  }
}

// Makes the rename itself durable (best effort: some filesystems refuse fsync on directories).
inline void sync_directory(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace detail

// Replaces `path` with `bytes` atomically: readers see the old file or the new one, never a mix.
// On any failure the temp file is removed, `path` is untouched and io_error names the cause.
inline void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  detail::fd_guard fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  FACENET_CHECK(fd.get() >= 0, io_error, "cannot create '" + tmp + "': " + detail::errno_text());
  try {
    detail::write_all(fd.get(), bytes, tmp);
    FACENET_CHECK(::fsync(fd.get()) == 0, io_error, "cannot flush '" + tmp + "' to disk: " + detail::errno_text());
    FACENET_CHECK(::close(fd.release()) == 0, io_error, "cannot close '" + tmp + "': " + detail::errno_text());
    FACENET_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, io_error,
                  "cannot rename '" + tmp + "' to '" + path + "': " + detail::errno_text());
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  detail::sync_directory(std::filesystem::path(path).parent_path().string());
}

}  // namespace facenet::io
