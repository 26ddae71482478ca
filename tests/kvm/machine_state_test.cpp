// vCPU and VM state records against the real KVM: distinctive state saved
// from one VM, applied to a second, saved again and compared field by field;
// and a vCPU stopped mid-program that carries on in another VM.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "core/kvm/cpu_setup.hpp"
#include "core/kvm/kvm.hpp"
#include "core/migration/machine_state.hpp"

namespace molt::core::migration {
namespace {

constexpr std::size_t kRamSize = 1 << 20;
constexpr std::uint64_t kCodeAddress = 0x1000;
constexpr std::uint32_t kMsrTsc = 0x10, kMsrSysenterEip = 0x176, kMsrStar = 0xc0000081;
constexpr std::uint32_t kMsrLstar = 0xc0000082, kMsrKernelGsBase = 0xc0000102, kMsrTscDeadline = 0x6e0;

bool have_kvm() {
  return ::access("/dev/kvm", R_OK | W_OK) == 0;
}

#define SKIP_WITHOUT_KVM() \
  if (!have_kvm()) GTEST_SKIP() << "*** /dev/kvm is absent: machine state KVM tests NOT RUN ***"

// A VM with the in-kernel irqchip and PIT, 1 MiB of RAM at 0 and one vCPU set
// up the way molt sets up its vCPUs.
class TestVm {
 public:
  explicit TestVm(kvm::System& system) : vm_(system) {
    vm_.create_irqchip_and_pit();
    void* ram = ::mmap(nullptr, kRamSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ram == MAP_FAILED) throw std::runtime_error("mmap of the test RAM failed");
    ram_ = static_cast<std::uint8_t*>(ram);
    vm_.set_user_memory_region(0, 0, kRamSize, ram_);
    vcpu_ = std::make_unique<kvm::Vcpu>(system, vm_, 0);
    vcpu_->set_cpuid(kvm::cpuid_for_vcpu(system.supported_cpuid(), 0, 1));
    kvm::setup_vcpu_common(*vcpu_, system.msr_index_list());
  }
  ~TestVm() { ::munmap(ram_, kRamSize); }
  kvm::Vm& vm() { return vm_; }
  kvm::Vcpu& vcpu() { return *vcpu_; }
  std::uint8_t* ram() { return ram_; }

 private:
  kvm::Vm vm_;
  std::uint8_t* ram_ = nullptr;
  std::unique_ptr<kvm::Vcpu> vcpu_;
};

void set_lapic_reg(kvm_lapic_state& lapic, unsigned offset, std::uint32_t value) {
  std::memcpy(lapic.regs + offset, &value, sizeof value);
}

// Real mode (so the second VM's vCPU could run it), but every register,
// segment base and table distinctive.
void set_distinctive_cpu_state(kvm::Vcpu& vcpu) {
  kvm_sregs sregs = vcpu.get_sregs();
  sregs.ds.base = 0x12340, sregs.ds.selector = 0x1234;
  sregs.es.base = 0x23450, sregs.es.selector = 0x2345;
  sregs.fs.base = 0x34560, sregs.fs.selector = 0x3456;
  sregs.gs.base = 0x45670, sregs.gs.selector = 0x4567;
  sregs.ss.base = 0x56780, sregs.ss.selector = 0x5678;
  sregs.cs.base = 0, sregs.cs.selector = 0;
  sregs.cr2 = 0xdead0000;
  sregs.gdt.base = 0x7000, sregs.gdt.limit = 0x3f;
  sregs.idt.base = 0x8000, sregs.idt.limit = 0x3ff;
  vcpu.set_sregs(sregs);

  kvm_regs regs{};
  unsigned n = 0;
  for (__u64 kvm_regs::*gpr :
       {&kvm_regs::rax, &kvm_regs::rbx, &kvm_regs::rcx, &kvm_regs::rdx, &kvm_regs::rsi, &kvm_regs::rdi,
        &kvm_regs::rsp, &kvm_regs::rbp, &kvm_regs::r8, &kvm_regs::r9, &kvm_regs::r10, &kvm_regs::r11,
        &kvm_regs::r12, &kvm_regs::r13, &kvm_regs::r14, &kvm_regs::r15}) {
    regs.*gpr = 0x1111111111111111ull * (n % 15 + 1) + n;
    ++n;
  }
  regs.rip = kCodeAddress;
  regs.rflags = 0x2 | 0x40 | 0x4;  // reserved bit 1, ZF, PF
  vcpu.set_regs(regs);

  kvm_fpu fpu = vcpu.get_fpu();
  for (unsigned i = 0; i < 16; ++i) fpu.xmm[3][i] = static_cast<std::uint8_t>(0xa0 + i);
  vcpu.set_fpu(fpu);

  kvm_xcrs xcrs = vcpu.get_xcrs();
  ASSERT_GE(xcrs.nr_xcrs, 1u);
  xcrs.xcrs[0].value = 0x3;  // x87 and SSE
  vcpu.set_xcrs(xcrs);

  std::vector<kvm_msr_entry> msrs;
  for (auto [index, value] : {std::pair<std::uint32_t, std::uint64_t>{kMsrSysenterEip, 0x1234567},
                              {kMsrStar, 0x0023001000000000},
                              {kMsrLstar, 0xffffffff81000000},
                              {kMsrKernelGsBase, 0xffff888000000000},
                              {kMsrTsc, 1'000'000'000'000}}) {
    kvm_msr_entry e{};
    e.index = index;
    e.data = value;
    msrs.push_back(e);
  }
  vcpu.set_msrs(msrs);

  kvm_lapic_state lapic = vcpu.get_lapic();
  set_lapic_reg(lapic, 0x80, 0x20);                // TPR
  set_lapic_reg(lapic, 0xd0, 0x01000000);          // LDR
  set_lapic_reg(lapic, 0xf0, 0x1ff);               // SVR: enabled, vector 0xff
  set_lapic_reg(lapic, 0x320, (2u << 17) | 0xec);  // LVT timer: TSC deadline, vector 0xec
  set_lapic_reg(lapic, 0x3e0, 0xb);                // divide by 1
  vcpu.set_lapic(lapic);
  kvm_msr_entry deadline{};
  deadline.index = kMsrTscDeadline;
  deadline.data = 5'000'000'000'000;
  vcpu.set_msrs({deadline});

  kvm_vcpu_events events = vcpu.get_events();
  events.nmi.masked = 1;
  events.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
  vcpu.set_events(events);

  kvm_debugregs debugregs = vcpu.get_debugregs();
  debugregs.db[0] = 0x1000, debugregs.db[1] = 0x2000, debugregs.db[2] = 0x3000, debugregs.db[3] = 0x4000;
  debugregs.dr7 = 0x400 | 0x1;  // L0
  debugregs.flags = 0;
  vcpu.set_debugregs(debugregs);

  kvm_mp_state halted{};
  halted.mp_state = KVM_MP_STATE_HALTED;
  vcpu.set_mp_state(halted);
}

void set_distinctive_vm_state(kvm::Vm& vm) {
  kvm_irqchip master = vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER);
  master.chip.pic.irq_base = 0x20, master.chip.pic.imr = 0xfa, master.chip.pic.elcr = 0x08;
  master.chip.pic.elcr_mask = 0xf8;
  vm.set_irqchip(master);
  kvm_irqchip slave = vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE);
  slave.chip.pic.irq_base = 0x28, slave.chip.pic.imr = 0xbf, slave.chip.pic.special_fully_nested_mode = 1;
  vm.set_irqchip(slave);
  kvm_irqchip ioapic = vm.get_irqchip(KVM_IRQCHIP_IOAPIC);
  ioapic.chip.ioapic.redirtbl[4].bits = 0x0300000000010034ull;  // masked, vector 0x34, dest 3
  ioapic.chip.ioapic.redirtbl[9].bits = 0x000000000000a039ull;  // level, active low, vector 0x39
  ioapic.chip.ioapic.ioregsel = 0x18;
  vm.set_irqchip(ioapic);
  kvm_pit_state2 pit = vm.get_pit();
  pit.channels[0].count = 0x1234, pit.channels[0].mode = 2, pit.channels[0].rw_mode = 3;
  pit.channels[2].count = 0x0800, pit.channels[2].mode = 3, pit.channels[2].rw_mode = 3;
  vm.set_pit(pit);
  kvm_clock_data clock{};
  clock.clock = 10'000'000'000;  // 10 s
  vm.set_clock(clock);
}

std::map<std::string, sdk::DecodedField> flatten(const sdk::DecodedRecord& record,
                                                 const std::string& prefix = "") {
  std::map<std::string, sdk::DecodedField> out;
  for (const sdk::DecodedField& f : record.fields) {
    if (f.record) {
      out.merge(flatten(*f.record, prefix + f.name + "."));
    } else {
      out.emplace(prefix + f.name, f);
    }
  }
  return out;
}

std::uint64_t u64_at(const std::vector<std::uint8_t>& bytes, std::size_t offset, unsigned width = 8) {
  std::uint64_t v = 0;
  std::memcpy(&v, bytes.data() + offset, width);
  return v;
}

std::map<std::uint32_t, std::uint64_t> msr_map(const std::map<std::string, sdk::DecodedField>& fields) {
  const auto& indices = fields.at("msr_indices").payload;
  const auto& values = fields.at("msr_values").payload;
  std::map<std::uint32_t, std::uint64_t> msrs;
  for (std::size_t i = 0; i < indices.size() / 4; ++i)
    msrs[static_cast<std::uint32_t>(u64_at(indices, i * 4, 4))] = u64_at(values, i * 8);
  return msrs;
}

class MachineStateKvm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_kvm()) return;
    system_ = std::make_unique<kvm::System>();
  }
  std::unique_ptr<kvm::System> system_;
};

TEST_F(MachineStateKvm, AppliedStateSavesBackTheSame) {
  SKIP_WITHOUT_KVM();
  TestVm source(*system_);
  set_distinctive_cpu_state(source.vcpu());
  set_distinctive_vm_state(source.vm());
  const std::vector<std::uint32_t> msrs = migratable_msrs(source.vcpu(), system_->msr_index_list());
  ASSERT_NE(std::find(msrs.begin(), msrs.end(), kMsrTsc), msrs.end());
  ASSERT_NE(std::find(msrs.begin(), msrs.end(), kMsrTscDeadline), msrs.end());
  const std::vector<std::uint8_t> vcpu_record = save_vcpu(source.vcpu(), msrs);
  const std::vector<std::uint8_t> vm_record = save_vm(source.vm());

  TestVm destination(*system_);
  DecodedVcpu(vcpu_record).apply(destination.vcpu());
  DecodedVm(vm_record).apply(destination.vm());
  const auto vcpu_again = flatten(sdk::decode_record(save_vcpu(destination.vcpu(), msrs)));
  const auto vm_again = flatten(sdk::decode_record(save_vm(destination.vm())));
  const auto vcpu_before = flatten(sdk::decode_record(vcpu_record));
  const auto vm_before = flatten(sdk::decode_record(vm_record));

  // The distinctive values made it into the record in the first place.
  EXPECT_EQ(u64_at(vcpu_before.at("regs.rbx").payload, 0), 0x2222222222222223ull);
  EXPECT_EQ(u64_at(vcpu_before.at("ds.base").payload, 0), 0x12340u);
  EXPECT_EQ(u64_at(vcpu_before.at("mp_state").payload, 0, 4), unsigned{KVM_MP_STATE_HALTED});
  EXPECT_EQ(u64_at(vm_before.at("pit-channel0.count").payload, 0, 4), 0x1234u);

  ASSERT_EQ(vcpu_before.size(), vcpu_again.size());
  for (const auto& [name, field] : vcpu_before) {
    if (name == "msr_values" || name == "lapic") continue;  // compared below
    EXPECT_EQ(field.payload, vcpu_again.at(name).payload) << "kvm-vcpu." << name;
  }
  // The LAPIC page is equal but for the timer's current count (0x390), which runs.
  std::vector<std::uint8_t> lapic_before = vcpu_before.at("lapic").payload;
  std::vector<std::uint8_t> lapic_again = vcpu_again.at("lapic").payload;
  std::fill_n(lapic_before.begin() + 0x390, 4, 0);
  std::fill_n(lapic_again.begin() + 0x390, 4, 0);
  EXPECT_EQ(lapic_before, lapic_again);

  const auto msrs_before = msr_map(vcpu_before), msrs_again = msr_map(vcpu_again);
  for (const auto& [index, value] : msrs_before) {
    if (index == kMsrTsc) continue;
    EXPECT_EQ(value, msrs_again.at(index)) << "MSR 0x" << std::hex << index;
  }
  EXPECT_EQ(msrs_before.at(kMsrStar), 0x0023001000000000u);
  EXPECT_EQ(msrs_before.at(kMsrTscDeadline), 5'000'000'000'000u);
  // The TSC went on from where the source left it, by less than a second.
  const std::uint64_t tsc_hz = std::uint64_t{source.vcpu().get_tsc_khz()} * 1000;
  EXPECT_GE(msrs_again.at(kMsrTsc), msrs_before.at(kMsrTsc));
  EXPECT_LT(msrs_again.at(kMsrTsc) - msrs_before.at(kMsrTsc), tsc_hz);

  ASSERT_EQ(vm_before.size(), vm_again.size());
  for (const auto& [name, field] : vm_before) {
    if (name == "clock" || name == "clock_flags" || name.ends_with("count_load_time")) continue;
    EXPECT_EQ(field.payload, vm_again.at(name).payload) << "kvm-vm." << name;
  }
  const std::uint64_t clock_before = u64_at(vm_before.at("clock").payload, 0);
  const std::uint64_t clock_again = u64_at(vm_again.at("clock").payload, 0);
  EXPECT_GE(clock_before, 10'000'000'000u);
  EXPECT_GE(clock_again, clock_before);
  EXPECT_LT(clock_again - clock_before, 1'000'000'000u);
}

// mov %bx,%ax; out %al,$0x80; mov $0x1234,%ax; out %al,$0x81; mov %ah,%al; out %al,$0x82
constexpr std::uint8_t kProgram[] = {0x89, 0xd8, 0xe6, 0x80, 0xb8, 0x34, 0x12,
                                     0xe6, 0x81, 0x88, 0xe0, 0xe6, 0x82, 0xf4};

struct PortWrite {
  std::uint16_t port;
  std::uint8_t value;
};

PortWrite run_to_port_write(kvm::Vcpu& vcpu) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (!vcpu.run()) continue;
    kvm_run* run = vcpu.run_area();
    if (run->exit_reason != KVM_EXIT_IO || run->io.direction != KVM_EXIT_IO_OUT) {
      throw std::runtime_error("vCPU exited with reason " + std::to_string(run->exit_reason));
    }
    const auto* data = reinterpret_cast<const std::uint8_t*>(run) + run->io.data_offset;
    return {run->io.port, *data};
  }
  throw std::runtime_error("KVM_RUN kept being interrupted");
}

// KVM finishes an OUT (advances RIP) only when KVM_RUN is entered again; with
// immediate_exit set it does that and returns at once, leaving consistent state.
void complete_pending_io(kvm::Vcpu& vcpu) {
  vcpu.run_area()->immediate_exit = 1;
  EXPECT_FALSE(vcpu.run());
  vcpu.run_area()->immediate_exit = 0;
}

TEST_F(MachineStateKvm, VcpuStoppedMidProgramCarriesOnInAnotherVm) {
  SKIP_WITHOUT_KVM();
  TestVm source(*system_);
  std::memcpy(source.ram() + kCodeAddress, kProgram, sizeof kProgram);
  kvm_sregs sregs = source.vcpu().get_sregs();
  sregs.cs.base = 0, sregs.cs.selector = 0;
  source.vcpu().set_sregs(sregs);
  kvm_regs regs{};
  regs.rip = kCodeAddress;
  regs.rflags = 0x2;
  regs.rbx = 0x5678;
  source.vcpu().set_regs(regs);

  const PortWrite first = run_to_port_write(source.vcpu());
  EXPECT_EQ(first.port, 0x80);
  EXPECT_EQ(first.value, 0x78);
  complete_pending_io(source.vcpu());
  const std::vector<std::uint32_t> msrs = migratable_msrs(source.vcpu(), system_->msr_index_list());
  const std::vector<std::uint8_t> vcpu_record = save_vcpu(source.vcpu(), msrs);
  const std::vector<std::uint8_t> vm_record = save_vm(source.vm());

  TestVm destination(*system_);
  std::memcpy(destination.ram(), source.ram(), kRamSize);
  DecodedVcpu(vcpu_record).apply(destination.vcpu());
  DecodedVm(vm_record).apply(destination.vm());
  EXPECT_EQ(destination.vcpu().get_regs().rip, kCodeAddress + 4);

  const PortWrite second = run_to_port_write(destination.vcpu());
  EXPECT_EQ(second.port, 0x81);
  EXPECT_EQ(second.value, 0x34);
  const PortWrite third = run_to_port_write(destination.vcpu());
  EXPECT_EQ(third.port, 0x82);
  EXPECT_EQ(third.value, 0x12);
}

TEST_F(MachineStateKvm, ApplyRefusesAnotherVcpusState) {
  SKIP_WITHOUT_KVM();
  TestVm source(*system_);
  const std::vector<std::uint8_t> record = save_vcpu(source.vcpu(), {});
  kvm::Vm vm(*system_);
  vm.create_irqchip_and_pit();
  kvm::Vcpu vcpu0(*system_, vm, 0);
  kvm::Vcpu vcpu1(*system_, vm, 1);
  try {
    DecodedVcpu(record).apply(vcpu1);
    FAIL() << "vCPU 1 took vCPU 0's state";
  } catch (const sdk::Error& e) {
    EXPECT_STREQ(e.what(), "the state of vCPU 0 cannot go into vCPU 1");
  }
}

}  // namespace
}  // namespace molt::core::migration
