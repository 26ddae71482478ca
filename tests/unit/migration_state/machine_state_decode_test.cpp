// Decoding of "kvm-vcpu" and "kvm-vm" records without KVM. The records are
// written here by hand from docs/state-format.md and the field list in
// core/migration/machine_state.cpp, so these tests also pin the record
// layout a reader of the stream relies on.
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "core/migration/machine_state.hpp"

namespace molt::core::migration {
namespace {

using sdk::WireType;

std::vector<std::uint8_t> le(std::uint64_t v, unsigned bytes) {
  std::vector<std::uint8_t> out;
  for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  return out;
}

template <class T>
std::vector<std::uint8_t> array_of(const std::vector<T>& values) {
  std::vector<std::uint8_t> out;
  for (T v : values) {
    const auto bytes = le(v, sizeof(T));
    out.insert(out.end(), bytes.begin(), bytes.end());
  }
  return out;
}

// A state record written entry by entry.
class Record {
 public:
  explicit Record(std::string name, std::uint32_t version = 1) : name_(std::move(name)), version_(version) {}

  Record& add(WireType type, const std::string& name, std::vector<std::uint8_t> payload) {
    entries_.push_back({type, name, std::move(payload), nullptr});
    return *this;
  }
  Record& u8(const std::string& n, std::uint64_t v) { return add(WireType::U8, n, le(v, 1)); }
  Record& u16(const std::string& n, std::uint64_t v) { return add(WireType::U16, n, le(v, 2)); }
  Record& u32(const std::string& n, std::uint64_t v) { return add(WireType::U32, n, le(v, 4)); }
  Record& u64(const std::string& n, std::uint64_t v) { return add(WireType::U64, n, le(v, 8)); }
  Record& sub(Record record) {
    auto nested = std::make_shared<Record>(std::move(record));
    entries_.push_back({WireType::Record, nested->name_, {}, nested});
    return *this;
  }

  // Replaces an entry's type and payload.
  void set(const std::string& name, WireType type, std::vector<std::uint8_t> payload) {
    Entry& e = find(name);
    e.type = type;
    e.payload = std::move(payload);
  }
  void remove(const std::string& name) { entries_.erase(entries_.begin() + (&find(name) - entries_.data())); }
  Record& nested(const std::string& name) { return *find(name).record; }

  std::vector<std::uint8_t> bytes() const {
    std::vector<std::uint8_t> body;
    for (const Entry& e : entries_) {
      body.push_back(static_cast<std::uint8_t>(e.type));
      append_name(body, e.name);
      const std::vector<std::uint8_t> payload = e.record ? e.record->bytes() : e.payload;
      append(body, le(payload.size(), 4));
      append(body, payload);
    }
    body.push_back(0);
    std::vector<std::uint8_t> out = {'M', 'S', 'T', 'R', 1};
    append_name(out, name_);
    append(out, le(version_, 4));
    append(out, le(body.size(), 4));
    append(out, body);
    return out;
  }

 private:
  struct Entry {
    WireType type;
    std::string name;
    std::vector<std::uint8_t> payload;
    std::shared_ptr<Record> record;
  };
  static void append(std::vector<std::uint8_t>& out, const std::vector<std::uint8_t>& more) {
    out.insert(out.end(), more.begin(), more.end());
  }
  static void append_name(std::vector<std::uint8_t>& out, const std::string& name) {
    out.push_back(static_cast<std::uint8_t>(name.size()));
    out.insert(out.end(), name.begin(), name.end());
  }
  Entry& find(const std::string& name) {
    for (Entry& e : entries_)
      if (e.name == name) return e;
    throw std::logic_error("the test record has no entry " + name);
  }
  std::string name_;
  std::uint32_t version_;
  std::vector<Entry> entries_;
};

Record segment(const std::string& name, std::uint64_t base, std::uint16_t selector, std::uint8_t type) {
  Record r(name);
  r.u64("base", base).u32("limit", 0xffff).u16("selector", selector).u8("type", type).u8("present", 1);
  r.u8("dpl", 0).u8("db", 0).u8("s", 1).u8("l", 0).u8("g", 0).u8("avl", 0).u8("unusable", 0);
  return r;
}

// A vCPU in real mode, as KVM reports one at power-on, with two MSRs.
Record valid_vcpu() {
  Record r("kvm-vcpu");
  r.u32("vcpu_index", 1);
  r.u64("cr0", 0x60000010).u64("cr2", 0).u64("cr3", 0).u64("cr4", 0).u64("cr8", 0).u64("efer", 0);
  r.u64("apic_base", 0xfee00800);
  r.u64("gdt_base", 0).u16("gdt_limit", 0xffff).u64("idt_base", 0).u16("idt_limit", 0xffff);
  r.add(WireType::U64Array, "interrupt_bitmap", std::vector<std::uint8_t>(32));
  r.add(WireType::Bytes, "xsave", std::vector<std::uint8_t>(4096));
  r.add(WireType::U32Array, "xcr_indices", array_of<std::uint32_t>({0}));
  r.add(WireType::U64Array, "xcr_values", array_of<std::uint64_t>({1}));
  r.add(WireType::U32Array, "msr_indices", array_of<std::uint32_t>({0x10, 0x174}));
  r.add(WireType::U64Array, "msr_values", array_of<std::uint64_t>({123456789, 0x10}));
  r.add(WireType::Bytes, "lapic", std::vector<std::uint8_t>(1024));
  for (const char* name :
       {"exception_injected", "exception_nr", "exception_has_error_code", "exception_pending"})
    r.u8(name, 0);
  r.u32("exception_error_code", 0).u8("exception_has_payload", 0).u64("exception_payload", 0);
  for (const char* name : {"interrupt_injected", "interrupt_nr", "interrupt_soft", "interrupt_shadow",
                           "nmi_injected", "nmi_pending", "nmi_masked"})
    r.u8(name, 0);
  r.u32("sipi_vector", 0).u32("events_flags", 0xf);
  for (const char* name :
       {"smi_smm", "smi_pending", "smi_inside_nmi", "smi_latched_init", "triple_fault_pending"})
    r.u8(name, 0);
  r.u32("mp_state", 1);  // UNINITIALIZED: an AP waiting for INIT/SIPI
  r.add(WireType::U64Array, "dr", std::vector<std::uint8_t>(32));
  r.u64("dr6", 0xffff0ff0).u64("dr7", 0x400);
  Record regs("regs");
  for (const char* name : {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "r8", "r9", "r10", "r11",
                           "r12", "r13", "r14", "r15"})
    regs.u64(name, 0);
  regs.u64("rip", 0xfff0).u64("rflags", 2);
  r.sub(regs);
  r.sub(segment("cs", 0xffff0000, 0xf000, 11));
  for (const char* name : {"ds", "es", "fs", "gs", "ss"}) r.sub(segment(name, 0, 0, 3));
  r.sub(segment("tr", 0, 0, 11));
  r.sub(segment("ldt", 0, 0, 2));
  return r;
}

Record pic(const std::string& name, std::uint8_t irq_base) {
  Record r(name);
  for (const char* field : {"last_irr", "irr", "imr", "isr", "priority_add"}) r.u8(field, 0);
  r.u8("irq_base", irq_base);
  for (const char* field : {"read_reg_select", "poll", "special_mask", "init_state", "auto_eoi",
                            "rotate_on_auto_eoi", "special_fully_nested_mode", "init4", "elcr", "elcr_mask"})
    r.u8(field, 0);
  return r;
}

Record pit_channel(const std::string& name) {
  Record r(name);
  r.u32("count", 0x10000).u16("latched_count", 0);
  for (const char* field : {"count_latched", "status_latched", "status", "read_state", "write_state",
                            "write_latch", "rw_mode", "mode", "bcd"})
    r.u8(field, 0);
  r.u8("gate", 1);
  r.add(WireType::I64, "count_load_time", le(123456789, 8));
  return r;
}

Record valid_vm() {
  Record r("kvm-vm");
  r.u32("pit_flags", 0).u64("clock", 5'000'000'000).u32("clock_flags", 0x2);
  r.sub(pic("pic-master", 0x08));
  r.sub(pic("pic-slave", 0x70));
  Record ioapic("ioapic");
  ioapic.u64("base_address", 0xfec00000).u32("ioregsel", 0).u32("id", 0).u32("irr", 0);
  ioapic.add(WireType::U64Array, "redirtbl",
             array_of<std::uint64_t>(std::vector<std::uint64_t>(24, 0x10000)));
  r.sub(ioapic);
  r.sub(pit_channel("pit-channel0"));
  r.sub(pit_channel("pit-channel1"));
  r.sub(pit_channel("pit-channel2"));
  return r;
}

// Runs `decode` and expects a StateError naming `field` (empty: a whole-record
// error whose message contains `words`).
void expect_refused(const std::function<void()>& decode, const std::string& field,
                    const std::string& words = "") {
  try {
    decode();
    ADD_FAILURE() << "a record with a bad " << (field.empty() ? words : field) << " was accepted";
  } catch (const sdk::StateError& e) {
    EXPECT_EQ(e.field(), field) << e.what();
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

void expect_vcpu_refused(const Record& r, const std::string& field, const std::string& words = "") {
  const std::vector<std::uint8_t> bytes = r.bytes();
  expect_refused([&] { DecodedVcpu decoded(bytes); }, field, words);
}

void expect_vm_refused(const Record& r, const std::string& field, const std::string& words = "") {
  const std::vector<std::uint8_t> bytes = r.bytes();
  expect_refused([&] { DecodedVm decoded(bytes); }, field, words);
}

TEST(MachineStateDecode, WellFormedRecordsDecode) {
  const std::vector<std::uint8_t> vcpu = valid_vcpu().bytes();
  DecodedVcpu decoded(vcpu);
  EXPECT_EQ(decoded.index(), 1u);
  const std::vector<std::uint8_t> vm = valid_vm().bytes();
  EXPECT_NO_THROW(DecodedVm{vm});
}

TEST(MachineStateDecode, EveryTruncationIsRefused) {
  const std::vector<std::uint8_t> vcpu = valid_vcpu().bytes();
  for (std::size_t size = 0; size < vcpu.size(); ++size) {
    const std::span<const std::uint8_t> part(vcpu.data(), size);
    EXPECT_THROW(DecodedVcpu{part}, sdk::StateError) << "kvm-vcpu cut to " << size << " bytes";
  }
  const std::vector<std::uint8_t> vm = valid_vm().bytes();
  for (std::size_t size = 0; size < vm.size(); ++size) {
    const std::span<const std::uint8_t> part(vm.data(), size);
    EXPECT_THROW(DecodedVm{part}, sdk::StateError) << "kvm-vm cut to " << size << " bytes";
  }
}

TEST(MachineStateDecode, GarbledRecordsAreRefused) {
  std::vector<std::uint8_t> bytes = valid_vcpu().bytes();
  bytes[0] = 'X';
  expect_refused([&] { DecodedVcpu decoded(bytes); }, "", "magic");
  bytes = valid_vm().bytes();
  bytes.push_back(0);
  expect_refused([&] { DecodedVm decoded(bytes); }, "", "stray byte");
  // A VM record handed to the vCPU decoder, and the other way round.
  expect_vcpu_refused(valid_vm(), "", "kvm-vm");
  expect_vm_refused(valid_vcpu(), "", "kvm-vcpu");
}

TEST(MachineStateDecode, NewerVersionIsRefused) {
  Record r("kvm-vm", 2);
  expect_vm_refused(r, "", "version 2");
}

TEST(MachineStateDecode, MissingFieldsAndSubsectionsAreNamed) {
  Record r = valid_vcpu();
  r.remove("dr7");
  expect_vcpu_refused(r, "kvm-vcpu.dr7", "missing");
  r = valid_vcpu();
  r.remove("ss");
  expect_vcpu_refused(r, "kvm-vcpu.ss", "missing");
  r = valid_vcpu();
  r.nested("regs").remove("rip");
  expect_vcpu_refused(r, "kvm-vcpu.regs.rip", "missing");
  Record vm = valid_vm();
  vm.remove("ioapic");
  expect_vm_refused(vm, "kvm-vm.ioapic", "missing");
  vm = valid_vm();
  vm.u8("hpet", 1);
  expect_vm_refused(vm, "kvm-vm.hpet", "not a field");
}

TEST(MachineStateDecode, WrongBlobLengthsAreNamed) {
  Record r = valid_vcpu();
  r.set("lapic", WireType::Bytes, std::vector<std::uint8_t>(1023));
  expect_vcpu_refused(r, "kvm-vcpu.lapic", "expected 1024");
  r = valid_vcpu();
  r.set("xsave", WireType::Bytes, std::vector<std::uint8_t>(512));
  expect_vcpu_refused(r, "kvm-vcpu.xsave", "512 bytes");
  r = valid_vcpu();
  r.set("interrupt_bitmap", WireType::U64Array, std::vector<std::uint8_t>(24));
  expect_vcpu_refused(r, "kvm-vcpu.interrupt_bitmap", "expected 32");
  Record vm = valid_vm();
  vm.nested("ioapic").set("redirtbl", WireType::U64Array, std::vector<std::uint8_t>(23 * 8));
  expect_vm_refused(vm, "kvm-vm.ioapic.redirtbl", "expected 192");
  vm = valid_vm();
  vm.set("clock", WireType::U32, le(1, 4));
  expect_vm_refused(vm, "kvm-vm.clock", "expected u64");
}

TEST(MachineStateDecode, OutOfRangeMpStateIsNamed) {
  Record r = valid_vcpu();
  r.set("mp_state", WireType::U32, le(KVM_MP_STATE_CHECK_STOP, 4));
  expect_vcpu_refused(r, "kvm-vcpu.mp_state", "at most 4");
  r.set("mp_state", WireType::U32, le(KVM_MP_STATE_SIPI_RECEIVED, 4));
  const std::vector<std::uint8_t> bytes = r.bytes();
  EXPECT_NO_THROW(DecodedVcpu{bytes});
}

TEST(MachineStateDecode, MismatchedArraysAreNamed) {
  Record r = valid_vcpu();
  r.set("msr_values", WireType::U64Array, array_of<std::uint64_t>({1}));
  expect_vcpu_refused(r, "kvm-vcpu.msr_values", "1 entries for 2");
  r = valid_vcpu();
  r.set("msr_indices", WireType::U32Array, array_of<std::uint32_t>({0x10, 0x10}));
  expect_vcpu_refused(r, "kvm-vcpu.msr_indices", "more than once");
  r = valid_vcpu();
  r.set("xcr_indices", WireType::U32Array, array_of<std::uint32_t>({0, 1}));
  expect_vcpu_refused(r, "kvm-vcpu.xcr_values", "1 entries for 2");
}

TEST(MachineStateDecode, InvalidRegisterValuesAreNamed) {
  Record r = valid_vcpu();
  r.nested("cs").set("dpl", WireType::U8, le(4, 1));
  expect_vcpu_refused(r, "kvm-vcpu.cs.dpl", "at most 3");
  r = valid_vcpu();
  r.nested("gs").set("l", WireType::U8, le(1, 1));
  r.nested("gs").set("db", WireType::U8, le(1, 1));
  expect_vcpu_refused(r, "kvm-vcpu.gs.db", "together with l");
  r = valid_vcpu();
  r.set("dr6", WireType::U64, le(0x1ffff0ff0, 8));
  expect_vcpu_refused(r, "kvm-vcpu.dr6", "");
  r = valid_vcpu();
  r.set("events_flags", WireType::U32, le(0x80, 4));
  expect_vcpu_refused(r, "kvm-vcpu.events_flags", "unknown bits");
  r = valid_vcpu();
  r.set("exception_nr", WireType::U8, le(32, 1));
  expect_vcpu_refused(r, "kvm-vcpu.exception_nr", "at most 31");
}

TEST(MachineStateDecode, InvalidChipStateIsNamed) {
  Record vm = valid_vm();
  vm.nested("pit-channel1").set("mode", WireType::U8, le(6, 1));
  expect_vm_refused(vm, "kvm-vm.pit-channel1.mode", "at most 5");
  vm.nested("pit-channel1").set("mode", WireType::U8, le(0xff, 1));  // KVM's "never programmed"
  const std::vector<std::uint8_t> unprogrammed = vm.bytes();
  EXPECT_NO_THROW(DecodedVm{unprogrammed});
  vm = valid_vm();
  vm.nested("pit-channel2").set("count", WireType::U32, le(0x10001, 4));
  expect_vm_refused(vm, "kvm-vm.pit-channel2.count", "");
  vm = valid_vm();
  vm.nested("pic-slave").set("irq_base", WireType::U8, le(0x71, 1));
  expect_vm_refused(vm, "kvm-vm.pic-slave.irq_base", "multiple of 8");
  vm = valid_vm();
  vm.nested("ioapic").set("irr", WireType::U32, le(1u << 24, 4));
  expect_vm_refused(vm, "kvm-vm.ioapic.irr", "");
  vm = valid_vm();
  vm.set("clock_flags", WireType::U32, le(0x100, 4));
  expect_vm_refused(vm, "kvm-vm.clock_flags", "unknown bits");
  vm = valid_vm();
  vm.set("pit_flags", WireType::U32, le(0x4, 4));
  expect_vm_refused(vm, "kvm-vm.pit_flags", "unknown bits");
}

}  // namespace
}  // namespace molt::core::migration
