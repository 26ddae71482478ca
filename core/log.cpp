#include "core/log.hpp"

#include "core/monitor/trace.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <molt/sdk/error.hpp>

namespace molt::core {

namespace {
std::shared_ptr<spdlog::sinks::stderr_sink_mt> shared_sink() {
  static auto sink = [] {
    auto s = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    s->set_pattern("molt %n [%l] %v");
    return s;
  }();
  return sink;
}
}  // namespace

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  if (auto existing = spdlog::get(name)) return existing;
  auto created = std::make_shared<spdlog::logger>(name, shared_sink());
  created->set_level(spdlog::default_logger()->level());
  // A trace.set rule that matches this name applies to loggers made later too.
  if (const auto level = monitor::trace_level_for(name)) created->set_level(*level);
  try {
    spdlog::register_logger(created);
  } catch (const spdlog::spdlog_ex&) {
    return spdlog::get(name);  // another thread registered it first
  }
  return created;
}

void set_log_level(const std::string& level) {
  const auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw sdk::Error("unknown log level '" + level + "'; use off, error, warn, info, debug or trace");
  }
  spdlog::set_level(parsed);
}

}  // namespace molt::core
