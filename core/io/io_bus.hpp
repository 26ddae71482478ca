// Port or MMIO address space: claimed ranges and dispatch. Claims are made
// while devices realize; lookups happen on every vCPU exit.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

namespace molt::core::io {

class IoBus {
 public:
  explicit IoBus(std::string kind) : kind_(std::move(kind)) {}

  // Throws sdk::Error naming the owner of an overlapping range. Returns a
  // handle for remove().
  std::uint64_t add(std::uint64_t base, std::uint64_t length, sdk::IoOps ops, const std::string& owner);
  void remove(std::uint64_t handle);
  // False when nothing claims [addr, addr+size): reads then float to all ones.
  bool read(std::uint64_t addr, unsigned size, std::uint64_t& value) const;
  bool write(std::uint64_t addr, unsigned size, std::uint64_t value) const;

  struct Claim {
    std::uint64_t base, length;
    std::string owner;
  };
  std::vector<Claim> claims() const;

 private:
  struct Range {
    std::uint64_t base, length;
    std::shared_ptr<const sdk::IoOps> ops;
    std::string owner;
    std::uint64_t handle;
  };
  // The handlers covering [addr, addr+size) and the range's base. Handlers
  // run without the bus lock held: a handler may remap ranges (a PCI BAR
  // moved by a config write) on this same bus.
  std::shared_ptr<const sdk::IoOps> lookup(std::uint64_t addr, unsigned size, std::uint64_t& base) const;

  std::string kind_;
  mutable std::shared_mutex mutex_;
  std::vector<Range> ranges_;  // sorted by base, disjoint
  std::uint64_t next_handle_ = 1;
};

}  // namespace molt::core::io
