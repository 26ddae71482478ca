#include "fake_vm.hpp"

#include <molt/sdk/error.hpp>

namespace molt::core::monitor::testing {

FakeVm::FakeVm() {
  DeviceInfo com1;
  com1.id = "com1";
  com1.type = "serial-16550a";
  com1.plugin = "serial";
  com1.ports = {{0x3f8, 8}};
  com1.properties = {{"irq", std::uint64_t{4}}, {"backend", std::string("stdio")}};
  com1.specs.push_back(
      sdk::PropertySpec{"irq", sdk::PropertyType::UInt, std::uint64_t{4}, "IRQ line", {}, 0, 15});
  com1.specs.push_back(sdk::PropertySpec{
      "backend", sdk::PropertyType::Enum, std::string("stdio"), "backend", {"stdio", "null"}});
  DeviceInfo nic;
  nic.id = "nic0";
  nic.type = "test-nic";
  nic.plugin = "test";
  nic.pci = {"00:03.0"};
  nic.mmio = {{0xfebf0000, 0x1000}};
  nic.properties = {{"link", true}, {"label", std::string("eth")}, {"mtu", std::uint64_t{1500}}};
  sdk::PropertySpec link{"link", sdk::PropertyType::Bool, true, "link up"};
  link.settable_at_runtime = true;
  sdk::PropertySpec label{"label", sdk::PropertyType::String, std::string("eth"), "label"};
  label.settable_at_runtime = true;
  sdk::PropertySpec mtu{"mtu", sdk::PropertyType::UInt, std::uint64_t{1500}, "MTU", {}, 68, 9000};
  mtu.settable_at_runtime = true;
  nic.specs = {link, label, mtu};
  nic.events = {{"link-changed", EventData{{"up", true}}}};
  devices_ = {com1, nic};
}

VmStatus FakeVm::status() const {
  VmStatus s;
  s.state = state;
  s.vcpus = 2;
  s.memory_bytes = 256ull << 20;
  s.machine_type = "molt-pc-1.1";
  s.uptime_ms = 1234;
  if (state == "shutting-down") s.exit = ExitInfo{"poweroff", 0, 0, "stopped by vm.quit"};
  return s;
}

void FakeVm::set_property(const std::string& device, const std::string& name,
                          const sdk::PropertyValue& value) {
  if (value == sdk::PropertyValue(std::string("rejected")))
    throw sdk::Error("the label 'rejected' is reserved");
  for (DeviceInfo& d : devices_)
    if (d.id == device) d.properties[name] = value;
}

std::vector<PluginDescription> FakeVm::plugins() const {
  return {PluginDescription{"/plugins/molt-serial.so", "serial", "1.0.0", 1, {"serial-16550a"}}};
}

json::value call_line(FakeVm& vm, const std::string& line, Session* session) {
  Session local;
  Services services{vm};
  const std::string reply = handle_line(method_table(), line, session ? *session : local, services);
  return reply.empty() ? json::value(nullptr) : json::parse(reply);
}

json::value call(FakeVm& vm, const std::string& method, const json::object& params, Session* session) {
  json::object request{{"jsonrpc", "2.0"}, {"id", 1}, {"method", method}, {"params", params}};
  return call_line(vm, json::serialize(request), session);
}

int error_code(const json::value& reply) {
  const json::value* error = reply.is_object() ? reply.as_object().if_contains("error") : nullptr;
  return error ? static_cast<int>(error->at("code").as_int64()) : 0;
}

std::string error_message(const json::value& reply) {
  const json::value* error = reply.is_object() ? reply.as_object().if_contains("error") : nullptr;
  return error ? std::string(error->at("message").as_string()) : std::string();
}

}  // namespace molt::core::monitor::testing
