#include "core/kvm/cpu_setup.hpp"

#include <algorithm>
#include <cstring>

namespace molt::core::kvm {

namespace {

constexpr std::uint32_t kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175, kMsrSysenterEip = 0x176;
constexpr std::uint32_t kMsrStar = 0xc0000081, kMsrLstar = 0xc0000082, kMsrCstar = 0xc0000083;
constexpr std::uint32_t kMsrSyscallMask = 0xc0000084, kMsrKernelGsBase = 0xc0000102;
constexpr std::uint32_t kMsrTsc = 0x10, kMsrMiscEnable = 0x1a0, kMsrMtrrDefType = 0x2ff;
constexpr std::uint64_t kMiscEnableFastStrings = 1;
constexpr std::uint64_t kMtrrEnableWriteBack = (1u << 11) | 6;  // MTRRs on, default type WB

constexpr std::uint32_t kLapicLvtLint0 = 0x350, kLapicLvtLint1 = 0x360;
constexpr std::uint32_t kDeliveryExtInt = 7 << 8, kDeliveryNmi = 4 << 8;

void set_lapic_lvt(kvm_lapic_state& lapic, std::uint32_t offset, std::uint32_t delivery) {
  std::uint32_t value;
  std::memcpy(&value, lapic.regs + offset, sizeof value);
  value = (value & ~0x700u & ~(1u << 16)) | delivery;  // delivery mode, unmasked
  std::memcpy(lapic.regs + offset, &value, sizeof value);
}

}  // namespace

CpuidTable cpuid_for_vcpu(const CpuidTable& supported, unsigned index, unsigned count) {
  CpuidTable table = supported;
  for (kvm_cpuid_entry2& e : table.entries()) {
    switch (e.function) {
      case 1:
        e.ebx = (index << 24) | ((count & 0xff) << 16) | (e.ebx & 0xffff);
        e.ecx |= 1u << 31;  // running under a hypervisor
        if (count > 1) e.edx |= 1u << 28;  // HTT: the count in EBX[23:16] is valid
        break;
      case 0xb:
      case 0x1f:
        e.edx = index;  // x2APIC id
        break;
      default:
        break;
    }
  }
  return table;
}

void setup_vcpu_common(Vcpu& vcpu, const std::vector<std::uint32_t>& supported_msrs) {
  const std::pair<std::uint32_t, std::uint64_t> wanted[] = {
      {kMsrSysenterCs, 0}, {kMsrSysenterEsp, 0},  {kMsrSysenterEip, 0},  {kMsrStar, 0},
      {kMsrLstar, 0},      {kMsrCstar, 0},        {kMsrSyscallMask, 0},  {kMsrKernelGsBase, 0},
      {kMsrTsc, 0},        {kMsrMiscEnable, kMiscEnableFastStrings}, {kMsrMtrrDefType, kMtrrEnableWriteBack},
  };
  std::vector<kvm_msr_entry> msrs;
  for (const auto& [index, value] : wanted) {
    if (std::find(supported_msrs.begin(), supported_msrs.end(), index) == supported_msrs.end()) continue;
    kvm_msr_entry e{};
    e.index = index;
    e.data = value;
    msrs.push_back(e);
  }
  vcpu.set_msrs(msrs);

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // x87 default control word
  fpu.mxcsr = 0x1f80;  // SSE exceptions masked
  vcpu.set_fpu(fpu);

  kvm_lapic_state lapic = vcpu.get_lapic();
  set_lapic_lvt(lapic, kLapicLvtLint0, kDeliveryExtInt);
  set_lapic_lvt(lapic, kLapicLvtLint1, kDeliveryNmi);
  vcpu.set_lapic(lapic);
}

}  // namespace molt::core::kvm
