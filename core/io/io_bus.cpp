#include "core/io/io_bus.hpp"

#include <algorithm>
#include <mutex>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>

namespace molt::core::io {

std::uint64_t IoBus::add(std::uint64_t base, std::uint64_t length, sdk::IoOps ops, const std::string& owner) {
  if (length == 0 || base + length < base) {
    throw sdk::Error(fmt::format("{}: cannot claim an empty or wrapping {} range at {:#x}", owner, kind_, base));
  }
  std::unique_lock lock(mutex_);
  for (const Range& r : ranges_) {
    if (base < r.base + r.length && r.base < base + length) {
      throw sdk::Error(fmt::format("{}: {} range {:#x}-{:#x} overlaps {:#x}-{:#x} claimed by {}", owner, kind_, base,
                                   base + length - 1, r.base, r.base + r.length - 1, r.owner));
    }
  }
  auto at = std::lower_bound(ranges_.begin(), ranges_.end(), base,
                             [](const Range& r, std::uint64_t b) { return r.base < b; });
  ranges_.insert(at, Range{base, length, std::make_shared<const sdk::IoOps>(std::move(ops)), owner, next_handle_});
  return next_handle_++;
}

void IoBus::remove(std::uint64_t handle) {
  std::unique_lock lock(mutex_);
  std::erase_if(ranges_, [handle](const Range& r) { return r.handle == handle; });
}

std::shared_ptr<const sdk::IoOps> IoBus::lookup(std::uint64_t addr, unsigned size, std::uint64_t& base) const {
  std::shared_lock lock(mutex_);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                             [](std::uint64_t a, const Range& r) { return a < r.base; });
  if (it == ranges_.begin()) return nullptr;
  --it;
  if (addr - it->base >= it->length || it->length - (addr - it->base) < size) return nullptr;
  base = it->base;
  return it->ops;
}

bool IoBus::read(std::uint64_t addr, unsigned size, std::uint64_t& value) const {
  std::uint64_t base = 0;
  const auto ops = lookup(addr, size, base);
  if (!ops || !ops->read) return false;
  value = ops->read(addr - base, size);
  return true;
}

bool IoBus::write(std::uint64_t addr, unsigned size, std::uint64_t value) const {
  std::uint64_t base = 0;
  const auto ops = lookup(addr, size, base);
  if (!ops || !ops->write) return false;
  ops->write(addr - base, size, value);
  return true;
}

std::vector<IoBus::Claim> IoBus::claims() const {
  std::shared_lock lock(mutex_);
  std::vector<Claim> out;
  for (const Range& r : ranges_) out.push_back(Claim{r.base, r.length, r.owner});
  return out;
}

}  // namespace molt::core::io
