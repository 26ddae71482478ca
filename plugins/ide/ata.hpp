// ATA register, status, error and command values (ATA/ATAPI-6, ATA8-ACS) and
// the PIIX bus-master (SFF-8038i) register layout.
#pragma once

#include <cstdint>

namespace molt::ide {

inline constexpr unsigned kSectorSize = 512;

// Command block registers, as offsets from the channel's command base.
enum TaskfileReg : unsigned {
  kRegData = 0,
  kRegErrorFeature = 1,
  kRegSectorCount = 2,
  kRegLbaLow = 3,
  kRegLbaMid = 4,
  kRegLbaHigh = 5,
  kRegDevice = 6,
  kRegStatusCommand = 7,
};

// Status register.
inline constexpr std::uint8_t kStatusErr = 0x01;
inline constexpr std::uint8_t kStatusDrq = 0x08;
inline constexpr std::uint8_t kStatusDsc = 0x10;  // obsolete "seek complete", set by most drives
inline constexpr std::uint8_t kStatusDf = 0x20;
inline constexpr std::uint8_t kStatusDrdy = 0x40;
inline constexpr std::uint8_t kStatusBsy = 0x80;
inline constexpr std::uint8_t kStatusIdle = kStatusDrdy | kStatusDsc;

// Error register.
inline constexpr std::uint8_t kErrorAbrt = 0x04;
inline constexpr std::uint8_t kErrorIdnf = 0x10;
inline constexpr std::uint8_t kErrorUnc = 0x40;
// Diagnostic code after reset or EXECUTE DEVICE DIAGNOSTIC: device 0 passed,
// device 1 passed or absent.
inline constexpr std::uint8_t kDiagnosticPassed = 0x01;

// Device/head register.
inline constexpr std::uint8_t kDeviceSelect = 0x10;  // DEV: 0 master, 1 slave
inline constexpr std::uint8_t kDeviceLba = 0x40;

// Device control register (write-only, at the control base).
inline constexpr std::uint8_t kControlNien = 0x02;
inline constexpr std::uint8_t kControlSrst = 0x04;
inline constexpr std::uint8_t kControlHob = 0x80;

// Commands.
enum AtaCommand : std::uint8_t {
  kCmdDeviceReset = 0x08,
  kCmdRecalibrate = 0x10,  // 0x10-0x1f
  kCmdReadSectors = 0x20,
  kCmdReadSectorsNoRetry = 0x21,
  kCmdReadSectorsExt = 0x24,
  kCmdReadDmaExt = 0x25,
  kCmdReadMultipleExt = 0x29,
  kCmdWriteSectors = 0x30,
  kCmdWriteSectorsNoRetry = 0x31,
  kCmdWriteSectorsExt = 0x34,
  kCmdWriteDmaExt = 0x35,
  kCmdWriteMultipleExt = 0x39,
  kCmdReadVerify = 0x40,
  kCmdReadVerifyNoRetry = 0x41,
  kCmdReadVerifyExt = 0x42,
  kCmdSeek = 0x70,
  kCmdExecuteDiagnostic = 0x90,
  kCmdInitializeParameters = 0x91,
  kCmdReadMultiple = 0xc4,
  kCmdWriteMultiple = 0xc5,
  kCmdSetMultipleMode = 0xc6,
  kCmdReadDma = 0xc8,
  kCmdReadDmaNoRetry = 0xc9,
  kCmdWriteDma = 0xca,
  kCmdWriteDmaNoRetry = 0xcb,
  kCmdStandbyImmediate = 0xe0,
  kCmdIdleImmediate = 0xe1,
  kCmdStandby = 0xe2,
  kCmdIdle = 0xe3,
  kCmdCheckPowerMode = 0xe5,
  kCmdFlushCache = 0xe7,
  kCmdFlushCacheExt = 0xea,
  kCmdIdentifyDevice = 0xec,
  kCmdSetFeatures = 0xef,
};

// SET FEATURES subcommands (feature register).
inline constexpr std::uint8_t kFeatureEnableWriteCache = 0x02;
inline constexpr std::uint8_t kFeatureSetTransferMode = 0x03;
inline constexpr std::uint8_t kFeatureDisableReadLookAhead = 0x55;
inline constexpr std::uint8_t kFeatureDisableRevertingDefaults = 0x66;
inline constexpr std::uint8_t kFeatureDisableWriteCache = 0x82;
inline constexpr std::uint8_t kFeatureEnableReadLookAhead = 0xaa;
inline constexpr std::uint8_t kFeatureEnableRevertingDefaults = 0xcc;

// Transfer mode values of SET FEATURES 03h (sector count register).
inline constexpr std::uint8_t kModePioDefault = 0x00;
inline constexpr std::uint8_t kModePioFlowControl = 0x08;  // | mode 0-4
inline constexpr std::uint8_t kModeMultiwordDma = 0x20;    // | mode 0-2
inline constexpr std::uint8_t kModeUltraDma = 0x40;        // | mode 0-5
inline constexpr unsigned kMaxPioMode = 4;
inline constexpr unsigned kMaxMultiwordDmaMode = 2;
inline constexpr unsigned kMaxUltraDmaMode = 5;

// READ/WRITE MULTIPLE: the largest DRQ block SET MULTIPLE MODE accepts.
inline constexpr unsigned kMaxMultipleSectors = 16;
// DMA moves data through a buffer of this many sectors (one image access each).
inline constexpr unsigned kDmaBlockSectors = 128;
inline constexpr unsigned kMaxBlockSectors = kDmaBlockSectors;

// Bus-master IDE registers (per channel, 8 bytes; the secondary at +8).
inline constexpr unsigned kBmCommand = 0;
inline constexpr unsigned kBmStatus = 2;
inline constexpr unsigned kBmPrdTable = 4;
inline constexpr unsigned kBmChannelStride = 8;
inline constexpr unsigned kBmBlockSize = 16;

inline constexpr std::uint8_t kBmCmdStart = 0x01;
inline constexpr std::uint8_t kBmCmdToMemory = 0x08;  // 1: the device's data is written to memory (a read)
inline constexpr std::uint8_t kBmCmdWritable = kBmCmdStart | kBmCmdToMemory;

inline constexpr std::uint8_t kBmStatusActive = 0x01;
inline constexpr std::uint8_t kBmStatusError = 0x02;
inline constexpr std::uint8_t kBmStatusInterrupt = 0x04;
inline constexpr std::uint8_t kBmStatusDrive0Dma = 0x20;
inline constexpr std::uint8_t kBmStatusDrive1Dma = 0x40;
inline constexpr std::uint8_t kBmStatusWriteOneToClear = kBmStatusError | kBmStatusInterrupt;
inline constexpr std::uint8_t kBmStatusReadWrite = kBmStatusDrive0Dma | kBmStatusDrive1Dma;
inline constexpr std::uint8_t kBmStatusValid =
    kBmStatusActive | kBmStatusWriteOneToClear | kBmStatusReadWrite;

// Physical region descriptors: 8 bytes, address (bit 0 ignored), byte count
// in bits 15:1 (0 means 64 KiB), end of table in bit 31.
inline constexpr unsigned kPrdSize = 8;
inline constexpr std::uint32_t kPrdEndOfTable = 0x80000000u;
inline constexpr std::uint32_t kPrdMaxBytes = 0x10000;
// A table may not cross a 64 KiB boundary, so no well-formed table holds more
// descriptors than this; the walk stops there even without an end bit.
inline constexpr unsigned kMaxPrdDescriptors = 0x10000 / kPrdSize;

}  // namespace molt::ide
