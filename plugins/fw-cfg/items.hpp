// fw_cfg's items: numbered blobs (the legacy keys below 0x20) and named files
// (keys from 0x20, listed in the FW_CFG_FILE_DIR item). Facts from QEMU's
// docs/specs/fw_cfg.rst and what SeaBIOS's src/fw/paravirt.c reads.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace molt::fw_cfg {

using Bytes = std::vector<std::uint8_t>;

// Selector keys.
inline constexpr std::uint16_t kSignature = 0x00;  // "QEMU"
inline constexpr std::uint16_t kId = 0x01;         // le32 feature bitmap
inline constexpr std::uint16_t kUuid = 0x02;
inline constexpr std::uint16_t kRamSize = 0x03;    // le64
inline constexpr std::uint16_t kNoGraphic = 0x04;  // le16
inline constexpr std::uint16_t kNbCpus = 0x05;     // le16
inline constexpr std::uint16_t kKernelAddr = 0x07;
inline constexpr std::uint16_t kKernelSize = 0x08;
inline constexpr std::uint16_t kInitrdAddr = 0x0a;
inline constexpr std::uint16_t kInitrdSize = 0x0b;
inline constexpr std::uint16_t kBootMenu = 0x0e;  // le16; SeaBIOS reads it as "etc/show-boot-menu"
inline constexpr std::uint16_t kMaxCpus = 0x0f;   // le16
inline constexpr std::uint16_t kKernelData = 0x11;
inline constexpr std::uint16_t kInitrdData = 0x12;
inline constexpr std::uint16_t kCmdlineAddr = 0x13;
inline constexpr std::uint16_t kCmdlineSize = 0x14;
inline constexpr std::uint16_t kCmdlineData = 0x15;
inline constexpr std::uint16_t kSetupAddr = 0x16;
inline constexpr std::uint16_t kSetupSize = 0x17;
inline constexpr std::uint16_t kSetupData = 0x18;
inline constexpr std::uint16_t kFileDir = 0x19;
inline constexpr std::uint16_t kFileFirst = 0x20;
// Selector bits: 14 asks for write mode (ignored: writes go through DMA),
// 15 picks the architecture-specific item space.
inline constexpr std::uint16_t kWriteBit = 0x4000;
inline constexpr std::uint16_t kArchLocal = 0x8000;

// Feature bits of kId.
inline constexpr std::uint32_t kFeatureTraditional = 1u << 0;
inline constexpr std::uint32_t kFeatureDma = 1u << 1;

// A directory entry is 64 bytes: be32 size, be16 select, be16 reserved, name[56].
inline constexpr std::size_t kFileNameMax = 55;  // plus the NUL
inline constexpr std::size_t kDirEntrySize = 64;
// Offsets are 32-bit in the device state; nothing near this size is served.
inline constexpr std::uint64_t kMaxItemSize = 1ull << 30;

Bytes le_bytes(std::uint64_t value, unsigned width);

class ItemTable {
 public:
  // Both throw sdk::Error (a setup problem) on a duplicate, a file name that is
  // empty or longer than 55 bytes, or an item larger than kMaxItemSize.
  void set(std::uint16_t key, Bytes data);
  void add_file(const std::string& name, Bytes data);
  // Gives the files their keys (kFileFirst upwards, in name order, as the
  // directory is sorted by name) and builds the directory item.
  void seal();

  // The item a selector value refers to (the write bit ignored); null if none.
  const Bytes* find(std::uint16_t selector) const;
  // The key a named file got from seal(); 0 if there is no such file.
  std::uint16_t file_key(const std::string& name) const;
  // FNV-1a over every key and its bytes: two machines serve the same contents
  // exactly when their digests match (checked when state is loaded).
  std::uint64_t digest() const;

 private:
  std::map<std::uint16_t, Bytes> items_;
  std::map<std::string, Bytes> files_;
  std::map<std::string, std::uint16_t> file_keys_;
};

}  // namespace molt::fw_cfg
