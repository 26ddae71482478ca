#include "core/app/run_command.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <molt/sdk/error.hpp>

#include "core/kvm/kvm.hpp"
#include "core/log.hpp"
#include "core/machine/description.hpp"
#include "core/machine/machine.hpp"
#include "core/machine/machine_types.hpp"
#include "core/migration/cpr.hpp"
#include "core/migration/engine.hpp"
#include "core/migration/fingerprint.hpp"
#include "core/migration/ram_layout.hpp"
#include "core/monitor/machine_control.hpp"
#include "core/monitor/server.hpp"
#include "core/plugin/registry.hpp"

namespace molt::core::app {

namespace fs = std::filesystem;
using machine::MachineDescription;

void add_run_options(CLI::App& cmd, RunOptions& o) {
  cmd.add_option("machine", o.machine_file, "Machine description (JSON), e.g. machines/default.json")->required();
  cmd.add_option("--kernel", o.kernel, "Kernel to boot instead of the file's (PVH ELF or bzImage)");
  cmd.add_option(
      "--firmware,--bios", o.firmware,
      "BIOS image to boot from the reset vector instead of the file's, e.g. /usr/share/seabios/bios.bin");
  cmd.add_option("--initrd", o.initrd, "Initial ramdisk instead of the file's");
  cmd.add_option("--cmdline,--append", o.cmdline, "Kernel command line instead of the file's");
  cmd.add_option("--memory,-m", o.memory, "Guest RAM instead of the file's: 512M, 2G, or bytes");
  cmd.add_option("--vcpus,--smp", o.vcpus, "Number of vCPUs instead of the file's");
  cmd.add_option("--plugin-dir", o.plugin_dirs, "Also load plugins from this directory (repeatable)");
  cmd.add_option("--incoming", o.incoming,
                 "Wait for a migration instead of booting: tcp:HOST:PORT, unix:PATH, file:PATH (restore a "
                 "snapshot), fd:N, or defer (then migrate.incoming on the monitor names it)");
  cmd.add_option("--cpr-channel", o.cpr_channel,
                 "cpr-transfer: before building the VM, wait on this unix:PATH for the running source's RAM "
                 "(passed as memfds); needs --incoming for the main channel (docs/cpr.md)");
  cmd.add_option("--restore", o.restore, "Restore the guest saved in this snapshot file (vm.snapshot, or "
                                          "migrate.start to file:PATH) instead of booting");
  cmd.add_option("--api-socket", o.api_socket,
                 "Serve the JSON-RPC monitor on this UNIX socket (docs/monitor.md), instead of the file's api_socket");
}

namespace {

// Command-line overrides, checked as strictly as the file itself.
void apply_overrides(const RunOptions& o, MachineDescription& d, const machine::HostLimits& limits) {
  if (o.kernel) d.kernel.path = fs::absolute(*o.kernel).lexically_normal();
  if (o.firmware) d.firmware = machine::FirmwareConfig{fs::absolute(*o.firmware).lexically_normal()};
  if (o.initrd) d.kernel.initrd = fs::absolute(*o.initrd).lexically_normal();
  if (o.cmdline) d.kernel.cmdline = *o.cmdline;
  if (o.vcpus) {
    if (*o.vcpus == 0 || *o.vcpus > limits.max_vcpus)
      throw sdk::Error(fmt::format("--vcpus {}: expected 1 to {}", *o.vcpus, limits.max_vcpus));
    d.vcpus = *o.vcpus;
  }
  if (o.memory) {
    const auto size = sdk::parse_size(*o.memory);
    if (!size || *size == 0 || *size % 4096 != 0)
      throw sdk::Error("--memory " + *o.memory + ": expected a non-zero multiple of 4 KiB such as 512M or 2G");
    if (limits.host_memory_bytes) machine::check_memory_fits(*size, *limits.host_memory_bytes, "--memory");
    d.memory_size = *size;
  }
}

void load_plugins(const RunOptions& o, const MachineDescription& d, plugin::Registry& registry) {
  std::vector<fs::path> dirs = plugin::default_plugin_dirs();
  dirs.insert(dirs.end(), d.plugin_dirs.begin(), d.plugin_dirs.end());
  for (const auto& extra : o.plugin_dirs) dirs.emplace_back(extra);
  for (const auto& dir : dirs) registry.load_directory(dir);
  if (registry.plugins().empty()) {
    throw sdk::Error("no plugins found; build them (cmake --build build) or pass --plugin-dir");
  }
}

machine::MachineConfig to_config(const MachineDescription& d, const plugin::Registry& registry) {
  const machine::MachineType& type = machine::resolve_machine_type(d.machine_type, d.source);
  machine::MachineConfig config;
  config.machine_type = type.name;
  config.vcpus = d.vcpus;
  config.memory_size = d.memory_size;
  switch (d.memory_backend) {
    case machine::MemoryBackend::Memfd:
      config.memory_backing = memory::RamBacking::Memfd;
      break;
    case machine::MemoryBackend::Anonymous:
      config.memory_backing = memory::RamBacking::Anonymous;
      break;
    case machine::MemoryBackend::File:
      config.memory_backing = memory::RamBacking::File;
      config.memory_file = memory::RamFile{d.memory_path.value_or(fs::path()), false};
      break;
  }
  config.kernel = d.kernel.path;
  config.initrd = d.kernel.initrd;
  config.cmdline = d.kernel.cmdline;
  if (d.firmware) config.firmware = d.firmware->path;
  for (machine::ResolvedDevice& r : machine::resolve_devices(d, registry.types(), type.compat)) {
    const plugin::LoadedPlugin& from = *registry.plugin_of(r.type->name);
    config.devices.push_back(machine::DeviceSpec{r.config->id, r.type, from.name, std::move(r.properties), from.version});
  }
  return config;
}

// Restoring a snapshot that left the RAM in place in a file: the machine
// must map that very file, and keep its pages. Checked before anything is
// built, so a refusal starts nothing.
void prepare_in_place_restore(const std::string& incoming, const MachineDescription& d,
                              machine::MachineConfig& config) {
  if (incoming.rfind("file:", 0) != 0) return;
  const std::optional<std::vector<migration::RamLayoutBlock>> layout =
      migration::peek_ram_layout(incoming.substr(5));
  if (!layout || !migration::any_in_place(*layout)) return;
  migration::check_in_place_restore(
      *layout, migration::MachineRam{machine::to_string(d.memory_backend), d.memory_path.value_or(fs::path()),
                                     d.memory_size});
  config.memory_file->keep_contents = true;
}

// SIGINT and SIGTERM stop the VM cleanly (devices restore the terminal).
std::uint64_t watch_stop_signals(machine::Machine& m, const sigset_t& signals, kvm::Fd& fd) {
  fd = kvm::Fd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!fd) throw sdk::Error("signalfd failed");
  return m.loop().add_fd(fd.get(), EPOLLIN, [&m, &fd](std::uint32_t) {
    signalfd_siginfo info{};
    if (::read(fd.get(), &info, sizeof info) == sizeof info) {
      m.stop(info.ssi_signo == SIGINT ? "stopped by SIGINT" : "stopped by SIGTERM");
    }
  });
}

// Runs `wait` (which blocks) until it returns, or a stop signal arrives and
// `interrupt` makes it throw; the signal's name then comes back. The watcher
// sleeps in poll() on a signalfd and an eventfd, so it ends the moment
// `wait` does (the cpr handover's preparation waits for it).
template <class Wait>
std::optional<std::string> unless_stopped(const sigset_t& signals, Wait&& wait, std::function<void()> interrupt) {
  kvm::Fd signal_fd(::signalfd(-1, &signals, SFD_CLOEXEC));
  kvm::Fd done(::eventfd(0, EFD_CLOEXEC));
  if (!signal_fd || !done) throw sdk::Error(fmt::format("cannot watch for stop signals: {}", std::strerror(errno)));
  std::optional<std::string> stopped_by;
  std::thread watcher([&] {
    pollfd fds[2] = {{signal_fd.get(), POLLIN, 0}, {done.get(), POLLIN, 0}};
    for (;;) {
      if (::poll(fds, 2, -1) < 0) continue;  // EINTR
      if (fds[1].revents) return;
      signalfd_siginfo info{};
      if ((fds[0].revents & POLLIN) && ::read(signal_fd.get(), &info, sizeof info) == sizeof info &&
          (info.ssi_signo == SIGINT || info.ssi_signo == SIGTERM)) {
        stopped_by = info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM";
        interrupt();
        return;
      }
    }
  });
  const auto finish = [&] {
    const std::uint64_t one = 1;
    if (::write(done.get(), &one, sizeof one) < 0) {
      // Only a full counter makes this fail; the join below would then hang.
      core::logger("core.run")->error("cannot wake the stop-signal watcher: {}", std::strerror(errno));
    }
    watcher.join();
  };
  try {
    wait();
  } catch (...) {
    finish();
    if (stopped_by) return stopped_by;
    throw;
  }
  finish();
  return stopped_by;
}

// cpr-transfer's first step: the source's RAM, before the VM exists. Returns
// nullopt when a stop signal ended the wait.
std::optional<migration::CprHandover> receive_cpr_ram(const std::string& uri, machine::MachineConfig& config,
                                                      const sigset_t& stop_signals) {
  auto log = core::logger("core.run");
  migration::CprReceiver receiver(migration::ChannelUri::parse(uri));
  log->info("waiting on {} for the source's RAM (cpr-transfer)", uri);
  migration::CprHandover handover;
  if (const auto signal =
          unless_stopped(stop_signals, [&] { handover = receiver.receive(); }, [&] { receiver.shutdown(); })) {
    log->info("stopped by {} while waiting for the source's RAM", *signal);
    return std::nullopt;
  }
  std::string problem;
  if (handover.blocks.size() != 1 || handover.blocks[0].name != "pc.ram") {
    problem = fmt::format("the source hands over {} RAM block(s); this machine has one, pc.ram", handover.blocks.size());
  } else if (handover.blocks[0].size != config.memory_size) {
    problem = fmt::format("ram block pc.ram: {} MiB at source, {} MiB here", handover.blocks[0].size >> 20,
                          config.memory_size >> 20);
  }
  if (!problem.empty()) {
    migration::CprReceiver::answer(handover, {{"accept", false}, {"differences", {problem}}});
    throw sdk::Error("cpr-transfer refused: " + problem);
  }
  config.adopted_ram_fd = handover.blocks[0].fd.get();
  log->info("took RAM block pc.ram ({} MiB) from the source", handover.blocks[0].size >> 20);
  // The devices take their backends' fds as they realize; the Machine closes the rest.
  config.handed_over_fds = std::make_shared<machine::MachineConfig::HandedOverFds>();
  for (migration::HandedDeviceFd& f : handover.device_fds) {
    log->info("took device {}'s backend fd '{}' from the source", f.device, f.name);
    (*config.handed_over_fds)[f.device][f.name] = std::move(f.fd);
  }
  handover.device_fds.clear();
  return handover;
}

// Tells the source whether this machine can take its guest.
void answer_cpr(migration::CprHandover& handover, machine::Machine& vm) {
  std::vector<std::string> differences;
  try {
    differences = migration::compare(migration::fingerprint_from_json(handover.fingerprint),
                                     migration::fingerprint_of(vm));
  } catch (const sdk::Error& e) {
    differences.push_back(e.what());
  }
  monitor::json::array list;
  for (const std::string& d : differences) list.push_back(monitor::json::string(d));
  migration::CprReceiver::answer(handover, {{"accept", differences.empty()}, {"differences", list}});
  if (!differences.empty()) throw sdk::Error(fmt::format("cpr-transfer refused: {}", fmt::join(differences, "; ")));
}

}  // namespace

int run_machine(const RunOptions& o, const sigset_t& stop_signals) {
  auto log = core::logger("core.run");
  kvm::System probe;
  machine::HostLimits limits{probe.max_vcpus(), machine::host_memory_bytes()};
  MachineDescription description = machine::load_machine_file(o.machine_file, limits);
  apply_overrides(o, description, limits);

  plugin::Registry registry;
  load_plugins(o, description, registry);
  machine::MachineConfig config = to_config(description, registry);
  std::optional<std::string> incoming = o.incoming;
  if (o.restore) {
    if (incoming) throw sdk::Error("--restore and --incoming both say where the guest comes from; give one");
    incoming = "file:" + fs::absolute(*o.restore).string();
  }
  config.incoming = incoming.has_value();
  if (incoming) prepare_in_place_restore(*incoming, description, config);
  std::optional<migration::CprHandover> handover;
  if (o.cpr_channel) {
    if (!incoming) throw sdk::Error("--cpr-channel needs --incoming URI (or defer) for the main channel");
    handover = receive_cpr_ram(*o.cpr_channel, config, stop_signals);
    if (!handover) return 0;
  }

  machine::Machine vm(config);
  kvm::Fd signal_fd;
  watch_stop_signals(vm, stop_signals, signal_fd);

  // The monitor listens before the guest starts, so a client can connect and
  // subscribe as soon as the socket exists.
  monitor::MachineVmControl control(vm, registry);
  std::optional<monitor::MonitorServer> server;
  migration::Migration migration(vm, [&server](const std::string& event, monitor::json::object params) {
    if (server) server->publish(event, std::move(params));
  });
  monitor::MachineMigrationControl migration_control(migration);
  const std::optional<fs::path> api_socket =
      o.api_socket ? std::optional<fs::path>(fs::absolute(*o.api_socket)) : description.api_socket;
  if (api_socket) {
    server.emplace(vm.loop(), monitor::method_table(), monitor::Services{control, &migration_control});
    server->listen(*api_socket);
    control.connect_events([&server](const std::string& event, monitor::json::object params) {
      server->publish(event, std::move(params));
    });
    log->info("monitor listening on {}", api_socket->string());
  }
  if (incoming && *incoming != "defer") {
    migration.listen(*incoming);
    log->info("waiting for an incoming migration on {}", migration.listen_address());
  } else if (incoming) {
    log->info("waiting for migrate.incoming on the monitor before listening for a migration");
  }
  if (handover) answer_cpr(*handover, vm);
  const machine::ExitResult result = vm.run();
  if (server) server->flush(std::chrono::milliseconds(500));
  if (result.reason == sdk::ExitReason::Error) {
    throw sdk::Error(result.detail);
  }
  log->info("{}; exit status {}", result.detail, result.status());
  return result.status();
}

}  // namespace molt::core::app
