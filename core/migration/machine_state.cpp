// vCPU and VM state records (see machine_state.hpp).
//
// "kvm-vcpu" v1 carries the general registers (subsection "regs"), the eight
// segment registers (subsections "cs" ... "ldt"), the control registers and
// descriptor tables of KVM_GET_SREGS, the XSAVE area, the XCRs, the MSRs, the
// LAPIC page, the pending events, mp_state and the debug registers.
// "kvm-vm" v1 carries the two PICs, the IOAPIC, the three PIT channels and the
// kvmclock. Kernel structs that are flat lists of integers (kvm_regs,
// kvm_segment, kvm_pic_state, kvm_pit_channel_state) are described directly;
// the rest are flattened into named fields so a dump reads like the SDM.
#include "core/migration/machine_state.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string>
#include <unordered_set>

#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

namespace molt::core::migration {

using sdk::StateDescriptor;
using sdk::StateDescriptorBuilder;
using sdk::StateError;

struct VcpuState {
  std::uint32_t vcpu_index = 0;
  kvm_regs regs{};
  kvm_segment cs{}, ds{}, es{}, fs{}, gs{}, ss{}, tr{}, ldt{};
  std::uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0, efer = 0, apic_base = 0;
  std::uint64_t gdt_base = 0, idt_base = 0;
  std::uint16_t gdt_limit = 0, idt_limit = 0;
  std::array<std::uint64_t, 4> interrupt_bitmap{};
  std::vector<std::uint8_t> xsave;
  std::vector<std::uint32_t> xcr_indices;
  std::vector<std::uint64_t> xcr_values;
  std::vector<std::uint32_t> msr_indices;
  std::vector<std::uint64_t> msr_values;
  std::array<std::uint8_t, KVM_APIC_REG_SIZE> lapic{};
  // kvm_vcpu_events, flattened.
  std::uint8_t exception_injected = 0, exception_nr = 0, exception_has_error_code = 0, exception_pending = 0;
  std::uint32_t exception_error_code = 0;
  std::uint8_t exception_has_payload = 0;
  std::uint64_t exception_payload = 0;
  std::uint8_t interrupt_injected = 0, interrupt_nr = 0, interrupt_soft = 0, interrupt_shadow = 0;
  std::uint8_t nmi_injected = 0, nmi_pending = 0, nmi_masked = 0;
  std::uint32_t sipi_vector = 0, events_flags = 0;
  std::uint8_t smi_smm = 0, smi_pending = 0, smi_inside_nmi = 0, smi_latched_init = 0;
  std::uint8_t triple_fault_pending = 0;
  std::uint32_t mp_state = 0;
  std::array<std::uint64_t, 4> dr{};
  std::uint64_t dr6 = 0, dr7 = 0;
};

struct IoapicState {
  std::uint64_t base_address = 0;
  std::uint32_t ioregsel = 0, id = 0, irr = 0;
  std::array<std::uint64_t, KVM_IOAPIC_NUM_PINS> redirtbl{};
};

struct VmState {
  kvm_pic_state pic_master{}, pic_slave{};
  IoapicState ioapic{};
  kvm_pit_channel_state pit_channel0{}, pit_channel1{}, pit_channel2{};
  std::uint32_t pit_flags = 0;
  std::uint64_t clock = 0;
  std::uint32_t clock_flags = 0;
};

namespace {

constexpr std::uint32_t kMsrTscDeadline = 0x6e0;
// KVM refuses KVM_SET_MSRS batches of 256 entries or more.
constexpr std::size_t kMsrBatch = 255;
// More than KVM's MSR list has ever held; bounds a record's arrays.
constexpr std::size_t kMaxMsrs = 4096;
constexpr std::size_t kMaxXcrs = 16;  // KVM_MAX_XCRS
constexpr std::size_t kMaxXsave = 1 << 20;
constexpr std::uint32_t kKnownEventFlags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
                                           KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM |
                                           KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT;
constexpr std::uint32_t kKnownClockFlags = KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC;
constexpr std::uint32_t kKnownPitFlags = KVM_PIT_FLAGS_HPET_LEGACY | KVM_PIT_FLAGS_SPEAKER_DATA_ON;

void require_at_most(const char* field, std::uint64_t value, std::uint64_t limit) {
  if (value > limit) {
    throw StateError(field,
                     "holds " + std::to_string(value) + ", at most " + std::to_string(limit) + " is valid");
  }
}

void require_flag(const char* field, std::uint8_t value) {
  require_at_most(field, value, 1);
}

// ---- vCPU descriptors ----

const StateDescriptor& regs_descriptor() {
  static const StateDescriptor d = StateDescriptorBuilder<kvm_regs>("regs", 1)
                                       .field("rax", &kvm_regs::rax)
                                       .field("rbx", &kvm_regs::rbx)
                                       .field("rcx", &kvm_regs::rcx)
                                       .field("rdx", &kvm_regs::rdx)
                                       .field("rsi", &kvm_regs::rsi)
                                       .field("rdi", &kvm_regs::rdi)
                                       .field("rsp", &kvm_regs::rsp)
                                       .field("rbp", &kvm_regs::rbp)
                                       .field("r8", &kvm_regs::r8)
                                       .field("r9", &kvm_regs::r9)
                                       .field("r10", &kvm_regs::r10)
                                       .field("r11", &kvm_regs::r11)
                                       .field("r12", &kvm_regs::r12)
                                       .field("r13", &kvm_regs::r13)
                                       .field("r14", &kvm_regs::r14)
                                       .field("r15", &kvm_regs::r15)
                                       .field("rip", &kvm_regs::rip)
                                       .field("rflags", &kvm_regs::rflags)
                                       .build();
  return d;
}

void validate_segment(const kvm_segment& s, std::uint32_t) {
  require_at_most("type", s.type, 15);
  require_at_most("dpl", s.dpl, 3);
  require_flag("present", s.present);
  require_flag("db", s.db);
  require_flag("s", s.s);
  require_flag("l", s.l);
  require_flag("g", s.g);
  require_flag("avl", s.avl);
  require_flag("unusable", s.unusable);
  if (s.l && s.db) throw StateError("db", "is set together with l, which no x86 segment allows");
}

// One descriptor per segment register: a subsection's name is its descriptor's.
StateDescriptor make_segment_descriptor(const char* name) {
  return StateDescriptorBuilder<kvm_segment>(name, 1)
      .field("base", &kvm_segment::base)
      .field("limit", &kvm_segment::limit)
      .field("selector", &kvm_segment::selector)
      .field("type", &kvm_segment::type)
      .field("present", &kvm_segment::present)
      .field("dpl", &kvm_segment::dpl)
      .field("db", &kvm_segment::db)
      .field("s", &kvm_segment::s)
      .field("l", &kvm_segment::l)
      .field("g", &kvm_segment::g)
      .field("avl", &kvm_segment::avl)
      .field("unusable", &kvm_segment::unusable)
      .post_load(validate_segment)
      .build();
}

struct SegmentDescriptors {
  StateDescriptor cs = make_segment_descriptor("cs"), ds = make_segment_descriptor("ds"),
                  es = make_segment_descriptor("es"), fs = make_segment_descriptor("fs"),
                  gs = make_segment_descriptor("gs"), ss = make_segment_descriptor("ss"),
                  tr = make_segment_descriptor("tr"), ldt = make_segment_descriptor("ldt");
};

const SegmentDescriptors& segment_descriptors() {
  static const SegmentDescriptors d;
  return d;
}

void validate_vcpu(const VcpuState& s, std::uint32_t) {
  if (s.xsave.size() < sizeof(kvm_xsave) || s.xsave.size() > kMaxXsave || s.xsave.size() % 4 != 0) {
    throw StateError("xsave", "is " + std::to_string(s.xsave.size()) +
                                  " bytes; an XSAVE area is a multiple of 4 bytes from 4096 to 1 MiB");
  }
  if (s.xcr_indices.size() != s.xcr_values.size()) {
    throw StateError("xcr_values", "has " + std::to_string(s.xcr_values.size()) + " entries for " +
                                       std::to_string(s.xcr_indices.size()) + " in xcr_indices");
  }
  require_at_most("xcr_indices", s.xcr_indices.size(), kMaxXcrs);
  if (s.msr_indices.size() != s.msr_values.size()) {
    throw StateError("msr_values", "has " + std::to_string(s.msr_values.size()) + " entries for " +
                                       std::to_string(s.msr_indices.size()) + " in msr_indices");
  }
  require_at_most("msr_indices", s.msr_indices.size(), kMaxMsrs);
  if (std::unordered_set<std::uint32_t>(s.msr_indices.begin(), s.msr_indices.end()).size() !=
      s.msr_indices.size())
    throw StateError("msr_indices", "names an MSR more than once");
  // RUNNABLE, UNINITIALIZED, INIT_RECEIVED, HALTED, SIPI_RECEIVED: the x86 states outside SEV.
  require_at_most("mp_state", s.mp_state, KVM_MP_STATE_SIPI_RECEIVED);
  if (s.events_flags & ~kKnownEventFlags) {
    throw StateError("events_flags",
                     "has unknown bits " + std::to_string(s.events_flags & ~kKnownEventFlags));
  }
  require_at_most("exception_nr", s.exception_nr, 31);
  require_flag("exception_injected", s.exception_injected);
  require_flag("exception_pending", s.exception_pending);
  require_flag("exception_has_error_code", s.exception_has_error_code);
  require_flag("exception_has_payload", s.exception_has_payload);
  require_flag("interrupt_injected", s.interrupt_injected);
  require_flag("nmi_injected", s.nmi_injected);
  require_flag("nmi_masked", s.nmi_masked);
  require_at_most("interrupt_shadow", s.interrupt_shadow, KVM_X86_SHADOW_INT_MOV_SS | KVM_X86_SHADOW_INT_STI);
  // KVM refuses DR6/DR7 values with any of the upper 32 bits set.
  require_at_most("dr6", s.dr6, 0xffffffffu);
  require_at_most("dr7", s.dr7, 0xffffffffu);
}

const StateDescriptor& vcpu_descriptor() {
  const SegmentDescriptors& seg = segment_descriptors();
  auto always = [](const VcpuState&) { return true; };
  static const StateDescriptor d =
      StateDescriptorBuilder<VcpuState>("kvm-vcpu", 1)
          .field("vcpu_index", &VcpuState::vcpu_index)
          .field("cr0", &VcpuState::cr0)
          .field("cr2", &VcpuState::cr2)
          .field("cr3", &VcpuState::cr3)
          .field("cr4", &VcpuState::cr4)
          .field("cr8", &VcpuState::cr8)
          .field("efer", &VcpuState::efer)
          .field("apic_base", &VcpuState::apic_base)
          .field("gdt_base", &VcpuState::gdt_base)
          .field("gdt_limit", &VcpuState::gdt_limit)
          .field("idt_base", &VcpuState::idt_base)
          .field("idt_limit", &VcpuState::idt_limit)
          .field("interrupt_bitmap", &VcpuState::interrupt_bitmap)
          .field("xsave", &VcpuState::xsave)
          .field("xcr_indices", &VcpuState::xcr_indices)
          .field("xcr_values", &VcpuState::xcr_values)
          .field("msr_indices", &VcpuState::msr_indices)
          .field("msr_values", &VcpuState::msr_values)
          .field("lapic", &VcpuState::lapic)
          .field("exception_injected", &VcpuState::exception_injected)
          .field("exception_nr", &VcpuState::exception_nr)
          .field("exception_has_error_code", &VcpuState::exception_has_error_code)
          .field("exception_pending", &VcpuState::exception_pending)
          .field("exception_error_code", &VcpuState::exception_error_code)
          .field("exception_has_payload", &VcpuState::exception_has_payload)
          .field("exception_payload", &VcpuState::exception_payload)
          .field("interrupt_injected", &VcpuState::interrupt_injected)
          .field("interrupt_nr", &VcpuState::interrupt_nr)
          .field("interrupt_soft", &VcpuState::interrupt_soft)
          .field("interrupt_shadow", &VcpuState::interrupt_shadow)
          .field("nmi_injected", &VcpuState::nmi_injected)
          .field("nmi_pending", &VcpuState::nmi_pending)
          .field("nmi_masked", &VcpuState::nmi_masked)
          .field("sipi_vector", &VcpuState::sipi_vector)
          .field("events_flags", &VcpuState::events_flags)
          .field("smi_smm", &VcpuState::smi_smm)
          .field("smi_pending", &VcpuState::smi_pending)
          .field("smi_inside_nmi", &VcpuState::smi_inside_nmi)
          .field("smi_latched_init", &VcpuState::smi_latched_init)
          .field("triple_fault_pending", &VcpuState::triple_fault_pending)
          .field("mp_state", &VcpuState::mp_state)
          .field("dr", &VcpuState::dr)
          .field("dr6", &VcpuState::dr6)
          .field("dr7", &VcpuState::dr7)
          .subsection(regs_descriptor(), &VcpuState::regs, always)
          .subsection(seg.cs, &VcpuState::cs, always)
          .subsection(seg.ds, &VcpuState::ds, always)
          .subsection(seg.es, &VcpuState::es, always)
          .subsection(seg.fs, &VcpuState::fs, always)
          .subsection(seg.gs, &VcpuState::gs, always)
          .subsection(seg.ss, &VcpuState::ss, always)
          .subsection(seg.tr, &VcpuState::tr, always)
          .subsection(seg.ldt, &VcpuState::ldt, always)
          .post_load(validate_vcpu)
          .build();
  return d;
}

// ---- VM descriptors ----

void validate_pic(const kvm_pic_state& s, std::uint32_t) {
  if (s.irq_base & 7) throw StateError("irq_base", "is not a multiple of 8");
  require_at_most("priority_add", s.priority_add, 7);
  require_at_most("init_state", s.init_state, 3);
  require_flag("read_reg_select", s.read_reg_select);
  require_flag("poll", s.poll);
  require_flag("special_mask", s.special_mask);
  require_flag("auto_eoi", s.auto_eoi);
  require_flag("rotate_on_auto_eoi", s.rotate_on_auto_eoi);
  require_flag("special_fully_nested_mode", s.special_fully_nested_mode);
  require_flag("init4", s.init4);
}

StateDescriptor make_pic_descriptor(const char* name) {
  return StateDescriptorBuilder<kvm_pic_state>(name, 1)
      .field("last_irr", &kvm_pic_state::last_irr)
      .field("irr", &kvm_pic_state::irr)
      .field("imr", &kvm_pic_state::imr)
      .field("isr", &kvm_pic_state::isr)
      .field("priority_add", &kvm_pic_state::priority_add)
      .field("irq_base", &kvm_pic_state::irq_base)
      .field("read_reg_select", &kvm_pic_state::read_reg_select)
      .field("poll", &kvm_pic_state::poll)
      .field("special_mask", &kvm_pic_state::special_mask)
      .field("init_state", &kvm_pic_state::init_state)
      .field("auto_eoi", &kvm_pic_state::auto_eoi)
      .field("rotate_on_auto_eoi", &kvm_pic_state::rotate_on_auto_eoi)
      .field("special_fully_nested_mode", &kvm_pic_state::special_fully_nested_mode)
      .field("init4", &kvm_pic_state::init4)
      .field("elcr", &kvm_pic_state::elcr)
      .field("elcr_mask", &kvm_pic_state::elcr_mask)
      .post_load(validate_pic)
      .build();
}

void validate_pit_channel(const kvm_pit_channel_state& s, std::uint32_t) {
  require_at_most("count", s.count, 0x10000);  // 0x10000 stands for a written 0
  // KVM resets every channel to mode 0xff, "never programmed".
  if (s.mode != 0xff) require_at_most("mode", s.mode, 5);
  require_at_most("rw_mode", s.rw_mode, 3);
  require_at_most("read_state", s.read_state, 4);
  require_at_most("write_state", s.write_state, 4);
  require_flag("bcd", s.bcd);
  require_flag("gate", s.gate);
  require_flag("count_latched", s.count_latched);
  require_flag("status_latched", s.status_latched);
}

// count_load_time is the host's ktime when the count was loaded; KVM_SET_PIT2
// reloads every count and stamps it afresh, so it is recorded for dumps only.
StateDescriptor make_pit_channel_descriptor(const char* name) {
  return StateDescriptorBuilder<kvm_pit_channel_state>(name, 1)
      .field("count", &kvm_pit_channel_state::count)
      .field("latched_count", &kvm_pit_channel_state::latched_count)
      .field("count_latched", &kvm_pit_channel_state::count_latched)
      .field("status_latched", &kvm_pit_channel_state::status_latched)
      .field("status", &kvm_pit_channel_state::status)
      .field("read_state", &kvm_pit_channel_state::read_state)
      .field("write_state", &kvm_pit_channel_state::write_state)
      .field("write_latch", &kvm_pit_channel_state::write_latch)
      .field("rw_mode", &kvm_pit_channel_state::rw_mode)
      .field("mode", &kvm_pit_channel_state::mode)
      .field("bcd", &kvm_pit_channel_state::bcd)
      .field("gate", &kvm_pit_channel_state::gate)
      .field("count_load_time", &kvm_pit_channel_state::count_load_time)
      .post_load(validate_pit_channel)
      .build();
}

void validate_ioapic(const IoapicState& s, std::uint32_t) {
  require_at_most("id", s.id, 15);
  require_at_most("irr", s.irr, (1u << KVM_IOAPIC_NUM_PINS) - 1);
}

const StateDescriptor& ioapic_descriptor() {
  static const StateDescriptor d = StateDescriptorBuilder<IoapicState>("ioapic", 1)
                                       .field("base_address", &IoapicState::base_address)
                                       .field("ioregsel", &IoapicState::ioregsel)
                                       .field("id", &IoapicState::id)
                                       .field("irr", &IoapicState::irr)
                                       .field("redirtbl", &IoapicState::redirtbl)
                                       .post_load(validate_ioapic)
                                       .build();
  return d;
}

void validate_vm(const VmState& s, std::uint32_t) {
  if (s.pit_flags & ~kKnownPitFlags) throw StateError("pit_flags", "has unknown bits");
  if (s.clock_flags & ~kKnownClockFlags) throw StateError("clock_flags", "has unknown bits");
}

struct VmDescriptors {
  StateDescriptor pic_master = make_pic_descriptor("pic-master"),
                  pic_slave = make_pic_descriptor("pic-slave");
  StateDescriptor pit0 = make_pit_channel_descriptor("pit-channel0"),
                  pit1 = make_pit_channel_descriptor("pit-channel1"),
                  pit2 = make_pit_channel_descriptor("pit-channel2");
};

const StateDescriptor& vm_descriptor() {
  static const VmDescriptors sub;
  auto always = [](const VmState&) { return true; };
  static const StateDescriptor d = StateDescriptorBuilder<VmState>("kvm-vm", 1)
                                       .field("pit_flags", &VmState::pit_flags)
                                       .field("clock", &VmState::clock)
                                       .field("clock_flags", &VmState::clock_flags)
                                       .subsection(sub.pic_master, &VmState::pic_master, always)
                                       .subsection(sub.pic_slave, &VmState::pic_slave, always)
                                       .subsection(ioapic_descriptor(), &VmState::ioapic, always)
                                       .subsection(sub.pit0, &VmState::pit_channel0, always)
                                       .subsection(sub.pit1, &VmState::pit_channel1, always)
                                       .subsection(sub.pit2, &VmState::pit_channel2, always)
                                       .post_load(validate_vm)
                                       .build();
  return d;
}

// The codec lets an absent subsection keep its live value; here every
// subsection is part of the state, so its absence is an error.
void require_subsections(const StateDescriptor& d, std::span<const std::uint8_t> record) {
  const sdk::DecodedRecord decoded = sdk::decode_record(record);
  for (const sdk::SubsectionSpec& sub : d.subsections()) {
    const auto& fields = decoded.fields;
    const bool present = std::any_of(fields.begin(), fields.end(), [&](const sdk::DecodedField& f) {
      return f.name == sub.descriptor->name() && f.type == sdk::WireType::Record;
    });
    if (!present) throw StateError(d.name() + "." + sub.descriptor->name(), "is missing from the record");
  }
}

}  // namespace

// ---- vCPU ----

std::vector<std::uint32_t> migratable_msrs(kvm::Vcpu& vcpu, const std::vector<std::uint32_t>& supported) {
  std::vector<std::uint32_t> readable;
  for (std::uint32_t index : supported) {
    if (vcpu.read_msr(index)) readable.push_back(index);
  }
  return readable;
}

namespace {

void store_events(VcpuState& s, const kvm_vcpu_events& e) {
  s.exception_injected = e.exception.injected;
  s.exception_nr = e.exception.nr;
  s.exception_has_error_code = e.exception.has_error_code;
  s.exception_pending = e.exception.pending;
  s.exception_error_code = e.exception.error_code;
  s.exception_has_payload = e.exception_has_payload;
  s.exception_payload = e.exception_payload;
  s.interrupt_injected = e.interrupt.injected;
  s.interrupt_nr = e.interrupt.nr;
  s.interrupt_soft = e.interrupt.soft;
  s.interrupt_shadow = e.interrupt.shadow;
  s.nmi_injected = e.nmi.injected;
  s.nmi_pending = e.nmi.pending;
  s.nmi_masked = e.nmi.masked;
  s.sipi_vector = e.sipi_vector;
  s.events_flags = e.flags;
  s.smi_smm = e.smi.smm;
  s.smi_pending = e.smi.pending;
  s.smi_inside_nmi = e.smi.smm_inside_nmi;
  s.smi_latched_init = e.smi.latched_init;
  s.triple_fault_pending = e.triple_fault.pending;
}

kvm_vcpu_events load_events(const VcpuState& s) {
  kvm_vcpu_events e{};
  e.exception.injected = s.exception_injected;
  e.exception.nr = s.exception_nr;
  e.exception.has_error_code = s.exception_has_error_code;
  e.exception.pending = s.exception_pending;
  e.exception.error_code = s.exception_error_code;
  e.exception_has_payload = s.exception_has_payload;
  e.exception_payload = s.exception_payload;
  e.interrupt.injected = s.interrupt_injected;
  e.interrupt.nr = s.interrupt_nr;
  e.interrupt.soft = s.interrupt_soft;
  e.interrupt.shadow = s.interrupt_shadow;
  e.nmi.injected = s.nmi_injected;
  e.nmi.pending = s.nmi_pending;
  e.nmi.masked = s.nmi_masked;
  e.sipi_vector = s.sipi_vector;
  e.flags = s.events_flags;
  e.smi.smm = s.smi_smm;
  e.smi.pending = s.smi_pending;
  e.smi.smm_inside_nmi = s.smi_inside_nmi;
  e.smi.latched_init = s.smi_latched_init;
  e.triple_fault.pending = s.triple_fault_pending;
  return e;
}

void store_sregs(VcpuState& s, const kvm_sregs& r) {
  s.cs = r.cs, s.ds = r.ds, s.es = r.es, s.fs = r.fs, s.gs = r.gs, s.ss = r.ss, s.tr = r.tr, s.ldt = r.ldt;
  s.cr0 = r.cr0, s.cr2 = r.cr2, s.cr3 = r.cr3, s.cr4 = r.cr4, s.cr8 = r.cr8;
  s.efer = r.efer;
  s.apic_base = r.apic_base;
  s.gdt_base = r.gdt.base, s.gdt_limit = r.gdt.limit;
  s.idt_base = r.idt.base, s.idt_limit = r.idt.limit;
  std::copy(std::begin(r.interrupt_bitmap), std::end(r.interrupt_bitmap), s.interrupt_bitmap.begin());
}

kvm_sregs load_sregs(const VcpuState& s) {
  kvm_sregs r{};
  r.cs = s.cs, r.ds = s.ds, r.es = s.es, r.fs = s.fs, r.gs = s.gs, r.ss = s.ss, r.tr = s.tr, r.ldt = s.ldt;
  r.cr0 = s.cr0, r.cr2 = s.cr2, r.cr3 = s.cr3, r.cr4 = s.cr4, r.cr8 = s.cr8;
  r.efer = s.efer;
  r.apic_base = s.apic_base;
  r.gdt.base = s.gdt_base, r.gdt.limit = s.gdt_limit;
  r.idt.base = s.idt_base, r.idt.limit = s.idt_limit;
  std::copy(s.interrupt_bitmap.begin(), s.interrupt_bitmap.end(), std::begin(r.interrupt_bitmap));
  return r;
}

void store_xcrs(VcpuState& s, const kvm_xcrs& x) {
  const std::uint32_t count = std::min<std::uint32_t>(x.nr_xcrs, kMaxXcrs);
  for (std::uint32_t i = 0; i < count; ++i) {
    s.xcr_indices.push_back(x.xcrs[i].xcr);
    s.xcr_values.push_back(x.xcrs[i].value);
  }
}

kvm_xcrs load_xcrs(const VcpuState& s) {
  kvm_xcrs x{};
  x.nr_xcrs = static_cast<std::uint32_t>(s.xcr_indices.size());
  for (std::size_t i = 0; i < s.xcr_indices.size(); ++i) {
    x.xcrs[i].xcr = s.xcr_indices[i];
    x.xcrs[i].value = s.xcr_values[i];
  }
  return x;
}

kvm_debugregs load_debugregs(const VcpuState& s) {
  kvm_debugregs d{};
  std::copy(s.dr.begin(), s.dr.end(), std::begin(d.db));
  d.dr6 = s.dr6;
  d.dr7 = s.dr7;
  return d;  // flags must be 0: KVM refuses anything else
}

void set_msrs_batched(kvm::Vcpu& vcpu, const std::vector<kvm_msr_entry>& entries) {
  for (std::size_t start = 0; start < entries.size(); start += kMsrBatch) {
    const auto first = entries.begin() + static_cast<std::ptrdiff_t>(start);
    const auto last = first + static_cast<std::ptrdiff_t>(std::min(kMsrBatch, entries.size() - start));
    vcpu.set_msrs(std::vector<kvm_msr_entry>(first, last));
  }
}

}  // namespace

// The order follows QEMU's kvm_arch_get_registers: the events and mp_state
// first, because KVM_GET_MP_STATE may act on a pending INIT/SIPI and change
// CS and RIP, which the registers read afterwards then include.
std::vector<std::uint8_t> save_vcpu(kvm::Vcpu& vcpu, const std::vector<std::uint32_t>& msrs) {
  VcpuState s;
  s.vcpu_index = vcpu.index();
  store_events(s, vcpu.get_events());
  s.mp_state = vcpu.get_mp_state().mp_state;
  s.regs = vcpu.get_regs();
  s.xsave = vcpu.get_xsave();
  store_xcrs(s, vcpu.get_xcrs());
  store_sregs(s, vcpu.get_sregs());
  for (const kvm_msr_entry& e : vcpu.get_msrs(msrs)) {
    s.msr_indices.push_back(e.index);
    s.msr_values.push_back(e.data);
  }
  const kvm_lapic_state lapic = vcpu.get_lapic();
  std::memcpy(s.lapic.data(), lapic.regs, s.lapic.size());
  const kvm_debugregs debugregs = vcpu.get_debugregs();
  std::copy(std::begin(debugregs.db), std::end(debugregs.db), s.dr.begin());
  s.dr6 = debugregs.dr6;
  s.dr7 = debugregs.dr7;
  return sdk::save_state(vcpu_descriptor(), &s);
}

DecodedVcpu::DecodedVcpu(std::span<const std::uint8_t> record) : state_(std::make_unique<VcpuState>()) {
  sdk::load_state(vcpu_descriptor(), state_.get(), record);
  require_subsections(vcpu_descriptor(), record);
}

DecodedVcpu::~DecodedVcpu() = default;
DecodedVcpu::DecodedVcpu(DecodedVcpu&&) noexcept = default;

unsigned DecodedVcpu::index() const {
  return state_->vcpu_index;
}

// The order follows KVM's dependencies (Documentation/virt/kvm/api.rst) and
// QEMU's kvm_arch_put_registers:
//  1. sregs: EFER, CR0/CR4 and APIC_BASE decide which MSR values KVM accepts
//     and whether the LAPIC is in xAPIC or x2APIC mode (the LAPIC page's ID
//     register is read differently in each);
//  2. regs; 3. xsave (the FPU/SSE/AVX state, superseding KVM_SET_FPU), then
//     the XCRs, as QEMU does;
//  4. MSRs, TSC included, except the TSC deadline;
//  5. LAPIC, after APIC_BASE and the x2APIC MSRs;
//  6. events, after the LAPIC (a latched INIT lives in the LAPIC), then
//     mp_state, which KVM checks against the pending events and LAPIC;
//  7. MSR_IA32_TSC_DEADLINE, which KVM ignores unless the LAPIC timer is
//     already in TSC-deadline mode, and which counts in the TSC set in 4;
//  8. debug registers.
void DecodedVcpu::apply(kvm::Vcpu& vcpu) const {
  const VcpuState& s = *state_;
  if (vcpu.index() != s.vcpu_index) {
    throw sdk::Error("the state of vCPU " + std::to_string(s.vcpu_index) + " cannot go into vCPU " +
                     std::to_string(vcpu.index()));
  }
  if (vcpu.xsave_size() != s.xsave.size()) {
    throw sdk::Error("vCPU " + std::to_string(s.vcpu_index) + ": the XSAVE area is " +
                     std::to_string(s.xsave.size()) + " bytes at the source and " +
                     std::to_string(vcpu.xsave_size()) + " bytes on this host");
  }
  std::vector<kvm_msr_entry> msrs, deadline;
  for (std::size_t i = 0; i < s.msr_indices.size(); ++i) {
    kvm_msr_entry e{};
    e.index = s.msr_indices[i];
    e.data = s.msr_values[i];
    (e.index == kMsrTscDeadline ? deadline : msrs).push_back(e);
  }
  kvm_lapic_state lapic{};
  std::memcpy(lapic.regs, s.lapic.data(), s.lapic.size());

  vcpu.set_sregs(load_sregs(s));
  vcpu.set_regs(s.regs);
  vcpu.set_xsave(s.xsave);
  vcpu.set_xcrs(load_xcrs(s));
  set_msrs_batched(vcpu, msrs);
  vcpu.set_lapic(lapic);
  vcpu.set_events(load_events(s));
  kvm_mp_state mp_state{};
  mp_state.mp_state = s.mp_state;
  vcpu.set_mp_state(mp_state);
  if (!deadline.empty()) vcpu.set_msrs(deadline);
  vcpu.set_debugregs(load_debugregs(s));
}

// ---- VM ----

namespace {

kvm_irqchip pic_chip(std::uint32_t chip_id, const kvm_pic_state& state) {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  chip.chip.pic = state;
  return chip;
}

kvm_irqchip ioapic_chip(const IoapicState& s) {
  kvm_irqchip chip{};
  chip.chip_id = KVM_IRQCHIP_IOAPIC;
  chip.chip.ioapic.base_address = s.base_address;
  chip.chip.ioapic.ioregsel = s.ioregsel;
  chip.chip.ioapic.id = s.id;
  chip.chip.ioapic.irr = s.irr;
  for (std::size_t i = 0; i < s.redirtbl.size(); ++i) chip.chip.ioapic.redirtbl[i].bits = s.redirtbl[i];
  return chip;
}

}  // namespace

std::vector<std::uint8_t> save_vm(kvm::Vm& vm) {
  VmState s;
  s.pic_master = vm.get_irqchip(KVM_IRQCHIP_PIC_MASTER).chip.pic;
  s.pic_slave = vm.get_irqchip(KVM_IRQCHIP_PIC_SLAVE).chip.pic;
  const kvm_ioapic_state ioapic = vm.get_irqchip(KVM_IRQCHIP_IOAPIC).chip.ioapic;
  s.ioapic.base_address = ioapic.base_address;
  s.ioapic.ioregsel = ioapic.ioregsel;
  s.ioapic.id = ioapic.id;
  s.ioapic.irr = ioapic.irr;
  for (std::size_t i = 0; i < s.ioapic.redirtbl.size(); ++i) s.ioapic.redirtbl[i] = ioapic.redirtbl[i].bits;
  const kvm_pit_state2 pit = vm.get_pit();
  s.pit_channel0 = pit.channels[0];
  s.pit_channel1 = pit.channels[1];
  s.pit_channel2 = pit.channels[2];
  s.pit_flags = pit.flags;
  const kvm_clock_data clock = vm.get_clock();
  s.clock = clock.clock;
  s.clock_flags = clock.flags;
  return sdk::save_state(vm_descriptor(), &s);
}

DecodedVm::DecodedVm(std::span<const std::uint8_t> record) : state_(std::make_unique<VmState>()) {
  sdk::load_state(vm_descriptor(), state_.get(), record);
  require_subsections(vm_descriptor(), record);
}

DecodedVm::~DecodedVm() = default;
DecodedVm::DecodedVm(DecodedVm&&) noexcept = default;

// The clock goes in last and with no flags: KVM_CLOCK_REALTIME would make KVM
// add the wall time elapsed since the source read the clock (which needs
// synchronised host clocks and a TSC-stable host), so the guest's kvmclock
// instead stands still for the downtime, as the TSC does. Apply this after
// every vCPU, just before they run.
void DecodedVm::apply(kvm::Vm& vm) const {
  const VmState& s = *state_;
  vm.set_irqchip(pic_chip(KVM_IRQCHIP_PIC_MASTER, s.pic_master));
  vm.set_irqchip(pic_chip(KVM_IRQCHIP_PIC_SLAVE, s.pic_slave));
  vm.set_irqchip(ioapic_chip(s.ioapic));
  kvm_pit_state2 pit{};
  pit.channels[0] = s.pit_channel0;
  pit.channels[1] = s.pit_channel1;
  pit.channels[2] = s.pit_channel2;
  pit.flags = s.pit_flags;
  vm.set_pit(pit);
  kvm_clock_data clock{};
  clock.clock = s.clock;
  vm.set_clock(clock);
}

}  // namespace molt::core::migration
