#include <molt/sdk/handover.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

namespace molt::sdk {

bool names_open_file(int fd, const std::string& path) {
  struct stat open_file {};
  struct stat named {};
  return ::fstat(fd, &open_file) == 0 && ::stat(path.c_str(), &named) == 0 && open_file.st_dev == named.st_dev &&
         open_file.st_ino == named.st_ino;
}

int take_handed_over_file(DeviceContext& ctx, const std::string& name, const std::string& path) {
  const int fd = ctx.take_handed_over_fd(name);
  if (fd < 0) return -1;
  if (names_open_file(fd, path)) {
    ctx.log().info("{}: writing to the file the previous molt handed over ({})", ctx.id(), path);
    return fd;
  }
  ::close(fd);
  ctx.log().info("{}: the path property names {}, not the file the previous molt handed over as '{}'; "
                 "opening {} afresh",
                 ctx.id(), path, name, path);
  return -1;
}

}  // namespace molt::sdk
