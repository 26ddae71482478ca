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
      {"molt-pc-1.0",
       "the first pc machine: i440FX/PIIX3, 16550A, MC146818, PIIX3 IDE, fw_cfg with the port interface only",
       {{"fw-cfg", {{"dma", false}}}}},
      {"molt-pc-1.1", "fw_cfg offers its DMA interface by default (firmware loads files without a port access "
                      "per byte)",
       {}},
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
