// A raw disk image file: whole sectors read and written with pread/pwrite.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace molt::ide {

class DiskImage {
 public:
  // Opens `path` (O_RDONLY when read_only). Throws sdk::Error naming the file
  // when it is missing, unreadable, not a regular file or block device, empty,
  // or not a whole number of 512-byte sectors.
  DiskImage(const std::string& path, bool read_only);
  // Takes over `fd` (handed over by the old molt in a cpr-transfer), an image
  // opened from `path` once: the path is only for messages, and need not name
  // the file any more. Checks as above, and that the fd's access mode allows
  // what the drive does (reading; writing unless read_only). Closes the fd
  // when it throws.
  DiskImage(int fd, const std::string& path, bool read_only);
  ~DiskImage();
  DiskImage(const DiskImage&) = delete;
  DiskImage& operator=(const DiskImage&) = delete;

  const std::string& path() const { return path_; }
  bool read_only() const { return read_only_; }
  std::uint64_t sectors() const { return sectors_; }
  // The open image, for a cpr-transfer handover; stays this object's.
  int fd() const { return fd_; }

  // Whole sectors; `out.size()` and `in.size()` are multiples of 512 and the
  // range lies inside the disk (callers check). False on an I/O error.
  bool read(std::uint64_t lba, std::span<std::uint8_t> out);
  bool write(std::uint64_t lba, std::span<const std::uint8_t> in);
  // fdatasync: what was written reaches stable storage.
  bool flush();

 private:
  // Size and readability checks shared by both constructors; closes fd_ when it throws.
  void check_image();

  std::string path_;
  bool read_only_;
  int fd_ = -1;
  std::uint64_t sectors_ = 0;
};

}  // namespace molt::ide
