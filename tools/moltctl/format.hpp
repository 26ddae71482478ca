// moltctl's human-readable output, one function per kind of result.
#pragma once

#include <string>

#include <boost/json.hpp>

namespace moltctl {

namespace json = boost::json;

std::string format_status(const json::value& status);
std::string format_devices(const json::value& devices);
std::string format_property(const json::value& property);
std::string format_plugins(const json::value& plugins);
std::string format_trace_set(const json::value& result);
std::string format_trace_list(const json::value& result);
std::string format_methods(const json::value& result);
// One line per notification: "vm.state-changed state=paused reason=..."
std::string format_event(const json::object& notification);
// A JSON scalar as text: strings without quotes.
std::string scalar_text(const json::value& v);

}  // namespace moltctl
