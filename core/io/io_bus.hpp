// Port or MMIO address space: claimed ranges and dispatch. Claims are made
// while devices realize; lookups happen on every vCPU exit.
#pragma once

#include <cstdint>
#include <shared_mutex>
#include <string>
#include <vector>

#include <molt/sdk/device.hpp>

namespace molt::core::io {

class IoBus {
 public:
  explicit IoBus(std::string kind) : kind_(std::move(kind)) {}

  // Throws sdk::Error naming the owner of an overlapping range.
  void add(std::uint64_t base, std::uint64_t length, sdk::IoOps ops, const std::string& owner);
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
    sdk::IoOps ops;
    std::string owner;
  };
  const Range* find(std::uint64_t addr, unsigned size) const;

  std::string kind_;
  mutable std::shared_mutex mutex_;
  std::vector<Range> ranges_;  // sorted by base, disjoint
};

}  // namespace molt::core::io
