#include "items.hpp"

#include <molt/sdk/error.hpp>

namespace molt::fw_cfg {

namespace {

void check_size(const std::string& what, const Bytes& data) {
  if (data.size() > kMaxItemSize) {
    throw sdk::Error("fw_cfg item " + what + " is " + std::to_string(data.size()) +
                     " bytes; items are limited to 1 GiB");
  }
}

void put_be(Bytes& out, std::size_t at, std::uint64_t value, unsigned width) {
  for (unsigned i = 0; i < width; ++i)
    out[at + i] = static_cast<std::uint8_t>(value >> (8 * (width - 1 - i)));
}

}  // namespace

Bytes le_bytes(std::uint64_t value, unsigned width) {
  Bytes out(width);
  for (unsigned i = 0; i < width; ++i) out[i] = static_cast<std::uint8_t>(value >> (8 * i));
  return out;
}

void ItemTable::set(std::uint16_t key, Bytes data) {
  key &= static_cast<std::uint16_t>(~kWriteBit);
  check_size("key " + std::to_string(key), data);
  if (!items_.emplace(key, std::move(data)).second)
    throw sdk::Error("fw_cfg key " + std::to_string(key) + " is set twice");
}

void ItemTable::add_file(const std::string& name, Bytes data) {
  if (name.empty() || name.size() > kFileNameMax || name.find('\0') != std::string::npos)
    throw sdk::Error("fw_cfg file name \"" + name + "\" must be 1 to 55 bytes without NUL");
  check_size("\"" + name + "\"", data);
  if (!files_.emplace(name, std::move(data)).second)
    throw sdk::Error("fw_cfg file \"" + name + "\" is added twice");
}

void ItemTable::seal() {
  if (files_.size() > kWriteBit - kFileFirst) throw sdk::Error("too many fw_cfg files");
  Bytes dir(4 + files_.size() * kDirEntrySize, 0);
  put_be(dir, 0, files_.size(), 4);
  std::uint16_t key = kFileFirst;
  std::size_t at = 4;
  for (auto& [name, data] : files_) {  // std::map: sorted by name
    put_be(dir, at, data.size(), 4);
    put_be(dir, at + 4, key, 2);
    std::copy(name.begin(), name.end(), dir.begin() + static_cast<std::ptrdiff_t>(at + 8));
    file_keys_[name] = key;
    items_[key] = std::move(data);
    ++key;
    at += kDirEntrySize;
  }
  files_.clear();
  items_[kFileDir] = std::move(dir);
}

const Bytes* ItemTable::find(std::uint16_t selector) const {
  const auto it = items_.find(static_cast<std::uint16_t>(selector & ~kWriteBit));
  return it == items_.end() ? nullptr : &it->second;
}

std::uint16_t ItemTable::file_key(const std::string& name) const {
  const auto it = file_keys_.find(name);
  return it == file_keys_.end() ? 0 : it->second;
}

std::uint64_t ItemTable::digest() const {
  std::uint64_t hash = 0xcbf29ce484222325ull;
  const auto mix = [&hash](std::uint8_t byte) {
    hash ^= byte;
    hash *= 0x100000001b3ull;
  };
  for (const auto& [key, data] : items_) {
    for (std::uint8_t b : le_bytes(key, 2)) mix(b);
    for (std::uint8_t b : le_bytes(data.size(), 4)) mix(b);
    for (std::uint8_t b : data) mix(b);
  }
  return hash;
}

}  // namespace molt::fw_cfg
