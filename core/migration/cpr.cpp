#include "core/migration/cpr.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>

#include "core/machine/machine.hpp"

namespace molt::core::migration {

namespace {

namespace json = boost::json;

constexpr std::uint32_t kMaxMessage = 1u << 20;
constexpr std::size_t kMaxFdName = 64;
constexpr std::size_t kMaxDeviceId = 128;
// Every fd one handover may carry; recvmsg's control buffer holds this many.
constexpr std::size_t kMaxFds = kMaxHandedBlocks + kMaxHandedDeviceFds;

void require_unix(const ChannelUri& uri) {
  if (uri.transport != Transport::Unix)
    throw sdk::Error(fmt::format("cpr channel {}: it must be a unix:PATH socket, since file descriptors only "
                                 "travel over UNIX sockets",
                                 uri.text));
}

// Sends length + JSON, the fds riding on the first byte.
void send_message(int socket, const std::string& text, const std::vector<int>& fds) {
  const auto length = static_cast<std::uint32_t>(text.size());
  std::string frame(reinterpret_cast<const char*>(&length), 4);
  frame += text;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * std::max<std::size_t>(fds.size(), 1)));
  std::size_t sent = 0;
  while (sent < frame.size()) {
    iovec iov{frame.data() + sent, frame.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (sent == 0 && !fds.empty()) {
      msg.msg_control = control.data();
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
      cmsg->cmsg_level = SOL_SOCKET;
      cmsg->cmsg_type = SCM_RIGHTS;
      cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
    }
    const ssize_t n = ::sendmsg(socket, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw sdk::Error(fmt::format("cpr channel: sending failed: {}", std::strerror(errno)));
    }
    sent += static_cast<std::size_t>(n);
  }
}

// Receives length + JSON and any fds that came with it.
std::string receive_message(int socket, std::vector<kvm::Fd>& fds) {
  std::string data;
  std::uint32_t length = 0;
  bool have_length = false;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds));
  for (;;) {
    const std::size_t want = have_length ? 4 + length : 4;
    if (data.size() >= want) {
      if (have_length) break;
      std::memcpy(&length, data.data(), 4);
      if (length > kMaxMessage) throw sdk::Error(fmt::format("cpr channel: a {}-byte message is too large", length));
      have_length = true;
      continue;
    }
    char buffer[4096];
    iovec iov{buffer, std::min(sizeof buffer, want - data.size())};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = ::recvmsg(socket, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw sdk::Error(fmt::format("cpr channel: receiving failed: {}", std::strerror(errno)));
    }
    if (n == 0) throw sdk::Error("cpr channel: the other molt closed the connection");
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (std::size_t i = 0; i < count; ++i) {
        int fd = -1;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds.emplace_back(fd);
      }
    }
    if (msg.msg_flags & MSG_CTRUNC) throw sdk::Error("cpr channel: more file descriptors came than expected");
    data.append(buffer, static_cast<std::size_t>(n));
  }
  return data.substr(4);
}

// The list of device fds in the source's message, checked entry by entry.
std::vector<std::pair<std::string, std::string>> parse_device_fds(const json::object& root) {
  std::vector<std::pair<std::string, std::string>> out;
  const json::value* list = root.if_contains("device_fds");
  if (!list) return out;
  if (!list->is_array()) throw sdk::Error("cpr channel: device_fds in the source's message is not a list");
  if (list->as_array().size() > kMaxHandedDeviceFds)
    throw sdk::Error(fmt::format("cpr channel: the source lists {} device fds; at most {} may be handed over",
                                 list->as_array().size(), kMaxHandedDeviceFds));
  for (std::size_t i = 0; i < list->as_array().size(); ++i) {
    const json::object* e = list->as_array()[i].if_object();
    const json::string* device = e && e->contains("device") ? e->at("device").if_string() : nullptr;
    const json::string* name = e && e->contains("name") ? e->at("name").if_string() : nullptr;
    if (!device || !name || device->empty() || name->empty() || device->size() > kMaxDeviceId ||
        name->size() > kMaxFdName)
      throw sdk::Error(
          fmt::format("cpr channel: device_fds[{}] needs a device id (1 to {} characters) and a "
                      "name (1 to {} characters)",
                      i, kMaxDeviceId, kMaxFdName));
    std::pair<std::string, std::string> entry{std::string(*device), std::string(*name)};
    if (std::find(out.begin(), out.end(), entry) != out.end())
      throw sdk::Error(
          fmt::format("cpr channel: device_fds[{}] repeats device {} fd '{}'", i, entry.first, entry.second));
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

CprReceiver::CprReceiver(const ChannelUri& uri) : listener_((require_unix(uri), uri)) {}

CprHandover CprReceiver::receive() {
  std::unique_ptr<Channel> channel = listener_.accept();
  CprHandover out;
  std::vector<kvm::Fd> fds;
  const json::value message = json::parse(receive_message(channel->fd(), fds));
  const json::object* root = message.if_object();
  const json::array* blocks = root && root->contains("blocks") ? root->at("blocks").if_array() : nullptr;
  if (!blocks || blocks->empty() || blocks->size() > kMaxHandedBlocks)
    throw sdk::Error("cpr channel: the source's message lists no RAM blocks");
  const std::vector<std::pair<std::string, std::string>> device_fds = parse_device_fds(*root);
  if (blocks->size() + device_fds.size() != fds.size())
    throw sdk::Error(
        fmt::format("cpr channel: {} RAM blocks and {} device fds listed but {} file descriptors came",
                    blocks->size(), device_fds.size(), fds.size()));
  for (std::size_t i = 0; i < blocks->size(); ++i) {
    const json::object* b = (*blocks)[i].if_object();
    if (!b || !b->contains("name") || !b->at("name").is_string() || !b->contains("size") ||
        !b->at("size").is_number())
      throw sdk::Error(fmt::format("cpr channel: blocks[{}] needs a name and a size", i));
    out.blocks.push_back(HandedBlock{std::string(b->at("name").as_string()), b->at("size").to_number<std::uint64_t>(),
                                     std::move(fds[i])});
  }
  for (std::size_t i = 0; i < device_fds.size(); ++i)
    out.device_fds.push_back(
        HandedDeviceFd{device_fds[i].first, device_fds[i].second, std::move(fds[blocks->size() + i])});
  out.fingerprint = root->contains("fingerprint") ? root->at("fingerprint") : json::value();
  out.connection = kvm::Fd(::dup(channel->fd()));
  return out;
}

void CprReceiver::shutdown() { listener_.shutdown(); }

void CprReceiver::answer(CprHandover& handover, const json::object& reply) {
  if (!handover.connection) return;
  send_message(handover.connection.get(), json::serialize(reply), {});
  handover.connection = kvm::Fd();
}

json::object hand_over_ram(const ChannelUri& uri, const std::vector<HandedBlock>& blocks,
                           const std::vector<HandedDeviceFd>& device_fds, const json::value& fingerprint,
                           std::chrono::milliseconds timeout) {
  require_unix(uri);
  if (blocks.size() > kMaxHandedBlocks || device_fds.size() > kMaxHandedDeviceFds)
    throw sdk::Error(
        fmt::format("cpr channel: {} RAM blocks and {} device fds; at most {} and {} can be handed over",
                    blocks.size(), device_fds.size(), kMaxHandedBlocks, kMaxHandedDeviceFds));
  std::unique_ptr<Channel> channel = connect_when_listening(uri, timeout);
  json::array block_list, device_list;
  std::vector<int> fds;
  for (const HandedBlock& b : blocks) {
    block_list.push_back(json::object{{"name", b.name}, {"size", b.size}});
    fds.push_back(b.fd.get());
  }
  for (const HandedDeviceFd& d : device_fds) {
    device_list.push_back(json::object{{"device", d.device}, {"name", d.name}});
    fds.push_back(d.fd.get());
  }
  send_message(channel->fd(),
               json::serialize(json::object{
                   {"blocks", block_list}, {"device_fds", device_list}, {"fingerprint", fingerprint}}),
               fds);
  std::vector<kvm::Fd> none;
  const json::value reply = json::parse(receive_message(channel->fd(), none));
  if (!reply.is_object()) throw sdk::Error("cpr channel: the new molt's answer is not a JSON object");
  return reply.as_object();
}

std::string invalid_handover(const sdk::FdHandover& offer) {
  if (offer.fds.size() > kMaxHandedDeviceFds)
    return fmt::format("it offers {} fds to hand over; at most {} can go", offer.fds.size(),
                       kMaxHandedDeviceFds);
  for (std::size_t i = 0; i < offer.fds.size(); ++i) {
    const sdk::HandedFd& f = offer.fds[i];
    if (f.name.empty() || f.name.size() > kMaxFdName)
      return fmt::format("fd {} it offers to hand over needs a name of 1 to {} characters", i, kMaxFdName);
    if (f.fd < 0) return fmt::format("it offers fd '{}' to hand over, but that fd is {}", f.name, f.fd);
    for (std::size_t j = 0; j < i; ++j)
      if (offer.fds[j].name == f.name)
        return fmt::format("it offers two fds named '{}' to hand over", f.name);
  }
  return {};
}

void complete_handover(machine::Machine& machine, sdk::HandoverSide side) {
  for (const auto& host : machine.devices()) {
    std::lock_guard lock(host->lock());
    host->device().handover_completed(side);
  }
}

}  // namespace molt::core::migration
