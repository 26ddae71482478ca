// The JSON-RPC 2.0 layer of the monitor: request validation, method lookup,
// parameter checking and error replies. Transport-free, so it is tested
// without sockets; the server (server.hpp) feeds it one line at a time.
//
// Decisions (docs/monitor.md): params are named (an object) or absent;
// positional arrays are refused with -32602. Batches are supported up to
// kMaxBatch entries; an empty or larger batch is one -32600 error.
#pragma once

#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json.hpp>

namespace molt::core::monitor {

namespace json = boost::json;

// JSON-RPC's own codes, then molt's (the -32000..-32099 server range).
enum ErrorCode : int {
  kParseError = -32700,
  kInvalidRequest = -32600,
  kMethodNotFound = -32601,
  kInvalidParams = -32602,
  kInternalError = -32603,
  kNotInThisState = -32000,  // e.g. vm.resume while running
  kDeviceError = -32001,     // a device refused or failed; the message names it
  kNotSupported = -32002,    // this build cannot do it at all
};

inline constexpr std::size_t kMaxBatch = 64;

// Thrown by handlers; becomes the error object of the reply.
class RpcError : public std::runtime_error {
 public:
  RpcError(int code, const std::string& message) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

enum class ParamType { String, UInt, Bool, Scalar, StringList };
const char* to_string(ParamType type);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::String;
  bool required = true;
  std::string doc;
};

// What one client connection carries between requests.
struct Session {
  std::set<std::string> subscriptions;  // event names
};

struct Services;  // methods.hpp: what the handlers act on

struct Call {
  const json::object& params;  // already checked against the method's ParamSpecs
  Session& session;
  Services& services;
};
using Handler = std::function<json::value(const Call&)>;

struct MethodSpec {
  std::string name;  // "group.verb"
  std::string summary;
  std::vector<ParamSpec> params;
  std::string result;  // what the result holds, for the reference
  Handler handler;
};

class MethodTable {
 public:
  // Throws std::logic_error on a duplicate name.
  void add(MethodSpec spec);
  const MethodSpec* find(std::string_view name) const;
  const std::vector<MethodSpec>& methods() const { return methods_; }

 private:
  std::vector<MethodSpec> methods_;
};

// Handles one request line (a single request or a batch). Returns the reply
// to send, without the newline, or an empty string when there is none (a
// notification, or a batch of notifications).
std::string handle_line(const MethodTable& table, std::string_view line, Session& session,
                        Services& services);

// {"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message}}
json::object error_reply(const json::value& id, int code, const std::string& message);

// A notification sent to subscribers: {"jsonrpc":"2.0","method":event,"params":params}
std::string notification_line(const std::string& event, const json::object& params);

// Throws RpcError(kInvalidParams) naming the param when `params` does not
// match `specs` (unknown names, missing required ones, wrong types).
void check_params(const std::vector<ParamSpec>& specs, const json::object& params);

}  // namespace molt::core::monitor
