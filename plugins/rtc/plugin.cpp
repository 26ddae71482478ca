#include <molt/sdk/plugin.hpp>

#include "rtc_device.hpp"

MOLT_PLUGIN("rtc", "1.0.0", molt::rtc::describe_rtc_plugin)
