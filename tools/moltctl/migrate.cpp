#include "migrate.hpp"

#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "format.hpp"
#include "migrate_format.hpp"

namespace moltctl {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// migrate.status every 100 ms: a completion or failure shows within a tenth
// of a second, and the monitor's event loop barely notices.
constexpr auto kPollInterval = 100ms;
// Without a terminal, one progress line a second (and one per state change).
constexpr auto kPlainLineInterval = 1s;
// The window the transfer rate is measured over.
constexpr auto kRateWindow = 1s;

volatile std::sig_atomic_t interrupted = 0;

// The first Ctrl-C during `migrate start` cancels the migration and waits
// for the source to say so; a second one ends moltctl at once.
void on_interrupt(int) {
  interrupted = 1;
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGINT, &dfl, nullptr);
}

void cancel_on_interrupt() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  ::sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
}

std::string state_of(const json::value& status) {
  return scalar_text(status.at("state"));
}

// Draws the progress on stderr: a bar redrawn in place on a terminal,
// plain lines otherwise (logs, pipes, tests).
class ProgressDisplay {
 public:
  explicit ProgressDisplay(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {}

  void show(const json::value& status) {
    const Clock::time_point now = Clock::now();
    const std::optional<double> rate = measure_rate(status, now);
    if (quiet_) return;
    const std::string state = state_of(status);
    const auto total_ms = status.as_object().if_contains("total_ms");
    const double seconds = total_ms && total_ms->is_number() ? total_ms->to_number<double>() / 1000.0 : 0;
    const std::string elapsed = fmt::format("{:6.1f} s  ", seconds);
    if (tty_) {
      const int columns = terminal_columns();
      std::string line = elapsed + format_progress_bar(status, columns >= 100 ? 24 : 12, rate);
      if (static_cast<int>(line.size()) >= columns) line.resize(static_cast<std::size_t>(columns - 1));
      std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
      drawn_ = true;
    } else if (state != last_state_ || now - last_line_ >= kPlainLineInterval) {
      std::fprintf(stderr, "%s%s\n", elapsed.c_str(), format_progress(status, rate).c_str());
      last_line_ = now;
    }
    std::fflush(stderr);
    last_state_ = state;
  }

  // Ends the bar's line so what follows starts on a fresh one.
  void finish() {
    if (drawn_) std::fputc('\n', stderr);
    drawn_ = false;
  }

 private:
  std::optional<double> measure_rate(const json::value& status, Clock::time_point now) {
    const json::object& s = status.as_object();
    const char* counter = scalar_text(s.at("role")) == "destination" ? "bytes_received" : "bytes_sent";
    const json::value* bytes = s.if_contains(counter);
    if (!bytes || !bytes->is_number()) return std::nullopt;
    samples_.emplace_back(now, bytes->to_number<double>());
    while (samples_.size() > 2 && now - samples_[1].first >= kRateWindow) samples_.pop_front();
    const auto& [then, before] = samples_.front();
    const double seconds = std::chrono::duration<double>(now - then).count();
    if (seconds < 0.2 || migration_finished(state_of(status))) return std::nullopt;
    return (samples_.back().second - before) / seconds;
  }

  static int terminal_columns() {
    winsize ws{};
    if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40) return ws.ws_col;
    return 80;
  }

  bool quiet_;
  bool tty_;
  bool drawn_ = false;
  std::string last_state_;
  Clock::time_point last_line_{};
  std::deque<std::pair<Clock::time_point, double>> samples_;
};

// Follows the migration until it ends, then prints its figures on stdout
// (the raw status with --json) and, unless it completed, why on stderr.
void follow(RpcClient& client, Runner& r, bool quiet, bool cancel_when_interrupted) {
  ProgressDisplay display(quiet);
  bool cancel_sent = false;
  json::value status;
  std::string state = "unknown";
  for (;;) {
    try {
      status = client.call("migrate.status");
    } catch (const ClientError& e) {
      display.finish();
      throw ClientError(fmt::format("{} while the migration was {} (did molt exit?)", e.what(), state));
    }
    state = state_of(status);
    display.show(status);
    if (migration_finished(state)) break;
    if (interrupted && cancel_when_interrupted && !cancel_sent) {
      cancel_sent = true;
      try {
        client.call("migrate.cancel");
      } catch (const ReplyError& e) {  // too late, or already over: the status says how it ends
        display.finish();
        std::fprintf(stderr, "moltctl: cannot cancel: %s\n", e.what());
      }
    }
    std::this_thread::sleep_for(kPollInterval);
  }
  display.finish();
  std::cout << (r.o.json ? json::serialize(status) + "\n" : format_migrate_report(status)) << std::flush;
  if (state != "completed") {
    std::fprintf(stderr, "moltctl: %s", format_migrate_failure(status).c_str());
    r.exit_status = kExitErrorReply;
  }
}

// The parameters `migrate start` and `migrate set-parameters` take.
struct ParameterOptions {
  std::uint64_t downtime_limit_ms = 0;
  std::string bandwidth;
  unsigned channels = 0;
  unsigned max_iterations = 0;
  std::uint64_t connect_timeout_ms = 0;
  std::vector<std::pair<const char*, CLI::Option*>> given;

  void add_to(CLI::App* command) {
    const CLI::Validator byte_size(
        [](std::string& text) -> std::string {
          try {
            parse_byte_size(text);
            return {};
          } catch (const std::invalid_argument& e) {
            return e.what();
          }
        },
        "SIZE");
    given = {
        {"downtime_limit_ms",
         command->add_option("--downtime-limit", downtime_limit_ms,
                             "Longest pause the switchover may cause, in ms (default 300)")},
        {"max_bandwidth", command
                              ->add_option("--bandwidth", bandwidth,
                                           "Cap in bytes per second over all channels: 1073741824, 500M, 1G "
                                           "(powers of 1024); 0 removes the cap")
                              ->check(byte_size)},
        {"channels",
         command->add_option("--channels", channels, "Connections carrying RAM, 1 to 16 (tcp and unix)")},
        {"max_iterations", command->add_option("--max-iterations", max_iterations,
                                               "Switch over after this many passes over RAM; 0: no cap")},
        {"connect_timeout_ms", command->add_option("--connect-timeout", connect_timeout_ms,
                                                   "How long to wait for the destination to answer, in ms")},
    };
  }

  // Only the options typed on the command line, as migrate.set_parameters params.
  json::object params() const {
    json::object out;
    for (const auto& [name, option] : given) {
      if (option->count() == 0) continue;
      const std::string_view key(name);
      if (key == "downtime_limit_ms") out[key] = downtime_limit_ms;
      if (key == "max_bandwidth") out[key] = parse_byte_size(bandwidth);
      if (key == "channels") out[key] = channels;
      if (key == "max_iterations") out[key] = max_iterations;
      if (key == "connect_timeout_ms") out[key] = connect_timeout_ms;
    }
    return out;
  }
};

void add_start(CLI::App* migrate, Runner& r) {
  static std::string uri, mode, cpr_uri, ram;
  static bool detach = false, quiet = false;
  static ParameterOptions parameters;
  CLI::App* start = migrate->add_subcommand(
      "start", "Move the guest to a destination molt (migrate.start) and follow it to the end");
  start->footer(
      "Progress goes to stderr: a bar on a terminal, a line a second otherwise; the final figures to stdout. "
      "Exit status 0 when the migration completed, 1 when it failed or was cancelled (the error and every "
      "handshake difference on stderr). Ctrl-C cancels the migration; a second Ctrl-C leaves it running.");
  start->add_option("uri", uri, "Where the destination listens: tcp:HOST:PORT, unix:PATH, file:PATH or fd:N")
      ->required();
  start->add_option("--mode", mode, "precopy (the default) or cpr-transfer (a new molt on this host, docs/cpr.md)")
      ->check(CLI::IsMember({"precopy", "cpr-transfer"}));
  start->add_option("--cpr", cpr_uri, "cpr-transfer: the unix:PATH the new molt waits on (its --cpr-channel)");
  start->add_option("--ram", ram,
                    "file: URIs: file (the default: the pages go into the snapshot) or in-place (they stay in "
                    "the guest's RAM file, which the snapshot names)")
      ->check(CLI::IsMember({"file", "in-place"}));
  parameters.add_to(start);
  start->add_flag("--detach,-d", detach, "Return once it started; follow it with `migrate watch`");
  start->add_flag("--quiet,-q", quiet, "No progress on stderr, only the final figures");
  start->callback([&r] {
    r.action = [&r] {
      RpcClient client = r.connect();
      if (const json::object changes = parameters.params(); !changes.empty())
        client.call("migrate.set_parameters", changes);
      json::object request{{"uri", uri}};
      if (!mode.empty()) request["mode"] = mode;
      if (!cpr_uri.empty()) request["cpr_uri"] = cpr_uri;
      if (!ram.empty()) request["ram"] = ram;
      const json::value started = client.call("migrate.start", request);
      if (detach) {
        std::cout << (r.o.json ? json::serialize(started) + "\n"
                               : fmt::format("migration to {} started: {}\n", uri, state_of(started)))
                  << std::flush;
        return;
      }
      cancel_on_interrupt();
      follow(client, r, quiet, true);
    };
  });
}

void add_watch(CLI::App* migrate, Runner& r) {
  static bool quiet = false;
  CLI::App* watch = migrate->add_subcommand(
      "watch",
      "Follow the running migration (source or destination) to its end, with the progress and final figures "
      "of `migrate start` and its exit status");
  watch->add_flag("--quiet,-q", quiet, "No progress on stderr, only the final figures");
  watch->callback([&r] {
    r.action = [&r] {
      RpcClient client = r.connect();
      if (state_of(client.call("migrate.status")) == "none") {
        std::fprintf(stderr, "moltctl: no migration has run on this molt; there is nothing to watch\n");
        r.exit_status = kExitErrorReply;
        return;
      }
      follow(client, r, quiet, false);
    };
  });
}

// migrate.cancel returns at once; this waits (within --timeout) for the
// migration to end so the state printed is the outcome, not "active".
void add_cancel(CLI::App* migrate, Runner& r) {
  migrate
      ->add_subcommand("cancel",
                       "Stop the migration before the destination takes over; the source guest runs on "
                       "(migrate.cancel). Prints the state it ended in")
      ->callback([&r] {
        r.action = [&r] {
          RpcClient client = r.connect();
          json::value status = client.call("migrate.cancel");
          const auto deadline =
              Clock::now() + std::chrono::milliseconds(static_cast<long>(r.o.timeout_s * 1000));
          try {
            while (!migration_finished(state_of(status)) && Clock::now() < deadline) {
              std::this_thread::sleep_for(kPollInterval);
              status = client.call("migrate.status");
            }
          } catch (const ClientError&) {  // a destination exits once its wait is cancelled
            std::cout << (r.o.json ? json::serialize(status) + "\n" : "cancelled; molt exited\n")
                      << std::flush;
            return;
          }
          std::cout << (r.o.json ? json::serialize(status) + "\n" : state_of(status) + "\n") << std::flush;
        };
      });
}

void add_parameter_commands(CLI::App* migrate, Runner& r) {
  static ParameterOptions parameters;
  CLI::App* set = migrate->add_subcommand(
      "set-parameters",
      "Change the parameters of the next migration or of the running one (migrate.set_parameters); prints "
      "them all");
  parameters.add_to(set);
  set->callback([&r] {
    r.action = [&r] {
      const json::object changes = parameters.params();
      if (changes.empty())
        throw ClientError(
            "set-parameters: give at least one of --downtime-limit, --bandwidth, --channels, "
            "--max-iterations, "
            "--connect-timeout");
      r.call("migrate.set_parameters", changes, format_migrate_parameters);
    };
  });
  migrate->add_subcommand("get-parameters", "The migration parameters (migrate.get_parameters)")
      ->callback(
          [&r] { r.action = [&r] { r.call("migrate.get_parameters", {}, format_migrate_parameters); }; });
}

}  // namespace

void add_migrate(CLI::App& app, Runner& r) {
  CLI::App* migrate =
      app.add_subcommand("migrate", "Live migration: start, incoming, status, watch, cancel, parameters")
          ->require_subcommand(1);
  add_start(migrate, r);
  add_watch(migrate, r);
  migrate
      ->add_subcommand("status", "Where the migration is, or how it ended, with its figures (migrate.status)")
      ->callback([&r] { r.action = [&r] { r.call("migrate.status", {}, format_migrate_report); }; });
  add_cancel(migrate, r);
  migrate
      ->add_subcommand("switchover",
                       "Stop iterating and switch over at the end of the current pass, whatever the expected "
                       "downtime (migrate.switchover)")
      ->callback([&r] {
        r.action = [&r] {
          r.call("migrate.switchover", {},
                 [](const json::value& s) { return "switchover requested: " + state_of(s) + "\n"; });
        };
      });
  static std::string incoming_uri;
  CLI::App* incoming = migrate->add_subcommand("incoming",
                                               "On a molt started with --incoming defer: listen for the "
                                               "source (migrate.incoming); prints the address, "
                                               "with the real port when tcp port 0 was asked for");
  incoming
      ->add_option("uri", incoming_uri, "tcp:HOST:PORT (port 0: any free port), unix:PATH, file:PATH or fd:N")
      ->required();
  incoming->callback([&r] {
    r.action = [&r] {
      r.call("migrate.incoming", json::object{{"uri", incoming_uri}},
             [](const json::value& v) { return scalar_text(v.at("uri")) + "\n"; });
    };
  });
  add_parameter_commands(migrate, r);
}

}  // namespace moltctl
