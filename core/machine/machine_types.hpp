// Versioned machine types. A machine created as molt-pc-1.0 keeps the device
// behaviour of 1.0 under every later molt: each version's compat table holds
// the property defaults that changed after it, as QEMU's hw_compat lists do.
// The unversioned name is an alias of the newest version.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/machine/description.hpp"

namespace molt::core::machine {

struct MachineType {
  std::string name;         // "molt-pc-1.0"
  std::string description;  // what this version changed
  // Device type -> property defaults that differ from the plugin's own.
  std::map<std::string, DefaultOverrides> compat;
};

// Every machine type molt knows, oldest first.
const std::vector<MachineType>& machine_types();

// The versioned type `name` stands for ("molt-pc" -> the newest molt-pc-x.y).
// Unknown names are a ConfigError at $.machine listing the known ones.
const MachineType& resolve_machine_type(const std::string& name, const std::filesystem::path& origin = {});

}  // namespace molt::core::machine
