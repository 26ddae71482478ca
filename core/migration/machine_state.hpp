// The machine-level state a migration moves besides RAM and devices: every
// vCPU (regs, sregs, FPU/xsave, xcrs, MSRs including TSC and kvmclock,
// LAPIC, pending events, mp_state, debug registers), the in-kernel irqchip
// (PIC master/slave, IOAPIC), the PIT, the kvmclock, and the PCI host's
// 0xCF8 address latch. Each is an SDK state record (docs/state-format.md),
// so `molt migration dump` shows them field by field.
//
// Loading is two-phase, so nothing is applied before everything is known to
// be good: decode_*() turns a record into a validated plain struct (throws
// sdk::StateError naming the field), apply_*() hands it to KVM (throws
// sdk::Error naming the ioctl).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/kvm/kvm.hpp"

namespace molt::core::migration {

struct VcpuState;  // defined in machine_state.cpp
struct VmState;

// The MSRs of `supported` that this KVM really reads back on `vcpu` (KVM's
// list includes some it refuses); probed once per migration, before the
// guest stops.
std::vector<std::uint32_t> migratable_msrs(kvm::Vcpu& vcpu, const std::vector<std::uint32_t>& supported);

// Call with the vCPU parked (or never started).
std::vector<std::uint8_t> save_vcpu(kvm::Vcpu& vcpu, const std::vector<std::uint32_t>& msrs);

class DecodedVcpu {
 public:
  explicit DecodedVcpu(std::span<const std::uint8_t> record);  // throws sdk::StateError
  ~DecodedVcpu();
  DecodedVcpu(DecodedVcpu&&) noexcept;
  // The vCPU the record belongs to; apply() refuses any other.
  unsigned index() const;
  // Puts the state into a vCPU that has its CPUID set and has not run since.
  // Checks the vCPU index and this host's XSAVE size before the first ioctl.
  void apply(kvm::Vcpu& vcpu) const;

 private:
  std::unique_ptr<VcpuState> state_;
};

// PIC, IOAPIC, PIT, kvmclock. Call with every vCPU parked.
std::vector<std::uint8_t> save_vm(kvm::Vm& vm);

class DecodedVm {
 public:
  explicit DecodedVm(std::span<const std::uint8_t> record);  // throws sdk::StateError
  ~DecodedVm();
  DecodedVm(DecodedVm&&) noexcept;
  // Call after every vCPU's apply(), just before the vCPUs run: the kvmclock
  // is set here and stands still from the source's save until then.
  void apply(kvm::Vm& vm) const;

 private:
  std::unique_ptr<VmState> state_;
};

}  // namespace molt::core::migration
