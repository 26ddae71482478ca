#include "molt_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>
#include <sstream>
#include <stdexcept>

namespace molt::test {

using Clock = std::chrono::steady_clock;

std::string molt_binary() { return MOLT_BUILD_DIR "/molt"; }
std::string testguest_elf() { return MOLT_BUILD_DIR "/guest/testguest.elf"; }
std::string source_dir() { return MOLT_SOURCE_DIR; }

bool kvm_available() {
  const int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

MoltProcess::MoltProcess(std::vector<std::string> args) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) throw std::runtime_error("pipe failed");
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int devnull = ::open("/dev/null", O_RDONLY);
    ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    std::vector<char*> argv;
    std::string binary = molt_binary();
    argv.push_back(binary.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
}

MoltProcess::~MoltProcess() {
  if (!status_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) ::close(out_fd_);
  if (err_fd_ >= 0) ::close(err_fd_);
}

bool MoltProcess::pump(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  if (out_fd_ < 0 && err_fd_ < 0) return false;
  if (::poll(fds, 2, static_cast<int>(timeout.count())) <= 0) return true;
  char buffer[65536];
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
    if (n > 0) {
      (i == 0 ? stdout_ : stderr_).append(buffer, static_cast<std::size_t>(n));
    } else {
      ::close(fds[i].fd);
      (i == 0 ? out_fd_ : err_fd_) = -1;
    }
  }
  return true;
}

std::optional<std::string> MoltProcess::wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout) {
  const std::regex re(pattern);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    // Scan complete lines not yet scanned.
    for (std::size_t nl; (nl = stdout_.find('\n', scanned_)) != std::string::npos; scanned_ = nl + 1) {
      std::string line = stdout_.substr(scanned_, nl - scanned_);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (std::regex_search(line, re)) {
        scanned_ = nl + 1;
        return line;
      }
    }
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    if (!pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now))) return std::nullopt;
  }
}

std::optional<int> MoltProcess::wait_exit(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!status_) {
    int raw = 0;
    if (::waitpid(pid_, &raw, WNOHANG) == pid_) {
      status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
      break;
    }
    const auto now = Clock::now();
    if (now >= deadline) return std::nullopt;
    if (!pump(std::min(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now),
                       std::chrono::milliseconds(20)))) {
      ::usleep(2000);
    }
  }
  while (pump(std::chrono::milliseconds(0)) && (out_fd_ >= 0 || err_fd_ >= 0)) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (::poll(fds, 2, 50) <= 0) break;
  }
  return status_;
}

void MoltProcess::signal(int signo) { ::kill(pid_, signo); }

std::vector<std::string> MoltProcess::console_lines() const {
  std::vector<std::string> lines;
  std::istringstream in(stdout_);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

std::string write_pc_machine(const std::string& path, const std::string& cmdline,
                             const std::string& extra_devices) {
  std::ofstream out(path);
  out << R"({
  "machine": "molt-pc",
  "vcpus": 1,
  "memory": { "size": "128M" },
  "kernel": { "path": ")"
      << testguest_elf() << R"(", "cmdline": ")" << cmdline << R"(" },
  "devices": [
    { "id": "com1", "type": "serial-16550a", "properties": { "backend": "stdio" } },
    { "id": "exit", "type": "debug-exit" },
    { "id": "host", "type": "i440fx-host" },
    { "id": "isa", "type": "piix3-isa" })"
      << (extra_devices.empty() ? "" : ",\n    " + extra_devices) << R"(
  ]
})";
  return path;
}

std::string test_socket_path(const std::string& prefix) {
  return (std::filesystem::temp_directory_path() /
          (prefix + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".sock"))
      .string();
}

std::unique_ptr<MoltProcess> start_memtest_with_monitor(const std::string& socket) {
  auto molt = std::make_unique<MoltProcess>(
      std::vector<std::string>{"run", source_dir() + "/machines/default.json", "--kernel", testguest_elf(),
                               "--cmdline", "memtest 16 0", "--api-socket", socket});
  EXPECT_TRUE(molt->wait_for_line("@memtest round=1 ", std::chrono::seconds(60)))
      << molt->console() << molt->errors();
  return molt;
}

std::size_t memtest_lines(const MoltProcess& p) {
  const auto lines = p.console_lines();
  return static_cast<std::size_t>(std::count_if(
      lines.begin(), lines.end(), [](const std::string& l) { return l.rfind("@memtest round=", 0) == 0; }));
}

Finished run_molt(std::vector<std::string> args, std::chrono::milliseconds timeout) {
  MoltProcess p(std::move(args));
  const auto status = p.wait_exit(timeout);
  if (!status) {
    throw std::runtime_error("molt did not exit within " + std::to_string(timeout.count()) + " ms; console:\n" +
                             p.console() + "\nstderr:\n" + p.errors());
  }
  return Finished{*status, p.console(), p.errors()};
}

MoltctlProcess::MoltctlProcess(std::vector<std::string> args) {
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) < 0 || ::pipe2(err_pipe, O_CLOEXEC) < 0) throw std::runtime_error("pipe failed");
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    std::string binary = MOLT_BUILD_DIR "/moltctl";
    std::vector<char*> argv{binary.data()};
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  fds_[0] = out_pipe[0];
  fds_[1] = err_pipe[0];
}

MoltctlProcess::MoltctlProcess(MoltctlProcess&& other) noexcept
    : out(std::move(other.out)), err(std::move(other.err)), pid_(other.pid_), status_(other.status_) {
  fds_[0] = other.fds_[0];
  fds_[1] = other.fds_[1];
  other.pid_ = -1;
  other.fds_[0] = other.fds_[1] = -1;
}

MoltctlProcess::~MoltctlProcess() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

void MoltctlProcess::signal(int signo) { ::kill(pid_, signo); }

int MoltctlProcess::finish(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (fds_[0] >= 0 || fds_[1] >= 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return -1;
    pollfd p[2] = {{fds_[0], POLLIN, 0}, {fds_[1], POLLIN, 0}};
    if (::poll(p, 2, static_cast<int>(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || !p[i].revents) continue;
      char buffer[4096];
      const ssize_t n = ::read(p[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        (i == 0 ? out : err).append(buffer, static_cast<std::size_t>(n));
      } else {
        ::close(fds_[i]);
        fds_[i] = -1;
      }
    }
  }
  int raw = 0;
  ::waitpid(pid_, &raw, 0);
  status_ = WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw);
  return *status_;
}

}  // namespace molt::test
