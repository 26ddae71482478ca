// The monitor's view of a real Machine and the plugins it was built from,
// and the wiring of the machine's state changes and device events into
// monitor events.
#pragma once

#include <functional>

#include "core/machine/machine.hpp"
#include "core/migration/engine.hpp"
#include "core/monitor/migration_control.hpp"
#include "core/monitor/rpc.hpp"
#include "core/monitor/vm_control.hpp"
#include "core/plugin/registry.hpp"

namespace molt::core::monitor {

class MachineVmControl final : public VmControl {
 public:
  MachineVmControl(machine::Machine& machine, const plugin::Registry& plugins);

  VmStatus status() const override;
  void pause() override;
  void resume() override;
  void reset() override;
  void quit() override;
  std::vector<DeviceInfo> devices() const override;
  void set_property(const std::string& device, const std::string& name,
                    const sdk::PropertyValue& value) override;
  std::vector<PluginDescription> plugins() const override;

  // Sends the machine's state changes and exit, and every device event, to
  // `publish` (thread-safe, e.g. MonitorServer::publish). Call before run().
  using Publish = std::function<void(const std::string& event, json::object params)>;
  void connect_events(Publish publish);

 private:
  void refuse_if_held(const char* method) const;
  machine::Machine& machine_;
  const plugin::Registry& plugins_;
};

// migrate.* on a real machine's migration engine; its sdk::Errors become
// RpcError(kNotInThisState) with the method's name.
class MachineMigrationControl final : public MigrationControl {
 public:
  explicit MachineMigrationControl(migration::Migration& migration) : migration_(migration) {}
  void start(const std::string& uri, const std::string& mode, const std::string& cpr_uri,
             bool ram_in_place) override;
  void snapshot(const std::string& path, bool resume, bool ram_in_place) override;
  std::string incoming(const std::string& uri) override;
  void set_parameters(const json::object& changes) override;
  json::object parameters() const override;
  json::object status() const override;
  void cancel() override;
  void switchover() override;

 private:
  migration::Migration& migration_;
};

ExitInfo to_exit_info(const machine::ExitResult& result);

}  // namespace molt::core::monitor
