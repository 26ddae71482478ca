// What the monitor's migrate.* methods act on, behind an interface like
// VmControl so the JSON-RPC layer is tested without KVM. The real one wraps
// migration::Migration (machine_control.hpp). Every call is made on the
// event-loop thread; each throws RpcError when it cannot be done, and then
// nothing changed.
#pragma once

#include <string>

#include "core/monitor/rpc.hpp"

namespace molt::core::monitor {

class MigrationControl {
 public:
  virtual ~MigrationControl() = default;
  // mode: "precopy" or "cpr-transfer" (then cpr_uri is the new molt's unix:PATH).
  // ram_in_place: a file: URI leaves the RAM in the guest's RAM files.
  virtual void start(const std::string& uri, const std::string& mode, const std::string& cpr_uri,
                     bool ram_in_place) = 0;
  // Saves the guest's whole state into `path`, RAM included unless
  // `ram_in_place` (then the RAM stays in its RAM files); with `resume` the
  // guest runs on afterwards, else it stays stopped (postmigrate).
  virtual void snapshot(const std::string& path, bool resume, bool ram_in_place) = 0;
  // Returns the address it listens on (a tcp port 0 resolved).
  virtual std::string incoming(const std::string& uri) = 0;
  virtual void set_parameters(const json::object& changes) = 0;
  virtual json::object parameters() const = 0;
  virtual json::object status() const = 0;
  virtual void cancel() = 0;
  virtual void switchover() = 0;
};

}  // namespace molt::core::monitor
