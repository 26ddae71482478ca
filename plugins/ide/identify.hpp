// The 512-byte IDENTIFY DEVICE data of an ATA disk.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "ide_state.hpp"

namespace molt::ide {

struct DriveIdentity {
  std::uint64_t sectors = 0;
  std::string serial;    // up to 20 characters
  std::string model;     // up to 40
  std::string firmware;  // up to 8
  bool is_slave = false;
};

// Words in host order; the data register sends each word little-endian.
// Word 255 carries the checksum (signature A5h, all 512 bytes sum to 0).
std::array<std::uint16_t, 256> identify_words(const DriveIdentity& id, const DriveState& drive);

// Default CHS geometry for a disk of `sectors` (16 heads, 63 sectors per
// track, at most 16383 cylinders).
std::uint32_t default_cylinders(std::uint64_t sectors);

}  // namespace molt::ide
