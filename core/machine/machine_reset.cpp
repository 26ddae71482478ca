// A machine reset: KVM's power-on state captured once the VM is built, and
// put back under a pause together with every device's reset().
#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "core/boot/firmware.hpp"
#include "core/kvm/cpu_setup.hpp"
#include "core/machine/machine.hpp"

namespace molt::core::machine {

namespace {

// KVM's paravirtual MSRs a guest turns on (kvmclock, async page faults, steal
// time, PV EOI): a reset turns them off, as they are at power-on. The wall
// clock MSR is left alone: writing it makes KVM write guest memory.
constexpr std::uint32_t kKvmParavirtMsrs[] = {0x4b564d01, 0x4b564d02, 0x4b564d03, 0x4b564d04,
                                              0x12, 0x13};  // and the legacy system-time MSR pair

}  // namespace

void Machine::capture_power_on() {
  power_on_ = std::make_unique<PowerOnState>();
  for (std::uint32_t chip : {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC})
    power_on_->irqchips.push_back(vm_.get_irqchip(chip));
  power_on_->pit = vm_.get_pit();
  for (std::size_t i = 0; i < vcpus_.size(); ++i) {
    const kvm::Vcpu& vcpu = this->vcpu(i);
    power_on_->vcpus.push_back(
        VcpuPowerOn{vcpu.get_regs(), vcpu.get_sregs(), vcpu.get_lapic(), vcpu.get_mp_state(), vcpu.get_events()});
  }
}

void Machine::restore_power_on() {
  for (const kvm_irqchip& chip : power_on_->irqchips) vm_.set_irqchip(chip);
  vm_.set_pit(power_on_->pit);
  std::vector<kvm_msr_entry> paravirt_off;
  for (std::uint32_t index : kKvmParavirtMsrs) {
    if (std::find(supported_msrs_.begin(), supported_msrs_.end(), index) == supported_msrs_.end()) continue;
    kvm_msr_entry e{};
    e.index = index;
    paravirt_off.push_back(e);
  }
  for (std::size_t i = 0; i < vcpus_.size(); ++i) {
    kvm::Vcpu& vcpu = this->vcpu(i);
    const VcpuPowerOn& at = power_on_->vcpus[i];
    vcpu.set_msrs(paravirt_off);
    kvm::setup_vcpu_common(vcpu, supported_msrs_);  // MSRs, FPU, LINT0/LINT1
    vcpu.set_sregs(at.sregs);
    vcpu.set_regs(at.regs);
    vcpu.set_lapic(at.lapic);
    vcpu.set_events(at.events);
    vcpu.set_mp_state(at.mp_state);  // APs back to waiting for INIT/SIPI
  }
}

bool Machine::reset(std::chrono::milliseconds timeout) {
  std::lock_guard control(control_mutex_);
  if (!controls_held().empty()) return false;
  const bool was_running = state_ == RunState::Running;
  if (was_running && !pause_unchecked(timeout)) return false;
  if (state_ != RunState::Paused) return false;

  restore_power_on();
  for (auto& d : devices_) {
    std::lock_guard lock(d->lock());
    d->device().reset();
  }
  // The image may have been overwritten by the guest: load it again. The
  // boot vCPU's entry comes from the image (a machine that arrived by
  // migration never loaded it before).
  if (firmware_) firmware_->refill();
  set_entry_state(vcpu(0), load_image(config_));
  log_->info("machine reset");
  if (state_listener_) state_listener_(RunState::Paused, "reset");
  return was_running ? resume_unchecked() : true;
}

}  // namespace molt::core::machine
