// cpu_fingerprint() over hand-built CPUID tables: vendor, signature decoding,
// named feature bits (and the per-vCPU bits it leaves out), XSAVE size.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/migration/fingerprint.hpp"

namespace molt::core::migration {
namespace {

kvm_cpuid_entry2 entry(std::uint32_t leaf, std::uint32_t subleaf, std::uint32_t eax, std::uint32_t ebx,
                       std::uint32_t ecx, std::uint32_t edx) {
  kvm_cpuid_entry2 e{};
  e.function = leaf;
  e.index = subleaf;
  e.eax = eax;
  e.ebx = ebx;
  e.ecx = ecx;
  e.edx = edx;
  return e;
}

// Leaf 0 spells the vendor in EBX, EDX, ECX, four little-endian bytes each.
kvm_cpuid_entry2 vendor_leaf(const char (&vendor)[13]) {
  std::uint32_t words[3];
  std::memcpy(words, vendor, 12);
  return entry(0, 0, 0xd, words[0], words[2], words[1]);
}

constexpr std::uint32_t bit(unsigned n) {
  return 1u << n;
}

TEST(CpuFingerprint, ReadsVendorSignatureFeaturesAndXsaveSize) {
  kvm::CpuidTable table;
  table.entries() = {
      vendor_leaf("GenuineIntel"),
      // Family 6, extended model 9, model 0xE, stepping 0xA: model 158.
      // ECX: sse4_2, x2apic, OSXSAVE (left out), hypervisor (left out).
      // EDX: fpu, sse2, HTT (left out).
      entry(1, 0, 0x000906ea, 0x00010800, bit(20) | bit(21) | bit(27) | bit(31), bit(0) | bit(26) | bit(28)),
      entry(7, 0, 0, bit(5) | bit(16), bit(4) | bit(8), bit(4)),  // avx2 avx512f; OSPKE (left out) gfni; fsrm
      entry(0xd, 0, 0x7, 832, 2696, 0), entry(0xd, 1, bit(0) | bit(3), 0, 0, 0),  // xsaveopt xsaves
      entry(0x80000001, 0, 0, 0, bit(0) | bit(1),
            bit(0) | bit(20) | bit(29)),  // lahf_lm, cmp_legacy; fpu copy, nx, lm
  };
  const CpuFingerprint cpu = cpu_fingerprint(table);
  EXPECT_EQ(cpu.vendor, "GenuineIntel");
  EXPECT_EQ(cpu.family, 6u);
  EXPECT_EQ(cpu.model, 158u);
  EXPECT_EQ(cpu.stepping, 10u);
  EXPECT_EQ(cpu.features, (std::vector<std::string>{"avx2", "avx512f", "fpu", "fsrm", "gfni", "lahf_lm", "lm",
                                                    "nx", "sse2", "sse4_2", "x2apic", "xsaveopt", "xsaves"}));
  EXPECT_EQ(cpu.xsave_size, 2696u);
}

TEST(CpuFingerprint, ExtendedFamilyAddsToFamily15Only) {
  kvm::CpuidTable table;
  // An AMD Zen 3 signature: base family 0xF + extended 0xA = 0x19, extended
  // model 2 and model 1 = 0x21, stepping 0.
  table.entries() = {vendor_leaf("AuthenticAMD"), entry(1, 0, 0x00a20f10, 0, 0, 0)};
  CpuFingerprint cpu = cpu_fingerprint(table);
  EXPECT_EQ(cpu.vendor, "AuthenticAMD");
  EXPECT_EQ(cpu.family, 0x19u);
  EXPECT_EQ(cpu.model, 0x21u);
  EXPECT_EQ(cpu.stepping, 0u);

  // Family 5 ignores both extended fields.
  table.entries()[1] = entry(1, 0, 0x0ff00543, 0, 0, 0);
  cpu = cpu_fingerprint(table);
  EXPECT_EQ(cpu.family, 5u);
  EXPECT_EQ(cpu.model, 4u);
  EXPECT_EQ(cpu.stepping, 3u);
}

TEST(CpuFingerprint, XsaveSizeFallsBackToEbxAndAbsentLeavesGiveNothing) {
  kvm::CpuidTable table;
  table.entries() = {entry(0xd, 0, 0x7, 1088, 0, 0)};
  CpuFingerprint cpu = cpu_fingerprint(table);
  EXPECT_EQ(cpu.xsave_size, 1088u);
  EXPECT_TRUE(cpu.vendor.empty());
  EXPECT_TRUE(cpu.features.empty());

  // Subleaf 1 of leaf 7 is not subleaf 0: its bits name other features.
  table.entries() = {entry(7, 1, bit(4) | bit(5), bit(5), 0, 0)};
  cpu = cpu_fingerprint(table);
  EXPECT_EQ(cpu.features, (std::vector<std::string>{"avx512_bf16", "avx_vnni"}));
  EXPECT_EQ(cpu.xsave_size, 0u);
}

}  // namespace
}  // namespace molt::core::migration
