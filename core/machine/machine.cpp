#include "core/machine/machine.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <molt/sdk/error.hpp>

#include "core/boot/boot.hpp"
#include "core/kvm/cpu_setup.hpp"
#include "core/log.hpp"
#include "core/migration/machine_state.hpp"

namespace molt::core::machine {

namespace {

constexpr int kKickSignal = SIGUSR1;

void install_kick_handler() {
  struct sigaction action {};
  action.sa_handler = [](int) {};  // only interrupts KVM_RUN
  sigemptyset(&action.sa_mask);
  ::sigaction(kKickSignal, &action, nullptr);
}

std::uint64_t cpu_time_us() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<std::uint64_t>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000 +
         static_cast<std::uint64_t>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

std::uint64_t load_le(const std::uint8_t* p, unsigned size) {
  std::uint64_t v = 0;
  std::memcpy(&v, p, size);
  return v;
}

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count());
}

void store_le(std::uint8_t* p, unsigned size, std::uint64_t v) { std::memcpy(p, &v, size); }

kvm_segment to_kvm(const boot::Segment& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = s.l;
  k.g = s.g;
  k.avl = s.avl;
  return k;
}

}  // namespace

// The boot vCPU's registers as the boot protocol wants them.
void Machine::set_entry_state(kvm::Vcpu& vcpu, const boot::CpuEntryState& entry) {
  kvm_sregs sregs = vcpu.get_sregs();
  sregs.cs = to_kvm(entry.code);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = to_kvm(entry.data);
  sregs.tr = to_kvm(entry.tr);
  sregs.ldt = kvm_segment{};
  sregs.ldt.unusable = 1;
  sregs.gdt.base = entry.gdt_base;
  sregs.gdt.limit = entry.gdt_limit;
  sregs.idt.base = entry.idt_base;
  sregs.idt.limit = entry.idt_limit;
  sregs.cr0 = entry.cr0;
  sregs.cr3 = entry.cr3;
  sregs.cr4 = entry.cr4;
  sregs.efer = entry.efer;
  vcpu.set_sregs(sregs);

  kvm_regs regs{};
  regs.rflags = entry.rflags;
  regs.rip = entry.rip;
  regs.rsp = entry.rsp;
  regs.rsi = entry.rsi;
  regs.rbx = entry.rbx;
  vcpu.set_regs(regs);
}


const char* to_string(RunState state) {
  switch (state) {
    case RunState::Starting: return "starting";
    case RunState::Incoming: return "incoming";
    case RunState::Running: return "running";
    case RunState::Paused: return "paused";
    case RunState::PostMigrate: return "postmigrate";
    case RunState::ShuttingDown: return "shutting-down";
  }
  return "unknown";
}

int ExitResult::status() const {
  switch (reason) {
    case sdk::ExitReason::Poweroff: return 0;
    case sdk::ExitReason::Reset: return 4;
    case sdk::ExitReason::DebugExit: return ((guest_value & 0x7f) << 1) | 1;
    case sdk::ExitReason::Error: return 2;
  }
  return 2;
}

// One vCPU thread: runs KVM_RUN and dispatches its exits.
class Machine::VcpuRunner {
 public:
  VcpuRunner(Machine& m, unsigned index) : machine_(m), vcpu_(m.system_, m.vm_, index) {}
  ~VcpuRunner() { join(); }

  kvm::Vcpu& vcpu() { return vcpu_; }
  void start() {
    {
      std::lock_guard lock(machine_.park_mutex_);
      ++machine_.live_vcpu_threads_;
    }
    thread_ = std::thread([this] {
      loop();
      std::lock_guard lock(machine_.park_mutex_);
      --machine_.live_vcpu_threads_;
      machine_.park_cv_.notify_all();
    });
    std::string name = "vcpu" + std::to_string(vcpu_.index());
    ::pthread_setname_np(thread_.native_handle(), name.c_str());
  }
  void kick() {
    // Written by the kicking thread and the vCPU thread, read by KVM.
    __atomic_store_n(&vcpu_.run_area()->immediate_exit, 1, __ATOMIC_RELEASE);
    if (thread_.joinable()) ::pthread_kill(thread_.native_handle(), kKickSignal);
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  void loop();
  void handle_io(kvm_run& run);
  void handle_mmio(kvm_run& run);
  void fail(const std::string& what);
  // KVM finishes an I/O or MMIO instruction (stores an IN's value, steps
  // RIP) only on the next KVM_RUN: enter once with immediate_exit so a parked
  // vCPU's registers are complete (a migration saves them).
  void complete_pending_exit() {
    __atomic_store_n(&vcpu_.run_area()->immediate_exit, 1, __ATOMIC_RELEASE);
    vcpu_.run();
    __atomic_store_n(&vcpu_.run_area()->immediate_exit, 0, __ATOMIC_RELEASE);
  }

  Machine& machine_;
  kvm::Vcpu vcpu_;
  std::thread thread_;
  unsigned unhandled_logged_ = 0;
};

void Machine::VcpuRunner::loop() {
  sigset_t kick;
  sigemptyset(&kick);
  sigaddset(&kick, kKickSignal);
  ::pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);
  try {
    while (!machine_.stopping_) {
      if (machine_.pause_requested_) complete_pending_exit();
      machine_.park_if_pause_requested();
      if (machine_.stopping_) break;
      if (!vcpu_.run()) {
        __atomic_store_n(&vcpu_.run_area()->immediate_exit, 0, __ATOMIC_RELEASE);
        continue;
      }
      kvm_run& run = *vcpu_.run_area();
      switch (run.exit_reason) {
        case KVM_EXIT_IO: handle_io(run); break;
        case KVM_EXIT_MMIO: handle_mmio(run); break;
        case KVM_EXIT_INTR: break;
        case KVM_EXIT_HLT: machine_.request_exit(sdk::ExitReason::Poweroff, 0); return;
        case KVM_EXIT_SHUTDOWN: machine_.request_exit(sdk::ExitReason::Reset, 0); return;
        case KVM_EXIT_SYSTEM_EVENT:
          if (run.system_event.type == KVM_SYSTEM_EVENT_RESET) machine_.request_exit(sdk::ExitReason::Reset, 0);
          else if (run.system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN) machine_.request_exit(sdk::ExitReason::Poweroff, 0);
          else fail(fmt::format("system event {}", run.system_event.type));
          return;
        case KVM_EXIT_FAIL_ENTRY:
          fail(fmt::format("VM entry failed, hardware reason {:#x}", run.fail_entry.hardware_entry_failure_reason));
          return;
        case KVM_EXIT_INTERNAL_ERROR:
          fail(fmt::format("KVM internal error, suberror {}", run.internal.suberror));
          return;
        default:
          fail(fmt::format("unexpected exit reason {}", run.exit_reason));
          return;
      }
    }
  } catch (const std::exception& e) {
    fail(e.what());
  }
  if (machine_.log_->should_log(spdlog::level::debug)) {
    const kvm_regs regs = vcpu_.get_regs();
    const kvm_sregs sregs = vcpu_.get_sregs();
    machine_.log_->debug("vCPU {} stopped at rip={:#x} rsp={:#x} cr0={:#x} cr3={:#x} cr4={:#x} efer={:#x}", vcpu_.index(),
                         regs.rip, regs.rsp, sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer);
  }
}

void Machine::VcpuRunner::fail(const std::string& what) {
  std::string where;
  try {
    const kvm_regs regs = vcpu_.get_regs();
    const kvm_sregs sregs = vcpu_.get_sregs();
    where = fmt::format(" at rip={:#x} rsp={:#x} cr0={:#x} cr3={:#x} efer={:#x} cs.l={} cpl={}", regs.rip, regs.rsp,
                        sregs.cr0, sregs.cr3, sregs.efer, sregs.cs.l, sregs.cs.dpl);
  } catch (const std::exception&) {
  }
  machine_.finish(ExitResult{sdk::ExitReason::Error, 0, fmt::format("vCPU {}: {}{}", vcpu_.index(), what, where)});
}

void Machine::VcpuRunner::handle_io(kvm_run& run) {
  auto* data = reinterpret_cast<std::uint8_t*>(&run) + run.io.data_offset;
  const unsigned size = run.io.size;
  for (std::uint32_t i = 0; i < run.io.count; ++i, data += size) {
    bool handled;
    if (run.io.direction == KVM_EXIT_IO_OUT) {
      handled = machine_.ports_.write(run.io.port, size, load_le(data, size));
    } else {
      std::uint64_t value = ~0ull;
      handled = machine_.ports_.read(run.io.port, size, value);
      store_le(data, size, handled ? value : ~0ull);
    }
    if (!handled && unhandled_logged_ < 32) {
      ++unhandled_logged_;
      machine_.log_->debug("vCPU {}: unclaimed port {} {:#x} size {}", vcpu_.index(),
                           run.io.direction == KVM_EXIT_IO_OUT ? "write" : "read", run.io.port, size);
    }
  }
}

void Machine::VcpuRunner::handle_mmio(kvm_run& run) {
  const unsigned size = run.mmio.len;
  if (size == 0 || size > 8) return;
  bool handled;
  if (run.mmio.is_write) {
    handled = machine_.mmio_.write(run.mmio.phys_addr, size, load_le(run.mmio.data, size));
  } else {
    std::uint64_t value = ~0ull;
    handled = machine_.mmio_.read(run.mmio.phys_addr, size, value);
    store_le(run.mmio.data, size, handled ? value : ~0ull);
  }
  if (!handled && unhandled_logged_ < 32) {
    ++unhandled_logged_;
    machine_.log_->debug("vCPU {}: unclaimed MMIO {} {:#x} size {}", vcpu_.index(), run.mmio.is_write ? "write" : "read",
                         run.mmio.phys_addr, size);
  }
}

Machine::Machine(const MachineConfig& config)
    : log_(core::logger("core.machine")), system_(), vm_(system_), irqs_(vm_) {
  if (config.vcpus == 0 || config.vcpus > system_.max_vcpus()) {
    throw sdk::Error(fmt::format("{} vCPUs asked for; this KVM runs 1 to {}", config.vcpus, system_.max_vcpus()));
  }
  vm_.create_irqchip_and_pit();
  if (config.adopted_ram_fd >= 0) {
    kvm::Fd fd(::dup(config.adopted_ram_fd));
    if (!fd) throw sdk::Error("cannot duplicate the handed-over RAM fd");
    ram_ = std::make_unique<memory::GuestRam>(
        config.memory_size, std::move(fd),
        config.memory_file ? std::optional<std::filesystem::path>(config.memory_file->path) : std::nullopt);
  } else if (config.memory_backing == memory::RamBacking::File) {
    if (!config.memory_file) throw sdk::Error("file-backed RAM needs its memory.path");
    ram_ = std::make_unique<memory::GuestRam>(config.memory_size, *config.memory_file);
  } else {
    ram_ = std::make_unique<memory::GuestRam>(config.memory_size, config.memory_backing);
  }
  std::uint32_t slot = 0;
  for (const memory::RamRegion& r : ram_->regions()) vm_.set_user_memory_region(slot++, r.gpa, r.size, r.host());
  describe(config);
  map_firmware(config);
  create_devices(config);
  load_guest(config);
  config_ = config;
  capture_power_on();
}

void Machine::describe(const MachineConfig& config) {
  info_.machine_type = config.machine_type;
  info_.vcpus = config.vcpus;
  info_.ram_size = ram_->total_size();
  std::vector<boot::MemoryRegion> regions;
  for (const memory::RamRegion& r : ram_->regions()) {
    info_.ram.push_back(sdk::MemoryRange{r.gpa, r.size, 1});
    regions.push_back(boot::MemoryRegion{r.gpa, r.size});
  }
  for (const boot::E820Entry& e : boot::build_e820(regions)) info_.e820.push_back(sdk::MemoryRange{e.addr, e.size, e.type});
  info_.kernel_path = config.kernel.string();
  info_.initrd_path = config.initrd ? config.initrd->string() : "";
  info_.cmdline = config.cmdline;
  info_.firmware_path = config.firmware ? config.firmware->string() : "";
}

void Machine::map_firmware(const MachineConfig& config) {
  if (!config.firmware) return;
  firmware_.emplace(*config.firmware);
  const bool read_only = system_.check_extension(KVM_CAP_READONLY_MEM) > 0;
  const auto slot = static_cast<std::uint32_t>(ram_->regions().size());
  vm_.set_user_memory_region(slot, firmware_->base(), firmware_->size(), firmware_->host(),
                             read_only ? KVM_MEM_READONLY : 0);
  if (!read_only) log_->warn("this KVM has no read-only memory slots: the firmware ROM is writable RAM here");
  // Claimed on the MMIO bus too, so no device's BAR can be placed over the
  // ROM. Reads are served by the slot; writes to a read-only slot exit to here
  // and are dropped, as a ROM ignores them.
  sdk::IoOps ops;
  ops.read = [rom = firmware_->bytes()](std::uint64_t offset, unsigned size) {
    std::uint64_t value = 0;
    if (offset < rom.size() && size <= rom.size() - offset) std::memcpy(&value, rom.data() + offset, size);
    return value;
  };
  ops.write = [](std::uint64_t, unsigned, std::uint64_t) {};
  mmio_.add(firmware_->base(), firmware_->size(), std::move(ops), "firmware");
  log_->info("firmware {} ({} KiB) mapped at {:#x}{}", config.firmware->string(), firmware_->size() >> 10,
             firmware_->base(), read_only ? " read-only" : "");
}

boot::CpuEntryState Machine::start_firmware() {
  boot::write_bios_shadow(*ram_, *firmware_);
  log_->info("booting firmware at the reset vector; its last {} KiB are also at {:#x}",
             std::min(firmware_->size(), boot::kBiosShadowSize) >> 10,
             boot::kBiosShadowBase + boot::kBiosShadowSize - std::min(firmware_->size(), boot::kBiosShadowSize));
  return boot::reset_vector_entry();
}

kvm::Vcpu& Machine::vcpu(std::size_t index) { return vcpus_.at(index)->vcpu(); }

Machine::~Machine() {
  stopping_ = true;
  {
    std::lock_guard lock(park_mutex_);
    pause_requested_ = false;
  }
  park_cv_.notify_all();
  kick_all_vcpus();
  vcpus_.clear();
  devices_.clear();
}

void Machine::create_devices(const MachineConfig& config) {
  pci_ = std::make_unique<pci::PciHost>(ports_, [this](unsigned gsi) -> sdk::IrqLine& { return irqs_.claim(gsi, "pci"); });
  const Buses buses{vm_, info_, ports_, mmio_, irqs_, *ram_, loop_, clock_, *this, pci_.get()};
  for (const DeviceSpec& spec : config.devices) {
    devices_.push_back(
        std::make_unique<DeviceHost>(spec.id, *spec.type, spec.plugin, spec.plugin_version, spec.properties, buses));
    // An incoming guest's devices stay quiet until it starts here: their
    // state is about to be loaded, and until the pause the source serves
    // any backend both hold (a handed-over socket).
    if (config.incoming) devices_.back()->hold_callbacks();
    if (config.handed_over_fds) {
      if (auto node = config.handed_over_fds->extract(spec.id))
        devices_.back()->give_handed_over_fds(std::move(node.mapped()));
    }
    devices_.back()->create_and_realize();
  }
  close_untaken_fds(config);
  for (auto& d : devices_) {
    std::lock_guard lock(d->lock());
    d->device().reset();
  }
}

void Machine::close_untaken_fds(const MachineConfig& config) {
  for (auto& d : devices_) {
    for (const std::string& name : d->close_untaken_handed_over_fds())
      log_->warn("device {}: it did not take the backend fd '{}' the old molt handed over; closed it",
                 d->id(), name);
  }
  if (!config.handed_over_fds) return;
  // The fingerprint comparison reports the missing device itself.
  for (const auto& [id, fds] : *config.handed_over_fds)
    log_->warn("the old molt handed over {} fd(s) of device {}, which this machine lacks; closed them",
               fds.size(), id);
  config.handed_over_fds->clear();
}

boot::CpuEntryState Machine::load_kernel(const MachineConfig& config) {
  boot::BootConfig boot_config;
  boot_config.kernel = config.kernel;
  boot_config.initrd = config.initrd;
  boot_config.cmdline = config.cmdline;
  boot_config.vcpus = config.vcpus;
  boot_config.pci.emplace();
  for (const pci::PciHost::InterruptSource& s : pci_->interrupt_sources())
    boot_config.pci->interrupts.push_back(boot::PciInterrupt{s.slot, s.pin, s.gsi});
  for (const memory::RamRegion& r : ram_->regions()) boot_config.ram.push_back(boot::MemoryRegion{r.gpa, r.size});
  const boot::BootResult booted = boot::load_kernel(*ram_, boot_config);
  log_->info("kernel {} loaded as {}; MP table at {:#x}", config.kernel.string(), booted.kernel_kind,
             booted.mp_table_addr);
  return booted.bsp;
}

boot::CpuEntryState Machine::load_image(const MachineConfig& config) {
  // With firmware, a kernel in the description is the firmware's to load (fw_cfg carries it).
  return firmware_ ? start_firmware() : load_kernel(config);
}

void Machine::load_guest(const MachineConfig& config) {
  // An incoming guest's RAM (and registers) come from the migration, RAM
  // perhaps shared with the running source (cpr-transfer): nothing is
  // written to it here. A later reset loads the image.
  const std::optional<boot::CpuEntryState> bsp_entry =
      config.incoming ? std::nullopt : std::optional<boot::CpuEntryState>(load_image(config));

  const kvm::CpuidTable supported = system_.supported_cpuid();
  supported_msrs_ = system_.msr_index_list();
  const std::vector<std::uint32_t>& msrs = supported_msrs_;
  for (unsigned i = 0; i < config.vcpus; ++i) {
    vcpus_.push_back(std::make_unique<VcpuRunner>(*this, i));
    kvm::Vcpu& vcpu = vcpus_.back()->vcpu();
    kvm::CpuidTable cpuid = kvm::cpuid_for_vcpu(supported, i, config.vcpus);
    vcpu.set_cpuid(cpuid);
    if (i == 0) guest_cpuid_ = std::move(cpuid);
    kvm::setup_vcpu_common(vcpu, msrs);
  }
  if (bsp_entry) set_entry_state(vcpus_.front()->vcpu(), *bsp_entry);
  migratable_msrs_ = migration::migratable_msrs(vcpus_.front()->vcpu(), supported_msrs_);
  // Incoming from the moment the machine exists: a cpr-transfer's small state
  // can arrive, load and be committed (start_incoming) before run() is called.
  if (config.incoming) state_ = RunState::Incoming;
}

ExitResult Machine::run() {
  install_kick_handler();
  const std::uint64_t startup_cpu = cpu_time_us();
  log_->info("starting {} vCPU(s); start-up took {}.{:03} CPU-ms", vcpus_.size(), startup_cpu / 1000,
             startup_cpu % 1000);
  if (config_.incoming) {
    log_->debug("{}", state_ == RunState::Incoming ? "waiting for an incoming migration"
                                                   : "the incoming guest already started");
  } else {
    started_ns_ = steady_ns();
    set_state(RunState::Running, "started");
    for (auto& v : vcpus_) v->start();
  }
  loop_.run();
  stopping_ = true;
  {
    std::lock_guard lock(park_mutex_);
    pause_requested_ = false;
  }
  park_cv_.notify_all();
  kick_all_vcpus();
  for (auto& v : vcpus_) v->join();
  std::lock_guard lock(exit_mutex_);
  return exit_.value_or(ExitResult{sdk::ExitReason::Poweroff, 0, "stopped"});
}

void Machine::kick_all_vcpus() {
  for (auto& v : vcpus_) v->kick();
}

void Machine::finish(ExitResult result) {
  {
    std::lock_guard lock(exit_mutex_);
    if (exit_) {  // the first reason wins; the loop still must stop
      loop_.stop();
      return;
    }
    exit_ = result;
  }
  stopping_ = true;
  {
    // Taken so a vCPU between its predicate check and its wait sees the wake-up.
    std::lock_guard lock(park_mutex_);
  }
  park_cv_.notify_all();
  set_state(RunState::ShuttingDown, result.detail);
  loop_.stop();
}

void Machine::set_state(RunState state, const std::string& reason) {
  state_ = state;
  if (state_listener_) state_listener_(state, reason);
}

void Machine::park_if_pause_requested() {
  if (!pause_requested_) return;
  std::unique_lock lock(park_mutex_);
  if (!pause_requested_) return;
  ++parked_vcpus_;
  park_cv_.notify_all();
  park_cv_.wait(lock, [this] { return !pause_requested_ || stopping_; });
  --parked_vcpus_;
}

bool Machine::start_incoming() {
  std::lock_guard control(control_mutex_);
  if (state_ != RunState::Incoming || stopping_) return false;
  started_ns_ = steady_ns();
  if (!transition(RunState::Incoming, RunState::Running, "migration loaded")) return false;
  release_devices();
  for (auto& v : vcpus_) v->start();
  return true;
}

void Machine::fail_incoming(const std::string& why) {
  finish(ExitResult{sdk::ExitReason::Error, 0, "incoming migration failed: " + why});
}

bool Machine::enter_post_migrate() {
  std::lock_guard control(control_mutex_);
  hold_devices();
  return transition(RunState::Paused, RunState::PostMigrate, "migrated: the guest runs at the destination");
}

void Machine::hold_devices() {
  for (auto& d : devices_) d->hold_callbacks();
}

void Machine::release_devices() {
  for (auto& d : devices_) d->release_callbacks();
}

void Machine::set_dirty_logging(bool on) {
  std::uint32_t slot = 0;
  for (const memory::RamRegion& r : ram_->regions())
    vm_.set_user_memory_region(slot++, r.gpa, r.size, r.host(), on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

void Machine::hold_controls(std::string reason) {
  std::lock_guard lock(hold_mutex_);
  held_reason_ = std::move(reason);
}

std::string Machine::controls_held() const {
  std::lock_guard lock(hold_mutex_);
  return held_reason_;
}

bool Machine::pause(std::chrono::milliseconds timeout) {
  std::lock_guard control(control_mutex_);
  return controls_held().empty() && pause_unchecked(timeout);
}

bool Machine::pause_for_migration(std::chrono::milliseconds timeout) {
  std::lock_guard control(control_mutex_);
  if (!pause_unchecked(timeout)) return false;
  hold_devices();
  return true;
}

bool Machine::resume() {
  std::lock_guard control(control_mutex_);
  return controls_held().empty() && resume_unchecked();
}

bool Machine::resume_after_migration() {
  std::lock_guard control(control_mutex_);
  release_devices();
  return resume_unchecked();
}

bool Machine::pause_unchecked(std::chrono::milliseconds timeout) {
  if (state_ != RunState::Running) return false;
  {
    std::lock_guard lock(park_mutex_);
    pause_requested_ = true;
  }
  kick_all_vcpus();
  std::unique_lock lock(park_mutex_);
  const bool parked = park_cv_.wait_for(lock, timeout, [this] { return parked_vcpus_ == live_vcpu_threads_; });
  if (!parked || stopping_) {
    pause_requested_ = false;
    lock.unlock();
    park_cv_.notify_all();
    if (!parked) log_->warn("pause: not every vCPU stopped within {} ms; the VM keeps running", timeout.count());
    return false;
  }
  lock.unlock();
  return transition(RunState::Running, RunState::Paused, "paused on request");
}

bool Machine::transition(RunState from, RunState to, const std::string& reason) {
  // A guest exit may have moved the state to ShuttingDown meanwhile; that wins.
  if (!state_.compare_exchange_strong(from, to)) return false;
  if (state_listener_) state_listener_(to, reason);
  return true;
}

bool Machine::resume_unchecked() {
  if (state_ != RunState::Paused) return false;
  {
    std::lock_guard lock(park_mutex_);
    pause_requested_ = false;
  }
  park_cv_.notify_all();
  return transition(RunState::Paused, RunState::Running, "resumed on request");
}

std::uint64_t Machine::uptime_ns() const {
  const std::uint64_t started = started_ns_;
  if (started == 0) return 0;
  return steady_ns() - started;
}

std::optional<ExitResult> Machine::exit_result() const {
  std::lock_guard lock(exit_mutex_);
  return exit_;
}

void Machine::stop(const std::string& why) { finish(ExitResult{sdk::ExitReason::Poweroff, 0, why}); }

void Machine::request_exit(sdk::ExitReason reason, int status) {
  std::string detail;
  switch (reason) {
    case sdk::ExitReason::Poweroff: detail = "the guest powered off"; break;
    case sdk::ExitReason::Reset: detail = "the guest reset"; break;
    case sdk::ExitReason::DebugExit: detail = fmt::format("the guest wrote {} to the debug-exit port", status); break;
    case sdk::ExitReason::Error: detail = "a device reported a fatal error"; break;
  }
  finish(ExitResult{reason, status, detail});
}

}  // namespace molt::core::machine
