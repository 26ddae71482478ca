// Firmware boot: a ROM the test assembles starts at the reset vector and runs
// from its low-memory shadow; then SeaBIOS from Debian's package (fetched by
// guest/seabios/fetch-seabios.sh) finds molt's RAM through fw_cfg, finds the
// IDE disk with its size, and boots the disk's boot sector, which prints a
// marker on COM1 and writes the debug-exit port. SeaBIOS runs in guest kernel
// mode, which this host emulates: a boot takes tens of seconds.
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "molt_process.hpp"

namespace molt::test {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr int kBootSectorExit = 0x2a;  // the boot sector's debug-exit value: status 2*42+1
constexpr char kBootSectorMarker[] = "MOLT-BOOT-SECTOR-OK";

// A real-mode boot sector, as a PC boot sector drives the UART: DS=0; for
// each byte of the marker wait for LSR.THRE (port 0x3fd bit 5), then write it
// to 0x3f8; write 0x2a to port 0xf4; halt.
std::vector<std::uint8_t> boot_sector() {
  std::vector<std::uint8_t> sector(512, 0);
  // clang-format off
  const std::vector<std::uint8_t> code = {
      0x31, 0xC0,              // xor ax, ax
      0x8E, 0xD8,              // mov ds, ax
      0xBE, 0x23, 0x7C,        // mov si, 0x7c23 (the message)
      0xFC,                    // cld
      0xBA, 0xFD, 0x03,        // .next: mov dx, 0x3fd
      0xEC,                    // .wait: in al, dx
      0xA8, 0x20,              // test al, 0x20
      0x74, 0xFB,              // jz .wait
      0xAC,                    // lodsb
      0x84, 0xC0,              // test al, al
      0x74, 0x05,              // jz .done
      0xB2, 0xF8,              // mov dl, 0xf8
      0xEE,                    // out dx, al
      0xEB, 0xEE,              // jmp .next
      0xBA, 0xF4, 0x00,        // .done: mov dx, 0xf4
      0xB0, kBootSectorExit,   // mov al, 0x2a
      0xEE,                    // out dx, al
      0xF4,                    // .halt: hlt
      0xEB, 0xFD,              // jmp .halt
  };
  // clang-format on
  std::copy(code.begin(), code.end(), sector.begin());
  const std::string message = std::string("\r\n") + kBootSectorMarker + "\r\n";
  std::copy(message.begin(), message.end(), sector.begin() + 0x23);
  sector[510] = 0x55;
  sector[511] = 0xAA;
  return sector;
}

// A 64 KiB ROM: the reset vector far-jumps to F000:E000, i.e. into the copy
// of the ROM's top 64 KiB at 0xF0000 in low RAM; from there the code checks
// that the shadow is writable RAM, prints a message it reads from the shadow,
// and exits with 21 (1 if the shadow did not take a write).
std::vector<std::uint8_t> tiny_rom() {
  std::vector<std::uint8_t> rom(64 * 1024, 0xF4);  // hlt everywhere else
  // clang-format off
  const std::vector<std::uint8_t> code = {
      0x8C, 0xC8,                    // mov ax, cs
      0x8E, 0xD8,                    // mov ds, ax
      0xC6, 0x06, 0x00, 0xE1, 0x55,  // mov byte [0xe100], 0x55
      0xA0, 0x00, 0xE1,              // mov al, [0xe100]
      0x3C, 0x55,                    // cmp al, 0x55
      0x75, 0x12,                    // jne .fail
      0xBE, 0x80, 0xE0,              // mov si, 0xe080 (the message)
      0xBA, 0xF8, 0x03,              // mov dx, 0x3f8
      0xAC,                          // .next: lodsb
      0x84, 0xC0,                    // test al, al
      0x74, 0x03,                    // jz .done
      0xEE,                          // out dx, al
      0xEB, 0xF8,                    // jmp .next
      0xB0, 0x15,                    // .done: mov al, 21
      0xEB, 0x02,                    // jmp .exit
      0xB0, 0x01,                    // .fail: mov al, 1
      0xBA, 0xF4, 0x00,              // .exit: mov dx, 0xf4
      0xEE,                          // out dx, al
      0xF4,                          // .halt: hlt
      0xEB, 0xFD,                    // jmp .halt
  };
  // clang-format on
  std::copy(code.begin(), code.end(), rom.begin() + 0xE000);
  const std::string message = "FW-SHADOW-OK\n";
  std::copy(message.begin(), message.end(), rom.begin() + 0xE080);
  rom[0xE080 + message.size()] = 0;
  const std::vector<std::uint8_t> reset = {0xEA, 0x00, 0xE0, 0x00, 0xF0};  // jmp far F000:E000
  std::copy(reset.begin(), reset.end(), rom.begin() + 0xFFF0);
  return rom;
}

void write_file(const fs::path& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

class FirmwareBoot : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kvm_available())
      GTEST_SKIP() << "SKIPPED: /dev/kvm is not available on this host; KVM tests need it";
    dir_ = fs::temp_directory_path() / ("molt-seabios-test-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  // Debian's bios.bin as fetch-seabios.sh leaves it; skips (loudly) without it.
  std::string seabios() {
    const std::string path = source_dir() + "/guest/seabios/cache/bios.bin";
    if (!fs::exists(path)) {
      ADD_FAILURE() << path << " is missing; run guest/seabios/fetch-seabios.sh (scripts/test.sh does)";
      return {};
    }
    return path;
  }
  std::string machine(const std::string& firmware, const std::string& extra_devices) {
    const fs::path path = dir_ / "machine.json";
    std::ofstream out(path);
    out << R"({
  "machine": "molt-pc",
  "memory": { "size": "128M" },
  "firmware": { "path": ")"
        << firmware << R"(" },
  "devices": [
    { "id": "com1", "type": "serial-16550a", "properties": { "backend": "stdio" } },
    { "id": "exit", "type": "debug-exit" })"
        << extra_devices << R"(
  ]
})";
    return path.string();
  }
  static std::string fw_cfg_devices() {
    return R"(,
    { "id": "fwcfg", "type": "fw-cfg" },
    { "id": "dbg", "type": "debugcon" })";
  }

  fs::path dir_;
};

TEST_F(FirmwareBoot, TinyRomStartsAtTheResetVectorAndRunsFromItsShadow) {
  write_file(dir_ / "tiny.rom", tiny_rom());
  const Finished f = run_molt({"run", machine((dir_ / "tiny.rom").string(), "")}, 30s);
  EXPECT_NE(f.console.find("FW-SHADOW-OK"), std::string::npos) << f.console << f.errors;
  EXPECT_EQ(f.status, 2 * 21 + 1) << f.errors;
}

TEST_F(FirmwareBoot, BadFirmwareImagesAreRefusedBeforeTheGuestRuns) {
  write_file(dir_ / "odd.rom", std::vector<std::uint8_t>(64 * 1024 + 1, 0));
  Finished f = run_molt({"run", machine((dir_ / "odd.rom").string(), "")}, 30s);
  EXPECT_EQ(f.status, 2);
  EXPECT_NE(f.errors.find("a multiple of 4 KiB from 64 KiB to 16384 KiB"), std::string::npos) << f.errors;
  f = run_molt({"run", machine((dir_ / "missing.rom").string(), "")}, 30s);
  EXPECT_EQ(f.status, 2);
  EXPECT_NE(f.errors.find("cannot open it"), std::string::npos) << f.errors;
}

// SeaBIOS with fw_cfg and the serial port only: it finds the RAM molt gave
// and the QEMU interface, then finds nothing to boot.
TEST_F(FirmwareBoot, SeabiosFindsRamThroughFwCfg) {
  const std::string bios = seabios();
  if (bios.empty()) return;
  MoltProcess molt({"run", machine(bios, fw_cfg_devices())});
  ASSERT_TRUE(molt.wait_for_line("SeaBIOS \\(version ", 60s)) << molt.console() << molt.errors();
  EXPECT_TRUE(molt.wait_for_line("Found QEMU fw_cfg", 60s)) << molt.console();
  EXPECT_TRUE(molt.wait_for_line("QEMU fw_cfg DMA interface supported", 10s)) << molt.console();
  // 128 MiB: RAM below the EBDA, and from 1 MiB up, as etc/e820 says.
  EXPECT_TRUE(molt.wait_for_line("qemu/e820: addr 0x0000000000000000 len 0x000000000009fc00 \\[RAM\\]", 10s));
  EXPECT_TRUE(molt.wait_for_line("qemu/e820: addr 0x0000000000100000 len 0x0000000007f00000 \\[RAM\\]", 10s))
      << molt.console();
  EXPECT_TRUE(molt.wait_for_line("sercon: using ioport 0x3f8", 60s)) << molt.console();
  EXPECT_TRUE(molt.wait_for_line("No bootable device", 120s)) << molt.console();
  molt.signal(SIGTERM);
  EXPECT_EQ(molt.wait_exit(10s), 0) << molt.errors();
}

// The pc platform: i440FX/PIIX3, the RTC, an IDE disk whose boot sector
// SeaBIOS loads and runs.
TEST_F(FirmwareBoot, SeabiosBootsTheBootSectorOfAnIdeDisk) {
  const std::string bios = seabios();
  if (bios.empty()) return;
  std::vector<std::uint8_t> disk(2 * 1024 * 1024, 0);  // 2 MiB
  const std::vector<std::uint8_t> sector = boot_sector();
  std::copy(sector.begin(), sector.end(), disk.begin());
  write_file(dir_ / "disk.img", disk);
  const std::string devices = fw_cfg_devices() + R"(,
    { "id": "host", "type": "i440fx-host" },
    { "id": "isa", "type": "piix3-isa" },
    { "id": "rtc", "type": "mc146818-rtc" },
    { "id": "ide0", "type": "piix3-ide", "properties": { "primary-master": ")" +
                              (dir_ / "disk.img").string() + R"(" } })";
  MoltProcess molt({"run", machine(bios, devices)});
  ASSERT_TRUE(molt.wait_for_line("SeaBIOS \\(version ", 60s)) << molt.console() << molt.errors();
  EXPECT_TRUE(molt.wait_for_line("qemu/e820: addr 0x0000000000100000 len 0x0000000007f00000 \\[RAM\\]", 60s))
      << molt.console();
  // Stop at the first missing step: SeaBIOS halts for good where it gives up.
  ASSERT_TRUE(molt.wait_for_line("ata0-0: .* ATA-[0-9]+ Hard-Disk \\(2 MiBytes\\)", 120s)) << molt.console();
  ASSERT_TRUE(molt.wait_for_line("Booting from Hard Disk", 60s)) << molt.console();
  EXPECT_TRUE(molt.wait_for_line(kBootSectorMarker, 30s)) << molt.console();
  EXPECT_EQ(molt.wait_exit(30s), 2 * kBootSectorExit + 1) << molt.console() << molt.errors();
}

}  // namespace
}  // namespace molt::test
