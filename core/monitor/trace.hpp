// Log categories at run time: spdlog loggers by name ("core.machine",
// "dev.com1") and glob patterns over those names ("dev.*", "core.*", "*").
// A pattern set once is remembered as a rule, so a logger created later gets
// the level of the last rule that matches it (trace_level_for).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <spdlog/common.h>

namespace molt::core::monitor {

struct LoggerLevel {
  std::string name;
  std::string level;
};

struct TraceRule {
  std::string pattern;
  std::string level;
};

// True for names made of letters, digits and ".-_", with '*' matching any run
// of characters.
bool valid_trace_pattern(const std::string& pattern);
bool trace_pattern_matches(const std::string& pattern, const std::string& name);

// Parses "off", "error", "warn", "info", "debug", "trace" (and "critical").
std::optional<spdlog::level::level_enum> parse_trace_level(const std::string& level);

// Sets `level` on every registered logger whose name matches and keeps the
// rule; returns the names changed, sorted. Thread-safe.
std::vector<std::string> set_trace_level(const std::string& pattern, spdlog::level::level_enum level);

// Every registered logger and its level, sorted by name. Applies the rules to
// loggers made since the last call first. Thread-safe.
std::vector<LoggerLevel> list_loggers();
std::vector<TraceRule> trace_rules();

// The level the last matching rule gives `logger_name`; nullopt when none
// matches. For the code that creates loggers.
std::optional<spdlog::level::level_enum> trace_level_for(const std::string& logger_name);

// Forgets every rule (tests).
void clear_trace_rules();

}  // namespace molt::core::monitor
