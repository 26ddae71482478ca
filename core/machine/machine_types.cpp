#include "core/machine/machine_types.hpp"

namespace molt::core::machine {

namespace {
constexpr const char* kFamily = "molt-pc";
}

const std::vector<MachineType>& machine_types() {
  // Each entry lists, for the devices whose defaults changed in a later
  // version, the defaults this version keeps. Add a new version by appending
  // an entry and copying the changed defaults into every older entry.
  static const std::vector<MachineType> types = {
      {"molt-pc-1.0", "the first pc machine: 16550A serial, debug-exit", {}},
  };
  return types;
}

const MachineType& resolve_machine_type(const std::string& name, const std::filesystem::path& origin) {
  const auto& types = machine_types();
  if (name == kFamily) return types.back();
  for (const MachineType& t : types) {
    if (t.name == name) return t;
  }
  std::string known = std::string("\"") + kFamily + "\" (the newest)";
  for (const MachineType& t : types) known += ", \"" + t.name + "\"";
  throw ConfigError(origin, "$.machine", "unknown machine type \"" + name + "\"; known types are " + known);
}

}  // namespace molt::core::machine
