// A serial port on a FakeMachine, its backend a pair of pipes the test holds
// the other ends of: feed() types input, take_output() reads what was sent.
#pragma once

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include <molt/sdk/testing/fake_bus.hpp>

#include "serial_device.hpp"
#include "serial_plugin.hpp"
#include "uart_state.hpp"

namespace molt::serial::test {

using sdk::testing::FakeMachine;

inline const sdk::DeviceType& serial_type() {
  return describe_serial_plugin()->device_types.at(0);
}

// The properties the core would pass: declared defaults, then overrides.
inline sdk::Properties serial_properties(const std::map<std::string, sdk::PropertyValue>& overrides = {}) {
  sdk::Properties props;
  for (const sdk::PropertySpec& spec : serial_type().properties) props.set(spec.name, *spec.default_value);
  for (const auto& [name, value] : overrides) props.set(name, value);
  return props;
}

struct Pipe {
  int read_end = -1;
  int write_end = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    read_end = fds[0];
    write_end = fds[1];
  }
  ~Pipe() {
    close_read();
    close_write();
  }
  void close_read() {
    if (read_end >= 0) ::close(read_end);
    read_end = -1;
  }
  void close_write() {
    if (write_end >= 0) ::close(write_end);
    write_end = -1;
  }
  int available() const {
    int n = 0;
    ::ioctl(read_end, FIONREAD, &n);
    return n;
  }
};

class SerialTest : public ::testing::Test {
 protected:
  static constexpr std::uint16_t kBase = 0x3f8;

  // A port on pipes (no backend property involved).
  void make_piped(const std::map<std::string, sdk::PropertyValue>& overrides = {}) {
    auto& ctx = machine_.add_context("com1", serial_properties(overrides));
    device_ = std::make_unique<SerialDevice>(ctx, [this](sdk::DeviceContext& c) {
      return make_stdio_backend(c, input_.read_end, output_.write_end);
    });
    device_->realize();
    device_->reset();
  }
  // A port whose backend its properties choose.
  void make_from_properties(const std::map<std::string, sdk::PropertyValue>& overrides) {
    auto& ctx = machine_.add_context("com1", serial_properties(overrides));
    device_ = std::make_unique<SerialDevice>(ctx);
    device_->realize();
    device_->reset();
  }

  std::uint8_t in(unsigned reg) { return static_cast<std::uint8_t>(machine_.bus().io_read(kBase + reg, 1)); }
  void out(unsigned reg, std::uint8_t value) { machine_.bus().io_write(kBase + reg, 1, value); }
  sdk::testing::FakeIrqLine& irq() { return machine_.irq(4); }
  const UartState& state() const { return device_->uart().state(); }

  // Writes bytes into the input pipe and lets the event loop deliver them.
  void feed(const std::string& bytes) {
    ASSERT_EQ(::write(input_.write_end, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    machine_.fire_fd(input_.read_end, EPOLLIN);
  }
  std::string take_output() {
    std::string text;
    char buffer[4096];
    while (output_.available() > 0) {
      const ssize_t n = ::read(output_.read_end, buffer, sizeof buffer);
      if (n <= 0) break;
      text.append(buffer, static_cast<std::size_t>(n));
    }
    return text;
  }
  // Reads RBR until DR clears (at most 64 characters).
  std::string read_all_received() {
    std::string text;
    for (int i = 0; i < 64 && (in(kRegLsr)&kLsrDataReady); ++i)
      text.push_back(static_cast<char>(in(kRegData)));
    return text;
  }
  void enable_fifo(std::uint8_t trigger_bits = 0) {
    out(kRegIirFcr, static_cast<std::uint8_t>(kFcrEnable | trigger_bits));
  }

  FakeMachine machine_;
  Pipe input_;
  Pipe output_;
  std::unique_ptr<SerialDevice> device_;
};

}  // namespace molt::serial::test
