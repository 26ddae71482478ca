#include "migration_support.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include <gtest/gtest.h>

namespace molt::test {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

std::chrono::milliseconds left_until(Clock::time_point deadline) {
  return std::max(0ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
}

// A connected unix stream socket, or -1.
int connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return -1;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

int connect_unix_retrying(const std::string& path, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const int fd = connect_unix(path);
    if (fd >= 0 || Clock::now() >= deadline) return fd;
    std::this_thread::sleep_for(10ms);
  }
}

json::object device(const char* id, const char* type, json::object properties,
                    const std::map<std::string, json::object>& extra) {
  if (const auto found = extra.find(id); found != extra.end())
    for (const auto& [key, value] : found->second) properties[key] = value;
  json::object out{{"id", id}, {"type", type}};
  if (!properties.empty()) out["properties"] = std::move(properties);
  return out;
}

std::string failure_text(const std::string& what, MoltProcess& molt) {
  molt.wait_exit(0ms);  // collect what it printed so far
  return what + "\nmolt's stderr:\n" + molt.errors() + "\nconsole:\n" + molt.console();
}

}  // namespace

// ---- machine files ----

std::string write_migration_machine(const std::string& path, const GuestSpec& spec) {
  json::array devices;
  json::object com1{{"backend", spec.console_socket.empty() ? "stdio" : "unix-socket"}};
  if (!spec.console_socket.empty()) com1["path"] = spec.console_socket;
  devices.push_back(device("com1", "serial-16550a", std::move(com1), spec.properties));
  devices.push_back(device("exit", "debug-exit", {}, spec.properties));
  devices.push_back(device("host", "i440fx-host", {}, spec.properties));
  devices.push_back(device("isa", "piix3-isa", {}, spec.properties));
  if (spec.rtc) devices.push_back(device("rtc", "mc146818-rtc", {}, spec.properties));
  if (!spec.disk_image.empty())
    devices.push_back(device("ide0", "piix3-ide", {{"primary-master", spec.disk_image}}, spec.properties));
  const json::object machine{{"machine", "molt-pc"},
                             {"vcpus", spec.vcpus},
                             {"memory", {{"size", spec.memory}}},
                             {"kernel", {{"path", testguest_elf()}, {"cmdline", spec.cmdline}}},
                             {"devices", std::move(devices)}};
  std::ofstream out(path, std::ios::trunc);
  out << json::serialize(machine) << "\n";
  if (!out) throw std::runtime_error("cannot write the machine file " + path);
  return path;
}

void create_disk_image(const std::string& path, std::uint32_t sectors) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).close();
  std::filesystem::resize_file(path, std::uint64_t{sectors} * 512);
}

// ---- processes ----

std::unique_ptr<MoltProcess> start_source(const std::string& machine, const std::string& monitor,
                                          std::vector<std::string> extra_args) {
  std::vector<std::string> args{"run", machine, "--api-socket", monitor};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto molt = std::make_unique<MoltProcess>(std::move(args));
  const int fd = connect_unix_retrying(monitor, 20s);
  if (fd < 0)
    throw std::runtime_error(failure_text("the source's monitor never answered at " + monitor, *molt));
  ::close(fd);
  return molt;
}

std::unique_ptr<MoltProcess> start_destination(const std::string& machine, const std::string& monitor,
                                               const std::string& incoming_uri,
                                               std::vector<std::string> extra_args) {
  std::vector<std::string> args{"run", machine, "--api-socket", monitor, "--incoming", incoming_uri};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  auto molt = std::make_unique<MoltProcess>(std::move(args));
  const auto deadline = Clock::now() + 20s;
  std::string last;
  try {
    MonitorClient client(monitor, 20s);
    if (incoming_uri == "defer") return molt;
    while (Clock::now() < deadline) {
      last = string_at(client.call("migrate.status").as_object(), "state");
      if (last == "listening") return molt;
      std::this_thread::sleep_for(10ms);
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(
        failure_text("the destination's monitor failed: " + std::string(e.what()), *molt));
  }
  throw std::runtime_error(failure_text("the destination did not listen on " + incoming_uri +
                                            " within 20 s (migrate.status state: " + last + ")",
                                        *molt));
}

std::uint16_t free_tcp_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  if (fd < 0 || ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot bind a TCP socket on 127.0.0.1 port 0");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string short_socket_path(const std::string& tag) {
  const std::string test = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::size_t hash = std::hash<std::string>{}(test) % 1000000;
  return (std::filesystem::temp_directory_path() /
          ("molt-mig-" + std::to_string(::getpid()) + "-" + std::to_string(hash) + "-" + tag + ".sock"))
      .string();
}

// ---- the monitor ----

MonitorClient::MonitorClient(const std::string& socket, std::chrono::milliseconds timeout) : socket_(socket) {
  fd_ = connect_unix_retrying(socket, timeout);
  if (fd_ < 0) throw std::runtime_error("no monitor answers at " + socket);
}

MonitorClient::~MonitorClient() {
  if (fd_ >= 0) ::close(fd_);
}

json::value MonitorClient::next_message(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
      const std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return json::parse(line);
    }
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_until(deadline).count())) <= 0) return nullptr;
    char chunk[65536];
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) return nullptr;
    buffer_.append(chunk, static_cast<std::size_t>(n));
  }
}

json::value MonitorClient::call(const std::string& method, json::object params,
                                std::chrono::milliseconds timeout) {
  const std::int64_t id = next_id_++;
  const std::string request =
      json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}) +
      "\n";
  if (::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size()))
    throw std::runtime_error("the monitor at " + socket_ + " closed before " + method);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    json::value message = next_message(left_until(deadline));
    if (message.is_null())
      throw std::runtime_error("no reply to " + method + " from the monitor at " + socket_ + " within " +
                               std::to_string(timeout.count()) + " ms");
    json::object& reply = message.as_object();
    if (!reply.contains("id")) {
      events_.push_back(std::move(reply));
      continue;
    }
    if (const json::value* error = reply.if_contains("error")) {
      const json::object& e = error->as_object();
      throw MonitorError(std::string(e.at("message").as_string()), e.at("code").to_number<std::int64_t>());
    }
    return reply.at("result");
  }
}

std::string MonitorClient::call_error(const std::string& method, json::object params) {
  json::value result;
  try {
    result = call(method, std::move(params));
  } catch (const MonitorError& e) {
    return e.what();
  }
  throw std::runtime_error(method + " was expected to fail but returned " + json::serialize(result));
}

void MonitorClient::subscribe(const std::vector<std::string>& names) {
  json::object params;
  if (!names.empty()) {
    json::array list;
    for (const std::string& n : names) list.push_back(json::string(n));
    params["events"] = std::move(list);
  }
  call("events.subscribe", std::move(params));
}

std::optional<json::object> MonitorClient::wait_event(const std::string& event,
                                                      const std::function<bool(const json::object&)>& match,
                                                      std::chrono::milliseconds timeout) {
  auto matches = [&](const json::object& n) {
    const json::value* method = n.if_contains("method");
    const json::value* params = n.if_contains("params");
    return method && method->is_string() && method->as_string() == event && params && params->is_object() &&
           (!match || match(params->as_object()));
  };
  for (const json::object& n : events_)
    if (matches(n)) return n.at("params").as_object();
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    json::value message = next_message(left_until(deadline));
    if (message.is_null()) return std::nullopt;
    events_.push_back(std::move(message.as_object()));
    if (matches(events_.back())) return events_.back().at("params").as_object();
  }
}

json::value monitor_call(const std::string& socket, const std::string& method, json::object params) {
  MonitorClient client(socket);
  return client.call(method, std::move(params));
}

std::string vm_state(MonitorClient& monitor) {
  return string_at(monitor.call("vm.status").as_object(), "state");
}

// ---- migrate.status ----

bool is_final_migration_state(std::string_view state) {
  return state == "completed" || state == "failed" || state == "cancelled" || state == "none";
}

json::object wait_migration_final(MonitorClient& monitor, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  json::object status;
  while (Clock::now() < deadline) {
    status = monitor.call("migrate.status").as_object();
    if (is_final_migration_state(string_at(status, "state"))) return status;
    std::this_thread::sleep_for(10ms);
  }
  throw std::runtime_error("the migration did not end within " + std::to_string(timeout.count()) +
                           " ms; last migrate.status: " + json::serialize(status));
}

json::object wait_migration_state(MonitorClient& monitor, std::string_view state,
                                  std::chrono::milliseconds timeout,
                                  const std::function<bool(const json::object&)>& ready) {
  const auto deadline = Clock::now() + timeout;
  json::object status;
  while (Clock::now() < deadline) {
    status = monitor.call("migrate.status").as_object();
    const std::string now = string_at(status, "state");
    if (now == state && (!ready || ready(status))) return status;
    if (now != state && is_final_migration_state(now) && now != "none")
      throw std::runtime_error("the migration ended (" + now + ") before reaching " + std::string(state) +
                               ": " + json::serialize(status));
    std::this_thread::sleep_for(10ms);
  }
  throw std::runtime_error("the migration did not reach " + std::string(state) + " within " +
                           std::to_string(timeout.count()) +
                           " ms; last migrate.status: " + json::serialize(status));
}

std::string string_at(const json::object& object, std::string_view key) {
  const json::value* v = object.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

std::optional<std::uint64_t> number_at(const json::object& object,
                                       std::initializer_list<std::string_view> path) {
  const json::object* at = &object;
  const json::value* v = nullptr;
  for (std::string_view key : path) {
    if (!at) return std::nullopt;
    v = at->if_contains(key);
    if (!v) return std::nullopt;
    at = v->if_object();
  }
  if (v && v->is_uint64()) return v->as_uint64();
  if (v && v->is_int64() && v->as_int64() >= 0) return static_cast<std::uint64_t>(v->as_int64());
  return std::nullopt;
}

// ---- the console ----

ConsoleSocket::ConsoleSocket(const std::string& path, std::chrono::milliseconds timeout) {
  fd_ = connect_unix_retrying(path, timeout);
}

ConsoleSocket::~ConsoleSocket() {
  if (fd_ >= 0) ::close(fd_);
}

bool ConsoleSocket::type(const std::string& text) {
  return fd_ >= 0 && ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

std::optional<std::string> ConsoleSocket::wait_for_line(const std::string& pattern,
                                                        std::chrono::milliseconds timeout) {
  const std::regex re(pattern);
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    for (std::size_t nl; (nl = text_.find('\n', scanned_)) != std::string::npos;) {
      std::string line = text_.substr(scanned_, nl - scanned_);
      scanned_ = nl + 1;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (std::regex_search(line, re)) return line;
    }
    if (fd_ < 0 || Clock::now() >= deadline) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_until(deadline).count())) <= 0) continue;
    char buffer[65536];
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n <= 0) return std::nullopt;
    text_.append(buffer, static_cast<std::size_t>(n));
  }
}

void ConsoleSocket::pump(std::chrono::milliseconds duration) {
  const auto deadline = Clock::now() + duration;
  while (fd_ >= 0 && Clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left_until(deadline).count())) <= 0) continue;
    char buffer[65536];
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n <= 0) return;
    text_.append(buffer, static_cast<std::size_t>(n));
  }
}

bool wait_for_log(MoltProcess& molt, const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (molt.errors().find(text) == std::string::npos) {
    if (Clock::now() >= deadline || molt.wait_exit(std::chrono::milliseconds(10))) return false;
  }
  return true;
}

// ---- the guest's lines ----

namespace {

// key=value pairs of a space-separated line.
std::map<std::string, std::string> fields_of(const std::string& line) {
  std::map<std::string, std::string> out;
  std::size_t pos = 0;
  while (pos < line.size()) {
    std::size_t end = line.find(' ', pos);
    if (end == std::string::npos) end = line.size();
    const std::string word = line.substr(pos, end - pos);
    if (const std::size_t eq = word.find('='); eq != std::string::npos)
      out[word.substr(0, eq)] = word.substr(eq + 1);
    else
      out[word] = "";
    pos = end + 1;
  }
  return out;
}

bool number(const std::map<std::string, std::string>& f, const char* key, std::uint64_t& out) {
  const auto it = f.find(key);
  if (it == f.end() || it->second.empty() || it->second.find_first_not_of("0123456789") != std::string::npos)
    return false;
  out = std::stoull(it->second);
  return true;
}

}  // namespace

std::optional<SoakRound> parse_soak_round(const std::string& line) {
  if (line.rfind("@soak round=", 0) != 0) return std::nullopt;
  const auto f = fields_of(line);
  SoakRound r;
  r.line = line;
  const bool numbers =
      number(f, "round", r.round) && number(f, "mib", r.mib) && number(f, "errors", r.errors) &&
      number(f, "sector", r.sector) && number(f, "aps", r.aps) && number(f, "ap_rounds", r.ap_rounds) &&
      number(f, "ap_errors", r.ap_errors) && number(f, "disk_errors", r.disk_errors) && number(f, "us", r.us);
  const auto disk = f.find("disk");
  const auto rtc = f.find("rtc");
  if (!numbers || disk == f.end() || rtc == f.end()) return std::nullopt;
  r.disk_ok = disk->second == "ok";
  r.rtc = rtc->second;
  return r;
}

std::optional<MemtestRound> parse_memtest_round(const std::string& line) {
  if (line.rfind("@memtest round=", 0) != 0) return std::nullopt;
  const auto f = fields_of(line);
  MemtestRound r;
  r.line = line;
  if (!number(f, "round", r.round) || !number(f, "mib", r.mib) || !number(f, "errors", r.errors))
    return std::nullopt;
  r.ok = f.contains("ok") && !f.contains("fail");
  return r;
}

std::optional<double> rtc_offset_seconds(const std::string& rtc) {
  std::tm tm{};
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (std::sscanf(rtc.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &year, &month, &day, &hour, &minute, &second) != 6)
    return std::nullopt;
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const std::time_t guest = ::timegm(&tm);
  return std::difftime(guest, std::time(nullptr));
}

namespace {

std::uint32_t crc32_ieee(const std::uint8_t* p, std::size_t n) {
  std::uint32_t crc = 0xffffffffu;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

std::uint32_t soak_word(std::uint32_t round, std::uint32_t sector, unsigned i) {
  std::uint32_t x = round * 0x9e3779b1u ^ sector * 0x85ebca77u ^ i * 0xc2b2ae3du;
  x ^= x >> 16;
  x *= 0x7feb352du;
  return x ^ (x >> 15);
}

std::uint32_t word_at(const std::uint8_t* sector, unsigned index) {
  std::uint32_t w;
  std::memcpy(&w, sector + 4 * index, 4);  // the host is little-endian, like the guest
  return w;
}

}  // namespace

std::optional<std::uint32_t> soak_sector_round(const std::uint8_t* sector, std::uint32_t lba) {
  if (std::memcmp(sector, "SOAK", 4) != 0 || word_at(sector, 2) != lba) return std::nullopt;
  if (word_at(sector, 3) != crc32_ieee(sector + 16, 512 - 16)) return std::nullopt;
  const std::uint32_t round = word_at(sector, 1);
  for (unsigned i = 4; i < 128; ++i)
    if (word_at(sector, i) != soak_word(round, lba, i)) return std::nullopt;
  return round;
}

std::vector<std::string> check_soak_image(const std::string& path, std::uint32_t soak_sectors,
                                          std::uint64_t last_round) {
  std::vector<std::string> problems;
  std::ifstream in(path, std::ios::binary);
  const std::vector<std::uint8_t> image((std::istreambuf_iterator<char>(in)),
                                        std::istreambuf_iterator<char>());
  if (image.size() < std::size_t{soak_sectors} * 512 || image.size() % 512 != 0)
    return {path + " holds " + std::to_string(image.size()) + " bytes, too few for " +
            std::to_string(soak_sectors) + " soak sectors"};
  const std::uint32_t sectors = static_cast<std::uint32_t>(image.size() / 512);
  for (std::uint32_t lba = 0; lba < sectors; ++lba) {
    const std::uint8_t* sector = image.data() + std::size_t{lba} * 512;
    const bool zero = std::all_of(sector, sector + 512, [](std::uint8_t b) { return b == 0; });
    if (zero) continue;
    if (lba >= soak_sectors) {
      problems.push_back("sector " + std::to_string(lba) + " lies beyond the soak sectors but was written");
      continue;
    }
    const auto round = soak_sector_round(sector, lba);
    if (!round)
      problems.push_back("sector " + std::to_string(lba) + " is not a valid soak sector");
    else if (*round % soak_sectors != lba)
      problems.push_back("sector " + std::to_string(lba) + " holds round " + std::to_string(*round) +
                         ", which belongs to sector " + std::to_string(*round % soak_sectors));
  }
  const std::uint32_t newest = static_cast<std::uint32_t>(last_round % soak_sectors);
  const auto round = soak_sector_round(image.data() + std::size_t{newest} * 512, newest);
  if (!round || *round < static_cast<std::uint32_t>(last_round))
    problems.push_back("sector " + std::to_string(newest) + " should hold round " +
                       std::to_string(last_round) + " or later; it holds " +
                       (round ? "round " + std::to_string(*round) : "no valid sector"));
  return problems;
}

}  // namespace molt::test
