#include "format.hpp"

#include <fmt/format.h>

namespace moltctl {

namespace {

std::string ranges_text(const json::value& ranges, int width) {
  std::string out;
  for (const json::value& r : ranges.as_array()) {
    const auto base = r.at("base").to_number<std::uint64_t>();
    const auto length = r.at("length").to_number<std::uint64_t>();
    out += fmt::format("{}{:#0{}x}-{:#0{}x}", out.empty() ? "" : ",", base, width, base + length - 1, width);
  }
  return out.empty() ? "-" : out;
}

std::string list_text(const json::value& list) {
  std::string out;
  for (const json::value& v : list.as_array()) out += (out.empty() ? "" : ",") + scalar_text(v);
  return out.empty() ? "-" : out;
}

}  // namespace

std::string scalar_text(const json::value& v) {
  if (v.is_string()) return std::string(v.as_string());
  return json::serialize(v);
}

std::string format_status(const json::value& status) {
  const json::object& s = status.as_object();
  std::string out =
      fmt::format("state:   {}\nvcpus:   {}\nmemory:  {} MiB\nmachine: {}\nuptime:  {:.3f} s\n",
                  scalar_text(s.at("state")), scalar_text(s.at("vcpus")),
                  s.at("memory_bytes").to_number<std::uint64_t>() >> 20, scalar_text(s.at("machine_type")),
                  static_cast<double>(s.at("uptime_ms").to_number<std::uint64_t>()) / 1000.0);
  if (const json::value* exit = s.if_contains("exit")) {
    out += fmt::format("exit:    {} (status {}): {}\n", scalar_text(exit->at("reason")),
                       scalar_text(exit->at("exit_status")), scalar_text(exit->at("detail")));
  }
  return out;
}

std::string format_devices(const json::value& devices) {
  std::string out =
      fmt::format("{:<10} {:<16} {:<12} {:<8} {:<24} {}\n", "ID", "TYPE", "PLUGIN", "PCI", "PORTS", "MMIO");
  for (const json::value& d : devices.as_array()) {
    out += fmt::format("{:<10} {:<16} {:<12} {:<8} {:<24} {}\n", scalar_text(d.at("id")),
                       scalar_text(d.at("type")), scalar_text(d.at("plugin")), list_text(d.at("pci")),
                       ranges_text(d.at("ports"), 6), ranges_text(d.at("mmio"), 10));
    for (const auto& p : d.at("properties").as_object())
      out += fmt::format("    {} = {}\n", std::string_view(p.key()), json::serialize(p.value()));
  }
  return out;
}

std::string format_property(const json::value& property) {
  return fmt::format("{}.{} = {}\n", scalar_text(property.at("device")), scalar_text(property.at("property")),
                     json::serialize(property.at("value")));
}

std::string format_plugins(const json::value& plugins) {
  std::string out;
  for (const json::value& p : plugins.as_array()) {
    out += fmt::format("{} {} (SDK ABI {}) {}\n    device types: {}\n", scalar_text(p.at("name")),
                       scalar_text(p.at("version")), scalar_text(p.at("sdk_abi")), scalar_text(p.at("path")),
                       list_text(p.at("device_types")));
  }
  return out;
}

std::string format_trace_set(const json::value& result) {
  return fmt::format("{} -> {}: {}\n", scalar_text(result.at("pattern")), scalar_text(result.at("level")),
                     list_text(result.at("loggers")));
}

std::string format_trace_list(const json::value& result) {
  std::string out;
  for (const json::value& l : result.at("loggers").as_array())
    out += fmt::format("{:<24} {}\n", scalar_text(l.at("name")), scalar_text(l.at("level")));
  for (const json::value& r : result.at("rules").as_array())
    out += fmt::format("rule: {} -> {}\n", scalar_text(r.at("pattern")), scalar_text(r.at("level")));
  return out;
}

std::string format_methods(const json::value& result) {
  std::string out;
  for (const json::value& m : result.at("methods").as_array())
    out += fmt::format("{:<20} {}\n", scalar_text(m.at("name")), scalar_text(m.at("summary")));
  for (const json::value& e : result.at("events").as_array())
    out += fmt::format("event {:<14} {}\n", scalar_text(e.at("name")), scalar_text(e.at("summary")));
  return out;
}

std::string format_event(const json::object& notification) {
  std::string out = notification.contains("method") ? scalar_text(notification.at("method")) : "?";
  if (const json::value* params = notification.if_contains("params"); params && params->is_object()) {
    for (const auto& p : params->as_object()) {
      out += fmt::format(" {}={}", std::string_view(p.key()),
                         p.value().is_object() ? json::serialize(p.value()) : scalar_text(p.value()));
    }
  }
  return out + "\n";
}

}  // namespace moltctl
