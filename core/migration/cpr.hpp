// cpr-transfer's second channel: the running source hands its RAM memfds to
// a new molt on the same host over a UNIX socket (SCM_RIGHTS), before the
// guest pauses. The new molt builds its VM around them and answers whether
// its machine matches; only then does the main channel carry the state.
//
//   source -> new:  u32 length | JSON {"blocks": [{"name","size"}],
//                   "device_fds": [{"device","name"}], "fingerprint": {...}}
//                   with one fd per block, then one per device fd, attached
//                   (SCM_RIGHTS) in list order
//   new -> source:  u32 length | JSON {"accept": true} or {"accept": false,
//                   "differences": [...]} or {"accept": false, "error": "..."}
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include <molt/sdk/device.hpp>

#include "core/kvm/kvm.hpp"
#include "core/migration/channel.hpp"

namespace molt::core::machine {
class Machine;
}

namespace molt::core::migration {

struct HandedBlock {
  std::string name;
  std::uint64_t size = 0;
  kvm::Fd fd;
};

// A device backend's fd (Device::handover_fds): the device's id, the name the
// device gave it, and the fd (the source's duplicate, or the one received).
struct HandedDeviceFd {
  std::string device;
  std::string name;
  kvm::Fd fd;
};

// At most this many device fds ride in one handover (and RAM blocks beside them).
inline constexpr std::size_t kMaxHandedDeviceFds = 32;
inline constexpr std::size_t kMaxHandedBlocks = 16;

struct CprHandover {
  std::vector<HandedBlock> blocks;
  std::vector<HandedDeviceFd> device_fds;
  boost::json::value fingerprint;  // the source's machine fingerprint
  kvm::Fd connection;              // to answer on
};

// New molt: listens on `uri` (unix:PATH only), accepts the source, and
// returns its blocks and fingerprint. Blocks until the source comes (or
// `give_up` is shut down). Throws sdk::Error naming what went wrong.
class CprReceiver {
 public:
  explicit CprReceiver(const ChannelUri& uri);
  CprHandover receive();
  // Makes a receive() in progress on another thread throw (a stop signal).
  void shutdown();
  // Sends the answer and closes the connection.
  static void answer(CprHandover& handover, const boost::json::object& reply);

 private:
  Listener listener_;
};

// Source: connects, sends the blocks' and the devices' fds and the
// fingerprint, and returns the new molt's reply. Throws sdk::Error (the guest
// is untouched).
boost::json::object hand_over_ram(const ChannelUri& uri, const std::vector<HandedBlock>& blocks,
                                  const std::vector<HandedDeviceFd>& device_fds,
                                  const boost::json::value& fingerprint, std::chrono::milliseconds timeout);

// What is wrong with the fds a device offers (Device::handover_fds): an
// empty, too long or repeated name, a negative fd; empty when they can go.
std::string invalid_handover(const sdk::FdHandover& offer);

// The guest runs in the new molt: tells every device so
// (Device::handover_completed), each under its lock.
void complete_handover(machine::Machine& machine, sdk::HandoverSide side);

}  // namespace molt::core::migration
