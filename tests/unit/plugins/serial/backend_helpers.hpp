// Helpers of the backend tests: a temporary directory, file contents, a UNIX
// socket client, the fds a device watches, and reading what a socket got.
#pragma once

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "serial_fixture.hpp"

namespace molt::serial::test {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "molt-serial-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

inline int connect_unix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The fds the device watches now, in [0, 1024).
inline std::vector<int> watched_fds(const FakeMachine& machine) {
  std::vector<int> fds;
  for (int fd = 0; fd < 1024; ++fd)
    if (machine.watched_events(fd) != 0) fds.push_back(fd);
  return fds;
}

inline std::string recv_some(int fd, std::size_t want) {
  std::string text;
  char buffer[256];
  for (int i = 0; i < 100 && text.size() < want; ++i) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n > 0) text.append(buffer, static_cast<std::size_t>(n));
    if (n <= 0) ::usleep(1000);
  }
  return text;
}

}  // namespace molt::serial::test
