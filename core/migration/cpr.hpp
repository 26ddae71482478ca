// cpr-transfer's second channel: the running source hands its RAM memfds to
// a new molt on the same host over a UNIX socket (SCM_RIGHTS), before the
// guest pauses. The new molt builds its VM around them and answers whether
// its machine matches; only then does the main channel carry the state.
//
//   source -> new:  u32 length | JSON {"blocks": [{"name","size"}], "fingerprint": {...}}
//                   with one fd per block attached (SCM_RIGHTS), in block order
//   new -> source:  u32 length | JSON {"accept": true} or {"accept": false,
//                   "differences": [...]} or {"accept": false, "error": "..."}
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "core/kvm/kvm.hpp"
#include "core/migration/channel.hpp"

namespace molt::core::migration {

struct HandedBlock {
  std::string name;
  std::uint64_t size = 0;
  kvm::Fd fd;
};

struct CprHandover {
  std::vector<HandedBlock> blocks;
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

// Source: connects, sends the blocks' fds and the fingerprint, and returns
// the new molt's reply. Throws sdk::Error (the guest is untouched).
boost::json::object hand_over_ram(const ChannelUri& uri, const std::vector<HandedBlock>& blocks,
                                  const boost::json::value& fingerprint, std::chrono::milliseconds timeout);

}  // namespace molt::core::migration
