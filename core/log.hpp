// Loggers per component ("core.kvm") and per device ("dev.com1"), all writing
// to one stderr sink so the guest console on stdout stays clean.
#pragma once

#include <memory>
#include <string>

#include <spdlog/logger.h>

namespace molt::core {

// Returns the logger called `name`, creating it on first use at the current
// default level.
std::shared_ptr<spdlog::logger> logger(const std::string& name);

// "off", "error", "warn", "info", "debug", "trace"; throws sdk::Error otherwise.
void set_log_level(const std::string& level);

}  // namespace molt::core
