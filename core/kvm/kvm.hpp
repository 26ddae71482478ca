// Thin RAII wrappers over /dev/kvm: the system, a VM, and a vCPU. They own
// fds and mappings and turn ioctl failures into sdk::Error sentences; they do
// not decide policy (layout, CPUID patching, exit handling live elsewhere).
#pragma once

#include "core/kvm/kvm_uapi.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace molt::core::kvm {

// An owned file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(other.release()) {}
  Fd& operator=(Fd&& other) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// CPUID entries in the layout KVM_SET_CPUID2 takes.
class CpuidTable {
 public:
  std::vector<kvm_cpuid_entry2>& entries() { return entries_; }
  const std::vector<kvm_cpuid_entry2>& entries() const { return entries_; }
  kvm_cpuid_entry2* find(std::uint32_t function, std::uint32_t index = 0);

 private:
  std::vector<kvm_cpuid_entry2> entries_;
};

class System {
 public:
  // Opens /dev/kvm and checks the API version; throws with what to do when it can't.
  System();
  int fd() const { return fd_.get(); }
  int check_extension(long capability) const;
  int vcpu_mmap_size() const;
  unsigned max_vcpus() const;
  CpuidTable supported_cpuid() const;
  // MSR indices KVM can save and restore (KVM_GET_MSR_INDEX_LIST).
  std::vector<std::uint32_t> msr_index_list() const;

 private:
  Fd fd_;
};

class Vm {
 public:
  explicit Vm(const System& system);
  int fd() const { return fd_.get(); }

  // In-kernel PIC + IOAPIC + LAPICs, and the in-kernel PIT.
  void create_irqchip_and_pit();
  void set_user_memory_region(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, void* host,
                              std::uint32_t flags = 0);
  void set_irq_line(unsigned gsi, bool level);
  // In-kernel PIC (chip 0 master, 1 slave) and IOAPIC (chip 2), and the PIT.
  kvm_irqchip get_irqchip(std::uint32_t chip) const;
  void set_irqchip(const kvm_irqchip& state);
  kvm_pit_state2 get_pit() const;
  void set_pit(const kvm_pit_state2& state);
  // Injects an MSI through the in-kernel LAPICs; false if KVM refused it.
  bool signal_msi(std::uint64_t address, std::uint32_t data);
  // Fills `bitmap` (one bit per 4 KiB page of the slot, 64-bit words) with
  // the pages written since the last call, and clears KVM's log. The slot
  // must have KVM_MEM_LOG_DIRTY_PAGES set.
  void get_dirty_log(std::uint32_t slot, std::uint64_t* bitmap);
  // The kvmclock as KVM_GET_CLOCK reports it, flags included; set_clock
  // passes `clock` through unchanged, so a caller that does not want KVM to
  // advance the clock by the realtime it carries must clear its flags.
  kvm_clock_data get_clock() const;
  void set_clock(const kvm_clock_data& clock);

 private:
  Fd fd_;
};

class Vcpu {
 public:
  Vcpu(const System& system, const Vm& vm, unsigned index);
  ~Vcpu();
  Vcpu(const Vcpu&) = delete;
  Vcpu& operator=(const Vcpu&) = delete;

  unsigned index() const { return index_; }
  int fd() const { return fd_.get(); }
  kvm_run* run_area() { return run_; }

  // Returns false when KVM_RUN was interrupted by a signal (EINTR/EAGAIN).
  bool run();

  void set_cpuid(const CpuidTable& cpuid);
  kvm_regs get_regs() const;
  void set_regs(const kvm_regs& regs);
  kvm_sregs get_sregs() const;
  void set_sregs(const kvm_sregs& sregs);
  kvm_fpu get_fpu() const;
  void set_fpu(const kvm_fpu& fpu);
  // The XSAVE area as bytes: KVM_GET_XSAVE2 with the size KVM_CAP_XSAVE2
  // gives for this VM when the kernel has it, else the 4096-byte KVM_GET_XSAVE.
  std::size_t xsave_size() const { return xsave_size_; }
  std::vector<std::uint8_t> get_xsave() const;
  // `area` must be exactly xsave_size() bytes: KVM reads that many.
  void set_xsave(std::span<const std::uint8_t> area);
  kvm_xcrs get_xcrs() const;
  void set_xcrs(const kvm_xcrs& xcrs);
  // Reads `indices` in order (in batches KVM accepts); throws naming the first
  // MSR KVM did not read.
  std::vector<kvm_msr_entry> get_msrs(const std::vector<std::uint32_t>& indices) const;
  // One MSR, or nothing when KVM refuses to read it (a probe, never throws for that).
  std::optional<std::uint64_t> read_msr(std::uint32_t index) const;
  void set_msrs(const std::vector<kvm_msr_entry>& msrs);
  kvm_mp_state get_mp_state() const;
  void set_mp_state(const kvm_mp_state& state);
  kvm_vcpu_events get_events() const;
  void set_events(const kvm_vcpu_events& events);
  kvm_lapic_state get_lapic() const;
  void set_lapic(const kvm_lapic_state& lapic);
  kvm_debugregs get_debugregs() const;
  void set_debugregs(const kvm_debugregs& debugregs);
  // The guest TSC frequency in kHz (KVM_GET_TSC_KHZ).
  std::uint32_t get_tsc_khz() const;

 private:
  void ioctl_or_throw(unsigned long request, void* arg, const char* what) const;
  unsigned index_;
  Fd fd_;
  kvm_run* run_ = nullptr;
  std::size_t run_size_ = 0;
  std::size_t xsave_size_ = sizeof(kvm_xsave);
  bool has_xsave2_ = false;
};

}  // namespace molt::core::kvm
