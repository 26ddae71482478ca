// The power-on state molt gives each vCPU: CPUID, the MSRs a guest expects,
// and LAPIC local interrupts. (The boot CPU's entry registers come from
// core/boot.)
#pragma once

#include <cstdint>

#include "core/kvm/kvm.hpp"

namespace molt::core::kvm {

// KVM's supported CPUID, patched for vCPU `index` of `count`: APIC ids, the
// hypervisor bit, the logical-processor count.
CpuidTable cpuid_for_vcpu(const CpuidTable& supported, unsigned index, unsigned count);

// MSRs, FPU and LAPIC LINT0 (ExtINT) / LINT1 (NMI), for every vCPU.
void setup_vcpu_common(Vcpu& vcpu, const std::vector<std::uint32_t>& supported_msrs);


}  // namespace molt::core::kvm
