#include "core/kvm/kvm.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <molt/sdk/error.hpp>

namespace molt::core::kvm {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw sdk::Error(what + ": " + std::strerror(errno));
}

std::string hex(std::uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%x", value);
  return text;
}

// KVM refuses KVM_GET_MSRS/KVM_SET_MSRS batches of 256 entries or more (MAX_IO_MSRS).
constexpr std::size_t kMaxMsrBatch = 255;

}  // namespace

Fd& Fd::operator=(Fd&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

kvm_cpuid_entry2* CpuidTable::find(std::uint32_t function, std::uint32_t index) {
  for (auto& e : entries_) {
    if (e.function == function && e.index == index) return &e;
  }
  return nullptr;
}

System::System() : fd_(::open("/dev/kvm", O_RDWR | O_CLOEXEC)) {
  if (!fd_) {
    throw sdk::Error(std::string("cannot open /dev/kvm: ") + std::strerror(errno) +
                     "; molt needs KVM (is the kvm module loaded and are you in the kvm group?)");
  }
  const int version = ::ioctl(fd_.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    throw sdk::Error("/dev/kvm speaks KVM API " + std::to_string(version) + ", molt needs " +
                     std::to_string(KVM_API_VERSION));
  }
  for (long cap : {KVM_CAP_IRQCHIP, KVM_CAP_PIT2, KVM_CAP_USER_MEMORY, KVM_CAP_EXT_CPUID}) {
    if (check_extension(cap) <= 0) {
      throw sdk::Error("this KVM lacks capability " + std::to_string(cap) + " that molt requires");
    }
  }
}

int System::check_extension(long capability) const {
  return ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
}

int System::vcpu_mmap_size() const {
  const int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) fail("KVM_GET_VCPU_MMAP_SIZE");
  return size;
}

unsigned System::max_vcpus() const {
  int n = check_extension(KVM_CAP_MAX_VCPUS);
  if (n <= 0) n = check_extension(KVM_CAP_NR_VCPUS);
  return n > 0 ? static_cast<unsigned>(n) : 1;
}

CpuidTable System::supported_cpuid() const {
  for (std::size_t n = 128; n <= 4096; n *= 2) {
    std::vector<std::uint8_t> buffer(sizeof(kvm_cpuid2) + n * sizeof(kvm_cpuid_entry2));
    auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.data());
    cpuid->nent = static_cast<std::uint32_t>(n);
    if (::ioctl(fd_.get(), KVM_GET_SUPPORTED_CPUID, cpuid) == 0) {
      CpuidTable table;
      table.entries().assign(cpuid->entries, cpuid->entries + cpuid->nent);
      return table;
    }
    if (errno != E2BIG) fail("KVM_GET_SUPPORTED_CPUID");
  }
  throw sdk::Error("KVM_GET_SUPPORTED_CPUID: more than 4096 entries");
}

std::vector<std::uint32_t> System::msr_index_list() const {
  kvm_msr_list probe{};
  ::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, &probe);  // E2BIG, fills nmsrs
  std::vector<std::uint8_t> buffer(sizeof(kvm_msr_list) + probe.nmsrs * sizeof(std::uint32_t));
  auto* list = reinterpret_cast<kvm_msr_list*>(buffer.data());
  list->nmsrs = probe.nmsrs;
  if (::ioctl(fd_.get(), KVM_GET_MSR_INDEX_LIST, list) < 0) fail("KVM_GET_MSR_INDEX_LIST");
  return {list->indices, list->indices + list->nmsrs};
}

Vm::Vm(const System& system) : fd_(::ioctl(system.fd(), KVM_CREATE_VM, 0)) {
  if (!fd_) fail("KVM_CREATE_VM");
  // Real-mode support areas for VMX; they sit in the MMIO hole below the BIOS.
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, 0xfffbd000ul) < 0) fail("KVM_SET_TSS_ADDR");
  std::uint64_t identity_map = 0xfffbc000;
  if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity_map) < 0) fail("KVM_SET_IDENTITY_MAP_ADDR");
}

void Vm::create_irqchip_and_pit() {
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) < 0) fail("KVM_CREATE_IRQCHIP");
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &pit) < 0) fail("KVM_CREATE_PIT2");
}

void Vm::set_user_memory_region(std::uint32_t slot, std::uint64_t gpa, std::uint64_t size, void* host,
                                std::uint32_t flags) {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = gpa;
  region.memory_size = size;
  region.userspace_addr = reinterpret_cast<std::uint64_t>(host);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) < 0) fail("KVM_SET_USER_MEMORY_REGION");
}

void Vm::set_irq_line(unsigned gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  // Failure here means a programming error (bad GSI), never guest input.
  ::ioctl(fd_.get(), KVM_IRQ_LINE, &irq);
}

kvm_irqchip Vm::get_irqchip(std::uint32_t chip) const {
  kvm_irqchip state{};
  state.chip_id = chip;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &state) < 0) fail("KVM_GET_IRQCHIP");
  return state;
}

void Vm::set_irqchip(const kvm_irqchip& state) {
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &state) < 0) fail("KVM_SET_IRQCHIP");
}

kvm_pit_state2 Vm::get_pit() const {
  kvm_pit_state2 state{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &state) < 0) fail("KVM_GET_PIT2");
  return state;
}

void Vm::set_pit(const kvm_pit_state2& state) {
  if (::ioctl(fd_.get(), KVM_SET_PIT2, &state) < 0) fail("KVM_SET_PIT2");
}

void Vm::get_dirty_log(std::uint32_t slot, std::uint64_t* bitmap) {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap;
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) < 0) fail("KVM_GET_DIRTY_LOG");
}

kvm_clock_data Vm::get_clock() const {
  kvm_clock_data clock{};
  if (::ioctl(fd_.get(), KVM_GET_CLOCK, &clock) < 0) fail("KVM_GET_CLOCK");
  return clock;
}

void Vm::set_clock(const kvm_clock_data& clock) {
  if (::ioctl(fd_.get(), KVM_SET_CLOCK, &clock) < 0) fail("KVM_SET_CLOCK");
}

bool Vm::signal_msi(std::uint64_t address, std::uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<std::uint32_t>(address);
  msi.address_hi = static_cast<std::uint32_t>(address >> 32);
  msi.data = data;
  return ::ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi) >= 0;
}

Vcpu::Vcpu(const System& system, const Vm& vm, unsigned index)
    : index_(index), fd_(::ioctl(vm.fd(), KVM_CREATE_VCPU, static_cast<unsigned long>(index))) {
  if (!fd_) fail("KVM_CREATE_VCPU " + std::to_string(index));
  run_size_ = static_cast<std::size_t>(system.vcpu_mmap_size());
  void* area = ::mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (area == MAP_FAILED) fail("mmap of the kvm_run area");
  run_ = static_cast<kvm_run*>(area);
  // KVM_CAP_XSAVE2 on the VM fd answers the XSAVE area's size (at least 4096).
  const int xsave2 = ::ioctl(vm.fd(), KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
  if (xsave2 >= static_cast<int>(sizeof(kvm_xsave))) {
    has_xsave2_ = true;
    xsave_size_ = static_cast<std::size_t>(xsave2);
  }
}

Vcpu::~Vcpu() {
  if (run_) ::munmap(run_, run_size_);
}

bool Vcpu::run() {
  if (::ioctl(fd_.get(), KVM_RUN, 0) == 0) return true;
  if (errno == EINTR || errno == EAGAIN) return false;
  fail("KVM_RUN on vCPU " + std::to_string(index_));
}

void Vcpu::ioctl_or_throw(unsigned long request, void* arg, const char* what) const {
  if (::ioctl(fd_.get(), request, arg) < 0) fail(std::string(what) + " on vCPU " + std::to_string(index_));
}

void Vcpu::set_cpuid(const CpuidTable& table) {
  std::vector<std::uint8_t> buffer(sizeof(kvm_cpuid2) + table.entries().size() * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buffer.data());
  cpuid->nent = static_cast<std::uint32_t>(table.entries().size());
  std::memcpy(cpuid->entries, table.entries().data(), table.entries().size() * sizeof(kvm_cpuid_entry2));
  ioctl_or_throw(KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
}

kvm_regs Vcpu::get_regs() const {
  kvm_regs regs{};
  ioctl_or_throw(KVM_GET_REGS, &regs, "KVM_GET_REGS");
  return regs;
}

void Vcpu::set_regs(const kvm_regs& regs) {
  ioctl_or_throw(KVM_SET_REGS, const_cast<kvm_regs*>(&regs), "KVM_SET_REGS");
}

kvm_sregs Vcpu::get_sregs() const {
  kvm_sregs sregs{};
  ioctl_or_throw(KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
  return sregs;
}

void Vcpu::set_sregs(const kvm_sregs& sregs) {
  ioctl_or_throw(KVM_SET_SREGS, const_cast<kvm_sregs*>(&sregs), "KVM_SET_SREGS");
}

kvm_fpu Vcpu::get_fpu() const {
  kvm_fpu fpu{};
  ioctl_or_throw(KVM_GET_FPU, &fpu, "KVM_GET_FPU");
  return fpu;
}

std::vector<std::uint8_t> Vcpu::get_xsave() const {
  // kvm_xsave's alignment, whatever the area's size.
  std::vector<std::uint32_t> words((xsave_size_ + 3) / 4);
  if (has_xsave2_) {
    ioctl_or_throw(KVM_GET_XSAVE2, words.data(), "KVM_GET_XSAVE2");
  } else {
    ioctl_or_throw(KVM_GET_XSAVE, words.data(), "KVM_GET_XSAVE");
  }
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(words.data());
  return {bytes, bytes + xsave_size_};
}

void Vcpu::set_xsave(std::span<const std::uint8_t> area) {
  if (area.size() != xsave_size_) {
    throw sdk::Error("KVM_SET_XSAVE on vCPU " + std::to_string(index_) + ": the area is " +
                     std::to_string(area.size()) + " bytes, this KVM's XSAVE area is " +
                     std::to_string(xsave_size_));
  }
  std::vector<std::uint32_t> words((xsave_size_ + 3) / 4);
  std::memcpy(words.data(), area.data(), area.size());
  ioctl_or_throw(KVM_SET_XSAVE, words.data(), "KVM_SET_XSAVE");
}

kvm_xcrs Vcpu::get_xcrs() const {
  kvm_xcrs xcrs{};
  ioctl_or_throw(KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS");
  return xcrs;
}

void Vcpu::set_xcrs(const kvm_xcrs& xcrs) {
  ioctl_or_throw(KVM_SET_XCRS, const_cast<kvm_xcrs*>(&xcrs), "KVM_SET_XCRS");
}

std::vector<kvm_msr_entry> Vcpu::get_msrs(const std::vector<std::uint32_t>& indices) const {
  std::vector<kvm_msr_entry> result;
  result.reserve(indices.size());
  for (std::size_t start = 0; start < indices.size(); start += kMaxMsrBatch) {
    const std::size_t count = std::min(kMaxMsrBatch, indices.size() - start);
    std::vector<std::uint8_t> buffer(sizeof(kvm_msrs) + count * sizeof(kvm_msr_entry));
    auto* msrs = reinterpret_cast<kvm_msrs*>(buffer.data());
    msrs->nmsrs = static_cast<std::uint32_t>(count);
    for (std::size_t i = 0; i < count; ++i) msrs->entries[i].index = indices[start + i];
    const int read = ::ioctl(fd_.get(), KVM_GET_MSRS, msrs);
    if (read < 0) fail("KVM_GET_MSRS on vCPU " + std::to_string(index_));
    if (static_cast<std::size_t>(read) != count) {
      throw sdk::Error("KVM_GET_MSRS on vCPU " + std::to_string(index_) + " did not read MSR " +
                       hex(indices[start + static_cast<std::size_t>(read)]));
    }
    result.insert(result.end(), msrs->entries, msrs->entries + count);
  }
  return result;
}

std::optional<std::uint64_t> Vcpu::read_msr(std::uint32_t index) const {
  alignas(kvm_msr_entry) std::uint8_t buffer[sizeof(kvm_msrs) + sizeof(kvm_msr_entry)] = {};
  auto* msrs = reinterpret_cast<kvm_msrs*>(buffer);
  auto* entry = reinterpret_cast<kvm_msr_entry*>(buffer + sizeof(kvm_msrs));
  msrs->nmsrs = 1;
  entry->index = index;
  if (::ioctl(fd_.get(), KVM_GET_MSRS, msrs) != 1) return std::nullopt;
  return entry->data;
}

void Vcpu::set_fpu(const kvm_fpu& fpu) {
  ioctl_or_throw(KVM_SET_FPU, const_cast<kvm_fpu*>(&fpu), "KVM_SET_FPU");
}

void Vcpu::set_msrs(const std::vector<kvm_msr_entry>& entries) {
  std::vector<std::uint8_t> buffer(sizeof(kvm_msrs) + entries.size() * sizeof(kvm_msr_entry));
  auto* msrs = reinterpret_cast<kvm_msrs*>(buffer.data());
  msrs->nmsrs = static_cast<std::uint32_t>(entries.size());
  std::memcpy(msrs->entries, entries.data(), entries.size() * sizeof(kvm_msr_entry));
  const int set = ::ioctl(fd_.get(), KVM_SET_MSRS, msrs);
  if (set < 0) fail("KVM_SET_MSRS on vCPU " + std::to_string(index_));
  if (static_cast<std::size_t>(set) != entries.size()) {
    throw sdk::Error("KVM_SET_MSRS on vCPU " + std::to_string(index_) + " refused MSR " +
                     hex(entries[static_cast<std::size_t>(set)].index));
  }
}

kvm_mp_state Vcpu::get_mp_state() const {
  kvm_mp_state state{};
  ioctl_or_throw(KVM_GET_MP_STATE, &state, "KVM_GET_MP_STATE");
  return state;
}

void Vcpu::set_mp_state(const kvm_mp_state& state) {
  ioctl_or_throw(KVM_SET_MP_STATE, const_cast<kvm_mp_state*>(&state), "KVM_SET_MP_STATE");
}

kvm_vcpu_events Vcpu::get_events() const {
  kvm_vcpu_events events{};
  ioctl_or_throw(KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS");
  return events;
}

void Vcpu::set_events(const kvm_vcpu_events& events) {
  ioctl_or_throw(KVM_SET_VCPU_EVENTS, const_cast<kvm_vcpu_events*>(&events), "KVM_SET_VCPU_EVENTS");
}

kvm_lapic_state Vcpu::get_lapic() const {
  kvm_lapic_state lapic{};
  ioctl_or_throw(KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC");
  return lapic;
}

void Vcpu::set_lapic(const kvm_lapic_state& lapic) {
  ioctl_or_throw(KVM_SET_LAPIC, const_cast<kvm_lapic_state*>(&lapic), "KVM_SET_LAPIC");
}

kvm_debugregs Vcpu::get_debugregs() const {
  kvm_debugregs debugregs{};
  ioctl_or_throw(KVM_GET_DEBUGREGS, &debugregs, "KVM_GET_DEBUGREGS");
  return debugregs;
}

void Vcpu::set_debugregs(const kvm_debugregs& debugregs) {
  ioctl_or_throw(KVM_SET_DEBUGREGS, const_cast<kvm_debugregs*>(&debugregs), "KVM_SET_DEBUGREGS");
}

std::uint32_t Vcpu::get_tsc_khz() const {
  const int khz = ::ioctl(fd_.get(), KVM_GET_TSC_KHZ, 0);
  if (khz <= 0) fail("KVM_GET_TSC_KHZ on vCPU " + std::to_string(index_));
  return static_cast<std::uint32_t>(khz);
}

}  // namespace molt::core::kvm
