// Streams built for the migration stream tests and the fuzz replay's seeds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace molt::core::migration::samples {

struct RamPage {
  std::uint64_t offset;  // a multiple of 4096
  bool zero;             // else 4096 bytes of `fill`
  std::uint8_t fill = 0;
};

// A RAM chunk payload (docs/migration-stream.md, "RAM chunks").
std::vector<std::uint8_t> ram_chunk(const std::string& block, const std::vector<RamPage>& pages);

// An SDK state record of the sample device "sample-dev" v2: fields ctrl (u8
// 0x81), count (u16 0x1234), enabled (true), fifo (bytes 01 02 03 04), label
// ("com1"), regs (u32 array 1, 2, 3), delta (i64 -5), and subsection
// "sample-timer" v1 with deadline (u64 0x0102030405060708).
std::vector<std::uint8_t> sample_state_record();

// A complete migration stream in the order of a real migration: Fingerprint,
// a device's early chunk, Phase live, two RAM chunks (pc.ram: pages 0x0
// zero, 0x1000 data 0xaa, 0x5000 zero; then 0x2000 data 0xbb), Phase
// stopped, DeviceState "com1", CpuState "cpu0", MachineState "pit", End.
std::vector<std::uint8_t> sample_migration_stream();

// A return path: Handshake refuse {"differences": [...]}, Status failed, End.
std::vector<std::uint8_t> sample_return_path();

}  // namespace molt::core::migration::samples
