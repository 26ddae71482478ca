#include "core/monitor/trace.hpp"

#include <algorithm>
#include <cctype>
#include <mutex>

#include <spdlog/spdlog.h>

namespace molt::core::monitor {

namespace {

struct Rules {
  std::mutex mutex;
  std::vector<std::pair<std::string, spdlog::level::level_enum>> list;  // in the order set
};

Rules& rules() {
  static Rules instance;
  return instance;
}

std::optional<spdlog::level::level_enum> level_for_locked(const Rules& r, const std::string& name) {
  for (auto it = r.list.rbegin(); it != r.list.rend(); ++it)
    if (trace_pattern_matches(it->first, name)) return it->second;
  return std::nullopt;
}

// Iterative glob match with '*' only; linear backtracking on the last star.
bool glob(const std::string& p, const std::string& s) {
  std::size_t pi = 0, si = 0, star = std::string::npos, mark = 0;
  while (si < s.size()) {
    if (pi < p.size() && p[pi] != '*' && p[pi] == s[si]) {
      ++pi;
      ++si;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (star != std::string::npos) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace

bool valid_trace_pattern(const std::string& pattern) {
  if (pattern.empty() || pattern.size() > 200) return false;
  return std::all_of(pattern.begin(), pattern.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_' || c == '*';
  });
}

bool trace_pattern_matches(const std::string& pattern, const std::string& name) {
  return glob(pattern, name);
}

std::optional<spdlog::level::level_enum> parse_trace_level(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") return std::nullopt;
  return parsed;
}

std::vector<std::string> set_trace_level(const std::string& pattern, spdlog::level::level_enum level) {
  Rules& r = rules();
  std::lock_guard lock(r.mutex);
  r.list.erase(
      std::remove_if(r.list.begin(), r.list.end(), [&](const auto& rule) { return rule.first == pattern; }),
      r.list.end());
  r.list.emplace_back(pattern, level);
  std::vector<std::string> changed;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) {
    if (!trace_pattern_matches(pattern, logger->name())) return;
    logger->set_level(level);
    changed.push_back(logger->name());
  });
  std::sort(changed.begin(), changed.end());
  return changed;
}

std::vector<LoggerLevel> list_loggers() {
  Rules& r = rules();
  std::lock_guard lock(r.mutex);
  std::vector<LoggerLevel> out;
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) {
    if (logger->name().empty()) return;  // spdlog's unnamed default logger
    if (const auto level = level_for_locked(r, logger->name())) logger->set_level(*level);
    const auto name = spdlog::level::to_string_view(logger->level());
    out.push_back(LoggerLevel{logger->name(), std::string(name.data(), name.size())});
  });
  std::sort(out.begin(), out.end(),
            [](const LoggerLevel& a, const LoggerLevel& b) { return a.name < b.name; });
  return out;
}

std::vector<TraceRule> trace_rules() {
  Rules& r = rules();
  std::lock_guard lock(r.mutex);
  std::vector<TraceRule> out;
  for (const auto& [pattern, level] : r.list) {
    const auto name = spdlog::level::to_string_view(level);
    out.push_back(TraceRule{pattern, std::string(name.data(), name.size())});
  }
  return out;
}

std::optional<spdlog::level::level_enum> trace_level_for(const std::string& logger_name) {
  Rules& r = rules();
  std::lock_guard lock(r.mutex);
  return level_for_locked(r, logger_name);
}

void clear_trace_rules() {
  Rules& r = rules();
  std::lock_guard lock(r.mutex);
  r.list.clear();
}

}  // namespace molt::core::monitor
