// Runs `molt` as a child process for KVM tests: captures the guest console
// (stdout) and molt's messages (stderr), waits for lines with deadlines, and
// reports the exit status. Every wait is bounded; a child still running when
// the object dies is killed.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace molt::test {

// Paths of the build products, from the build tree the test runs in.
std::string molt_binary();
std::string testguest_elf();
std::string source_dir();
// True when /dev/kvm can be opened; KVM tests skip (loudly) otherwise.
bool kvm_available();

class MoltProcess {
 public:
  explicit MoltProcess(std::vector<std::string> args);
  ~MoltProcess();
  MoltProcess(const MoltProcess&) = delete;
  MoltProcess& operator=(const MoltProcess&) = delete;

  // Waits until the console shows a line matching `pattern`; returns the
  // line, or nullopt on timeout or exit.
  std::optional<std::string> wait_for_line(const std::string& pattern, std::chrono::milliseconds timeout);
  // Waits for the process to exit; returns its exit status, or nullopt on
  // timeout (the process keeps running).
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  void signal(int signo);
  pid_t pid() const { return pid_; }

  const std::string& console() const { return stdout_; }
  const std::string& errors() const { return stderr_; }
  std::vector<std::string> console_lines() const;

 private:
  // Reads whatever is available within `timeout`; false when both pipes closed.
  bool pump(std::chrono::milliseconds timeout);

  pid_t pid_ = -1;
  int out_fd_ = -1, err_fd_ = -1;
  std::string stdout_, stderr_;
  std::size_t scanned_ = 0;
  std::optional<int> status_;
};

// Writes a pc machine file (i440FX host bridge and PIIX3 ISA bridge, COM1 on
// stdio, debug-exit) booting the test guest with `cmdline` to `path`, with
// `extra_devices` (JSON objects, comma-separated) appended. Returns `path`.
std::string write_pc_machine(const std::string& path, const std::string& cmdline,
                             const std::string& extra_devices = "");

// A socket path unique to the running test: temp dir, `prefix`, pid, test name.
std::string test_socket_path(const std::string& prefix);
// molt on the default machine running `memtest 16 0` (forever) with its
// monitor on `socket`, once the guest's first round has passed.
std::unique_ptr<class MoltProcess> start_memtest_with_monitor(const std::string& socket);
// The `@memtest round=` lines seen on the console so far.
std::size_t memtest_lines(const MoltProcess& p);

// Runs molt to completion (bounded by `timeout`) and returns the finished process.
struct Finished {
  int status;
  std::string console;
  std::string errors;
};
Finished run_molt(std::vector<std::string> args, std::chrono::milliseconds timeout);

// One moltctl run with its stdout and stderr captured (pipes, so stderr is
// not a terminal and migration progress comes as plain lines).
class MoltctlProcess {
 public:
  explicit MoltctlProcess(std::vector<std::string> args);
  ~MoltctlProcess();
  MoltctlProcess(const MoltctlProcess&) = delete;
  MoltctlProcess& operator=(const MoltctlProcess&) = delete;
  MoltctlProcess(MoltctlProcess&& other) noexcept;
  void signal(int signo);
  // Reads until moltctl exits; its exit status, or -1 if it ran past `timeout`.
  int finish(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::string out, err;

 private:
  pid_t pid_ = -1;
  int fds_[2] = {-1, -1};
  std::optional<int> status_;
};

}  // namespace molt::test
