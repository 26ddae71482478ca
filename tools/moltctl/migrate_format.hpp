// The text `moltctl migrate` prints: the live progress line, the final
// figures, the parameters, and the byte sizes it accepts. Pure functions of
// migrate.status / migrate.get_parameters results, so they are tested
// without a monitor (tests/kvm/moltctl_migrate_test.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

namespace moltctl {

namespace json = boost::json;

// A byte count as typed on the command line: 1048576, 512K, 100M, 1.5G,
// 2GiB, 1T (K, M, G, T are powers of 1024; a trailing B or iB is allowed).
// Throws std::invalid_argument naming the text when it is none of these.
std::uint64_t parse_byte_size(const std::string& text);

// True for the states a migration ends in: completed, failed, cancelled.
bool migration_finished(std::string_view state);

// How much of guest RAM is in sync with the destination, 0 to 100:
// (total - remaining) / total. nullopt while the status has no RAM figures.
std::optional<double> ram_percent(const json::value& status);

// One progress line without a newline, e.g.
//   "active    42.1%  108.0 MiB sent  250.3 MiB/s  pass 1  dirty 12000 pages/s  downtime ~48.9 ms"
// `bytes_per_s`, when given, is the rate moltctl measured between polls; the
// engine's own figure only exists once a pass is over.
std::string format_progress(const json::value& status, std::optional<double> bytes_per_s = std::nullopt);

// The same line behind a bar `bar_width` cells wide, for a terminal:
//   "[#########-----------] active    42.1%  ..."
std::string format_progress_bar(const json::value& status, int bar_width,
                                std::optional<double> bytes_per_s = std::nullopt);

// The figures of a migration, one per line: state and role, total time, the
// downtime and its breakdown largest first, RAM and passes, bytes per
// channel, time per phase. Printed at the end of `migrate start` and by
// `migrate status`.
std::string format_migrate_report(const json::value& status);

// Why a migration did not complete: "migration failed: <error>" (or
// cancelled) and then each handshake difference on its own line.
std::string format_migrate_failure(const json::value& status);

// migrate.get_parameters's object with units.
std::string format_migrate_parameters(const json::value& parameters);

// Sizes and durations as the reports show them: "146 B", "167.5 MiB";
// "12 us", "31.0 ms", "3.03 s".
std::string size_text(std::uint64_t bytes);
std::string duration_text(std::uint64_t us);

}  // namespace moltctl
