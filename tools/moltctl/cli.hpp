// What every moltctl subcommand shares: the global options and the runner
// that holds the action the parsed command line chose.
#pragma once

#include <chrono>
#include <functional>
#include <iostream>
#include <string>

#include "rpc_client.hpp"

namespace moltctl {

inline constexpr int kExitErrorReply = 1;  // the monitor refused, or a migration failed
inline constexpr int kExitTrouble = 2;     // usage or connection trouble

struct Options {
  std::string socket;
  bool json = false;
  double timeout_s = 10;
};

using Formatter = std::function<std::string(const json::value&)>;

struct Runner {
  Options& o;
  std::function<void()> action;
  // What moltctl exits with when the action returns normally; an action whose
  // outcome is a failure it already reported (a failed migration) sets it.
  int exit_status = 0;

  RpcClient connect() const {
    return RpcClient(o.socket, std::chrono::milliseconds(static_cast<long>(o.timeout_s * 1000)));
  }
  void call(const std::string& method, const json::object& params, const Formatter& human) const {
    RpcClient client = connect();
    const json::value result = client.call(method, params);
    std::cout << (o.json ? json::serialize(result) + "\n" : human(result)) << std::flush;
  }
};

}  // namespace moltctl
