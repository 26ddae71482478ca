#include "disk_image.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <molt/sdk/error.hpp>

#include "ata.hpp"

namespace molt::ide {

namespace {

std::uint64_t image_bytes(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw sdk::Error("disk image " + path + ": " + std::strerror(errno));
  if (S_ISREG(st.st_mode)) return static_cast<std::uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    std::uint64_t bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &bytes) != 0)
      throw sdk::Error("disk image " + path +
                       ": cannot read the block device's size: " + std::strerror(errno));
    return bytes;
  }
  throw sdk::Error("disk image " + path +
                   " is neither a regular file nor a block device; name a raw image file");
}

}  // namespace

DiskImage::DiskImage(const std::string& path, bool read_only) : path_(path), read_only_(read_only) {
  if (path.empty()) throw sdk::Error("a disk needs an image: set the image path property");
  fd_ = ::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    std::string hint = err == ENOENT ? "; create it first (e.g. truncate -s 16M " + path + ")"
                       : err == EACCES || err == EROFS ? "; check its permissions, or set read-only"
                                                       : "";
    throw sdk::Error("cannot open disk image " + path +
                     (read_only ? " for reading: " : " for reading and writing: ") + std::strerror(err) +
                     hint);
  }
  check_image();
}

DiskImage::DiskImage(int fd, const std::string& path, bool read_only)
    : path_(path), read_only_(read_only), fd_(fd) {
  const int flags = ::fcntl(fd_, F_GETFL);
  const int mode = flags & O_ACCMODE;
  std::string refusal;
  if (flags < 0) {
    refusal = std::string("is not open: ") + std::strerror(errno);
  } else if (mode == O_WRONLY) {
    refusal = "is open write-only, and a drive must read its image";
  } else if (mode == O_RDONLY && !read_only) {
    refusal = "is open read-only, but the drive is writable; set the drive read-only, or hand over an image "
              "opened for reading and writing";
  }
  if (!refusal.empty()) {
    if (fd_ >= 0) ::close(fd_);
    throw sdk::Error("the handed-over disk image " + path + " " + refusal);
  }
  check_image();
}

void DiskImage::check_image() {
  try {
    const std::uint64_t bytes = image_bytes(fd_, path_);
    if (bytes == 0) throw sdk::Error("disk image " + path_ + " is empty; give it a size (truncate -s 16M)");
    if (bytes % kSectorSize != 0)
      throw sdk::Error("disk image " + path_ + " is " + std::to_string(bytes) +
                       " bytes, not a whole number of 512-byte sectors; pad it (truncate -s %512 " + path_ +
                       ")");
    sectors_ = bytes / kSectorSize;
    // One read proves the image is readable now, not at the guest's first access.
    std::uint8_t probe[kSectorSize];
    if (::pread(fd_, probe, sizeof(probe), 0) != static_cast<ssize_t>(sizeof(probe)))
      throw sdk::Error("cannot read disk image " + path_ + ": " + std::strerror(errno));
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

DiskImage::~DiskImage() {
  if (fd_ >= 0) ::close(fd_);
}

bool DiskImage::read(std::uint64_t lba, std::span<std::uint8_t> out) {
  std::size_t done = 0;
  while (done < out.size()) {
    const ssize_t n =
        ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(lba * kSectorSize + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool DiskImage::write(std::uint64_t lba, std::span<const std::uint8_t> in) {
  if (read_only_) return false;
  std::size_t done = 0;
  while (done < in.size()) {
    const ssize_t n =
        ::pwrite(fd_, in.data() + done, in.size() - done, static_cast<off_t>(lba * kSectorSize + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

bool DiskImage::flush() {
  if (read_only_) return true;
  return ::fdatasync(fd_) == 0;
}

}  // namespace molt::ide
