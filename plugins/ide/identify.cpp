#include "identify.hpp"

#include <algorithm>

namespace molt::ide {

namespace {

constexpr std::uint32_t kMaxCylinders = 16383;
constexpr std::uint64_t kMaxLba28 = 0x0fffffff;

// ATA strings: space padded, two characters per word, the first in the high byte.
void put_string(std::array<std::uint16_t, 256>& w, unsigned first_word, unsigned words,
                const std::string& text) {
  for (unsigned i = 0; i < words; ++i) {
    const char hi = 2 * i < text.size() ? text[2 * i] : ' ';
    const char lo = 2 * i + 1 < text.size() ? text[2 * i + 1] : ' ';
    w[first_word + i] =
        static_cast<std::uint16_t>((static_cast<std::uint8_t>(hi) << 8) | static_cast<std::uint8_t>(lo));
  }
}

unsigned selected_mode(std::uint8_t transfer_mode, std::uint8_t kind) {
  return (transfer_mode & 0xf8) == kind ? (1u << (transfer_mode & 7)) << 8 : 0;
}

}  // namespace

std::uint32_t default_cylinders(std::uint64_t sectors) {
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(sectors / (16 * 63), kMaxCylinders));
}

std::array<std::uint16_t, 256> identify_words(const DriveIdentity& id, const DriveState& drive) {
  std::array<std::uint16_t, 256> w{};
  const std::uint32_t cylinders = default_cylinders(id.sectors);
  const std::uint64_t lba28 = std::min(id.sectors, kMaxLba28);
  w[0] = 0x0040;  // fixed ATA device
  w[1] = static_cast<std::uint16_t>(cylinders);
  w[3] = 16;
  w[6] = 63;
  put_string(w, 10, 10, id.serial);
  put_string(w, 23, 4, id.firmware);
  put_string(w, 27, 20, id.model);
  w[47] = 0x8000 | kMaxMultipleSectors;
  w[49] = (1u << 11) | (1u << 9) | (1u << 8);  // IORDY, LBA, DMA
  w[50] = 0x4000;
  w[51] = 0x0200;  // PIO timing mode 2 (obsolete word)
  w[53] = 0x0007;  // words 54-58, 64-70 and 88 are valid
  // Current logical CHS geometry and the capacity it addresses.
  const std::uint64_t chs_capacity =
      std::min<std::uint64_t>(std::uint64_t{cylinders} * drive.heads * drive.sectors_per_track, id.sectors);
  w[54] = static_cast<std::uint16_t>(cylinders);
  w[55] = drive.heads;
  w[56] = drive.sectors_per_track;
  w[57] = static_cast<std::uint16_t>(chs_capacity);
  w[58] = static_cast<std::uint16_t>(chs_capacity >> 16);
  w[59] = drive.multiple_sectors != 0 ? 0x0100 | drive.multiple_sectors : 0;
  w[60] = static_cast<std::uint16_t>(lba28);
  w[61] = static_cast<std::uint16_t>(lba28 >> 16);
  w[63] = 0x0007 | selected_mode(drive.transfer_mode, kModeMultiwordDma);  // MWDMA 0-2
  w[64] = 0x0003;                                                          // PIO 3 and 4
  w[65] = w[66] = w[67] = w[68] = 120;                                     // cycle times, ns
  w[80] = 0x01f0;                                                          // ATA/ATAPI-4 to ATA8-ACS
  w[82] = (1u << 5) | (1u << 3);                                           // write cache, power management
  w[83] = 0x4000 | (1u << 13) | (1u << 12) | (1u << 10);  // FLUSH CACHE EXT, FLUSH CACHE, 48-bit
  w[84] = 0x4000;
  w[85] = (drive.write_cache ? (1u << 5) : 0) | (1u << 3);
  w[86] = (1u << 13) | (1u << 12) | (1u << 10);
  w[87] = 0x4000;
  w[88] = 0x003f | selected_mode(drive.transfer_mode, kModeUltraDma);  // UDMA 0-5
  // Hardware reset result: bit 14 set, bit 13 (80-conductor cable detected),
  // bit 0 set, and for device 0 "determined by jumper" and diagnostics passed.
  w[93] = id.is_slave ? 0x6100 | 0x0300 : 0x6000 | 0x000b;
  for (unsigned i = 0; i < 4; ++i) w[100 + i] = static_cast<std::uint16_t>(id.sectors >> (16 * i));
  w[106] = 0x4000;  // valid; 512-byte logical sectors, one per physical sector
  w[255] = 0x00a5;
  unsigned sum = 0;
  for (unsigned i = 0; i < 255; ++i) sum += (w[i] & 0xff) + (w[i] >> 8);
  sum += 0xa5;
  w[255] |= static_cast<std::uint16_t>(((0x100 - (sum & 0xff)) & 0xff) << 8);
  return w;
}

}  // namespace molt::ide
