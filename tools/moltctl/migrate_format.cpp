#include "migrate_format.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "format.hpp"

namespace moltctl {

namespace {

constexpr double kMiB = 1024.0 * 1024.0;

const json::object* object_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v && v->is_object() ? &v->as_object() : nullptr;
}

std::optional<std::uint64_t> number_at(const json::object* o, std::string_view key) {
  if (!o) return std::nullopt;
  const json::value* v = o->if_contains(key);
  if (!v || !v->is_number()) return std::nullopt;
  json::error_code ec;
  const auto n = v->to_number<std::uint64_t>(ec);
  return ec ? std::nullopt : std::optional<std::uint64_t>(n);
}

std::uint64_t number_or_zero(const json::object* o, std::string_view key) {
  return number_at(o, key).value_or(0);
}

std::string text_at(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  return v ? scalar_text(*v) : std::string();
}

bool is_destination(const json::object& s) {
  return text_at(s, "role") == "destination";
}

// "ram 20.0 ms" lines of a {name: microseconds} object, largest first,
// names padded to one column.
std::string breakdown_lines(const json::object& breakdown) {
  std::vector<std::pair<std::string, std::uint64_t>> parts;
  std::size_t width = 0;
  for (const auto& [name, us] : breakdown) {
    if (!us.is_number()) continue;
    parts.emplace_back(std::string(name), number_at(&breakdown, name).value_or(0));
    width = std::max(width, name.size());
  }
  std::stable_sort(parts.begin(), parts.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::string out;
  for (const auto& [name, us] : parts)
    out += fmt::format("  {:<{}}  {:>10}\n", name, width, duration_text(us));
  return out;
}

std::string downtime_line(const json::object& s) {
  const json::object* downtime = object_at(s, "downtime");
  const auto limit = number_at(object_at(s, "parameters"), "downtime_limit_ms");
  const std::string limit_text = limit ? fmt::format(", limit {} ms", *limit) : "";
  // The engine estimates the downtime once a pass over RAM has ended (0 may
  // then be a real estimate: nothing left to send).
  const std::uint64_t expected = number_or_zero(downtime, "expected_us");
  const bool estimated = expected != 0 || number_or_zero(object_at(s, "ram"), "iterations") != 0;
  const std::string expected_text = estimated ? "expected " + duration_text(expected) : "no estimate yet";
  if (const auto actual = number_at(downtime, "actual_us"))
    return fmt::format("downtime:   {} ({}{})\n", duration_text(*actual), expected_text, limit_text);
  const bool over = migration_finished(text_at(s, "state"));
  return fmt::format("downtime:   {} ({}{})\n", over ? "none" : "not yet", expected_text, limit_text);
}

// "RAM: 256.0 MiB guest, 100.0% in sync, 167.5 MiB moved in 1 pass at 794.7 MiB/s"
// and "pages: 42801 data, 175 zero, 9949 dirtied again (61489 pages/s)".
std::string ram_lines(const json::object& s) {
  const json::object* ram = object_at(s, "ram");
  if (!ram) return "";
  const std::uint64_t passes = number_or_zero(ram, "iterations");
  std::string out = fmt::format("RAM:        {} guest", size_text(number_or_zero(ram, "total_bytes")));
  if (!is_destination(s)) {
    if (const auto pct = ram_percent(json::value(s))) out += fmt::format(", {:.1f}% in sync", *pct);
  }
  out += fmt::format(", {} moved in {} pass{}", size_text(number_or_zero(ram, "transferred_bytes")), passes,
                     passes == 1 ? "" : "es");
  if (const auto rate = number_at(ram, "bandwidth_bytes_per_s"); rate && *rate > 0)
    out += fmt::format(" at {:.1f} MiB/s", static_cast<double>(*rate) / kMiB);
  out += fmt::format("\npages:      {} data, {} zero, {} dirtied again", number_or_zero(ram, "data_pages"),
                     number_or_zero(ram, "zero_pages"), number_or_zero(ram, "dirtied_pages"));
  if (const auto dirty = number_at(ram, "dirty_pages_per_s"); dirty && passes > 0)
    out += fmt::format(" ({} pages/s)", *dirty);
  return out + "\n";
}

std::string channel_lines(const json::object& s) {
  const json::value* channels = s.if_contains("channels");
  if (!channels || !channels->is_array() || channels->as_array().empty()) return "";
  const json::array& list = channels->as_array();
  std::size_t width = 0;
  for (const json::value& c : list) width = std::max(width, text_at(c.as_object(), "name").size());
  std::string out = fmt::format("channels:   {}\n", list.size());
  for (const json::value& c : list) {
    const json::object& channel = c.as_object();
    out += fmt::format("  {:<{}}  {} sent, {} received\n", text_at(channel, "name"), width,
                       size_text(number_or_zero(&channel, "bytes_sent")),
                       size_text(number_or_zero(&channel, "bytes_received")));
  }
  return out;
}

// "setup 436 us, active 174.9 ms"; nested objects (a destination's
// devices_us) in brackets. Keys lose their _us suffix.
std::string timings_text(const json::object& timings) {
  std::string out;
  for (const auto& [key, value] : timings) {
    std::string name(key);
    if (name.size() > 3 && name.ends_with("_us")) name.resize(name.size() - 3);
    out += out.empty() ? "" : ", ";
    if (value.is_object())
      out += name + " [" + timings_text(value.as_object()) + "]";
    else if (value.is_number())
      out += name + " " + duration_text(number_at(&timings, key).value_or(0));
    else
      out += name + " " + scalar_text(value);
  }
  return out;
}

}  // namespace

std::uint64_t parse_byte_size(const std::string& text) {
  const auto bad = [&text](const std::string& why) {
    return std::invalid_argument(
        "'" + text + "' is not a byte size (" + why +
        "): expected a number with an optional K, M, G or T suffix, e.g. 500M or 1G");
  };
  const char* const begin = text.data();
  const char* const end = begin + text.size();
  double number = 0;
  const auto [stop, ec] = std::from_chars(begin, end, number);
  if (ec != std::errc() || stop == begin || !std::isfinite(number) || number < 0) throw bad("no number");
  std::string suffix(stop, end);
  std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (suffix.empty() || suffix == "b") {
    std::uint64_t exact = 0;
    const auto [exact_stop, exact_ec] = std::from_chars(begin, stop, exact);
    if (exact_ec != std::errc() || exact_stop != stop) throw bad("a byte count is a whole number");
    return exact;
  }
  static constexpr std::string_view kUnits = "kmgt";
  const std::size_t unit = kUnits.find(suffix[0]);
  const std::string_view rest = std::string_view(suffix).substr(1);
  if (unit == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib"))
    throw bad("unknown suffix '" + std::string(stop, end) + "'");
  const double bytes = std::round(number * std::pow(1024.0, static_cast<double>(unit + 1)));
  if (bytes >= 18446744073709551615.0) throw bad("too large");
  return static_cast<std::uint64_t>(bytes);
}

bool migration_finished(std::string_view state) {
  return state == "completed" || state == "failed" || state == "cancelled";
}

std::optional<double> ram_percent(const json::value& status) {
  if (!status.is_object()) return std::nullopt;
  const json::object* ram = object_at(status.as_object(), "ram");
  const auto total = number_at(ram, "total_bytes");
  const auto remaining = number_at(ram, "remaining_bytes");
  if (!total || !remaining || *total == 0) return std::nullopt;
  const double done = static_cast<double>(*total - std::min(*remaining, *total));
  return 100.0 * done / static_cast<double>(*total);
}

std::string format_progress(const json::value& status, std::optional<double> bytes_per_s) {
  const json::object& s = status.as_object();
  const std::string state = text_at(s, "state");
  const bool destination = is_destination(s);
  const json::object* ram = object_at(s, "ram");
  std::string out = fmt::format("{:<9}", state);
  if (const auto pct = ram_percent(status); pct && !destination) out += fmt::format(" {:5.1f}%", *pct);
  out += destination ? "  " + size_text(number_or_zero(&s, "bytes_received")) + " received"
                     : "  " + size_text(number_or_zero(&s, "bytes_sent")) + " sent";
  if (!bytes_per_s) {
    if (const auto engine_rate = number_at(ram, "bandwidth_bytes_per_s"); engine_rate && *engine_rate > 0)
      bytes_per_s = static_cast<double>(*engine_rate);
  }
  if (bytes_per_s) out += fmt::format("  {:.1f} MiB/s", *bytes_per_s / kMiB);
  if (ram && !destination) {
    // The engine counts finished passes; while active, one more is under way.
    const std::uint64_t passes = number_or_zero(ram, "iterations");
    const std::uint64_t pass = passes + (state == "active" ? 1 : 0);
    if (pass > 0) out += fmt::format("  pass {}", pass);
    if (passes > 0) {
      out += fmt::format("  dirty {} pages/s", number_or_zero(ram, "dirty_pages_per_s"));
      out += "  downtime ~" + duration_text(number_or_zero(object_at(s, "downtime"), "expected_us"));
    }
  }
  return out;
}

std::string format_progress_bar(const json::value& status, int bar_width, std::optional<double> bytes_per_s) {
  const double pct = ram_percent(status).value_or(0);
  const int cells = std::max(bar_width, 1);
  const int filled = std::clamp(static_cast<int>(std::lround(pct / 100.0 * cells)), 0, cells);
  return "[" + std::string(static_cast<std::size_t>(filled), '#') +
         std::string(static_cast<std::size_t>(cells - filled), '-') + "] " +
         format_progress(status, bytes_per_s);
}

std::string format_migrate_report(const json::value& status) {
  const json::object& s = status.as_object();
  const std::string state = text_at(s, "state");
  if (state == "none") return "state:      none (no migration has run)\n";
  std::string out = fmt::format("state:      {} ({})\n", state, text_at(s, "role"));
  if (const std::string uri = text_at(s, "uri"); !uri.empty()) out += fmt::format("uri:        {}\n", uri);
  const std::uint64_t total_ms = number_or_zero(&s, "total_ms");
  out +=
      "total time: " + (total_ms < 1000 ? fmt::format("{} ms", total_ms) : duration_text(total_ms * 1000)) +
      "\n";
  if (!is_destination(s)) {
    out += downtime_line(s);
    const json::object* downtime = object_at(s, "downtime");
    if (const json::object* breakdown = downtime ? object_at(*downtime, "breakdown_us") : nullptr)
      out += breakdown_lines(*breakdown);
  }
  out += ram_lines(s);
  out += fmt::format("bytes:      {} sent, {} received\n", size_text(number_or_zero(&s, "bytes_sent")),
                     size_text(number_or_zero(&s, "bytes_received")));
  out += channel_lines(s);
  if (const json::object* phases = object_at(s, "phases_us"); phases && !phases->empty())
    out += "phases:     " + timings_text(*phases) + "\n";
  if (const json::object* dest = object_at(s, "destination"); dest && !dest->empty())
    out += "destination: " + timings_text(*dest) + "\n";
  if (const std::string error = text_at(s, "error"); !error.empty()) out += "error:      " + error + "\n";
  if (const json::value* diffs = s.if_contains("differences"); diffs && diffs->is_array()) {
    for (const json::value& d : diffs->as_array()) out += "difference: " + scalar_text(d) + "\n";
  }
  return out;
}

std::string format_migrate_failure(const json::value& status) {
  const json::object& s = status.as_object();
  const std::string error = text_at(s, "error");
  std::string out = fmt::format("migration {}{}\n", text_at(s, "state"), error.empty() ? "" : ": " + error);
  if (const json::value* diffs = s.if_contains("differences"); diffs && diffs->is_array()) {
    for (const json::value& d : diffs->as_array()) out += "  " + scalar_text(d) + "\n";
  }
  return out;
}

std::string format_migrate_parameters(const json::value& parameters) {
  const json::object& p = parameters.as_object();
  std::string out;
  for (const auto& [key, value] : p) {
    const auto n = number_at(&p, key);
    if (key == "downtime_limit_ms" && n) {
      out += fmt::format("downtime limit:  {} ms\n", *n);
    } else if (key == "max_bandwidth" && n) {
      out += *n == 0 ? std::string("bandwidth cap:   none\n")
                     : fmt::format("bandwidth cap:   {}/s ({} bytes/s)\n", size_text(*n), *n);
    } else if (key == "channels" && n) {
      out += fmt::format("channels:        {}\n", *n);
    } else if (key == "max_iterations" && n) {
      out += *n == 0 ? std::string("max iterations:  no cap\n") : fmt::format("max iterations:  {}\n", *n);
    } else if (key == "connect_timeout_ms" && n) {
      out += fmt::format("connect timeout: {} ms\n", *n);
    } else {
      out += fmt::format("{}: {}\n", std::string_view(key), scalar_text(value));
    }
  }
  return out;
}

std::string size_text(std::uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  if (bytes < 1024) return fmt::format("{} B", bytes);
  if (bytes < 1024 * 1024) return fmt::format("{:.1f} KiB", b / 1024.0);
  if (bytes < 1024ull * 1024 * 1024) return fmt::format("{:.1f} MiB", b / kMiB);
  return fmt::format("{:.2f} GiB", b / (kMiB * 1024.0));
}

std::string duration_text(std::uint64_t us) {
  if (us < 1000) return fmt::format("{} us", us);
  if (us < 1'000'000) return fmt::format("{:.1f} ms", static_cast<double>(us) / 1000.0);
  return fmt::format("{:.2f} s", static_cast<double>(us) / 1e6);
}

}  // namespace moltctl
