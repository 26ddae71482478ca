// The monitor's methods against a fake VM: state errors, devices and their
// run-time properties, plugins, trace levels, subscriptions.
#include <spdlog/spdlog.h>

#include <gtest/gtest.h>

#include "core/log.hpp"
#include "core/monitor/trace.hpp"
#include "fake_vm.hpp"

namespace molt::core::monitor::testing {
namespace {

TEST(VmMethods, StatusReportsTheVm) {
  FakeVm vm;
  const json::value s = call(vm, "vm.status").at("result");
  EXPECT_EQ(s.at("state"), json::value("running"));
  EXPECT_EQ(s.at("vcpus"), json::value(2));
  EXPECT_EQ(s.at("memory_bytes"), json::value(256 << 20));
  EXPECT_EQ(s.at("machine_type"), json::value("molt-pc-1.1"));
  EXPECT_FALSE(s.as_object().contains("exit"));
}

TEST(VmMethods, PauseAndResumeOnlyFromTheRightState) {
  FakeVm vm;
  const json::value resumed = call(vm, "vm.resume");
  EXPECT_EQ(error_code(resumed), kNotInThisState);
  EXPECT_NE(error_message(resumed).find("running"), std::string::npos) << error_message(resumed);
  EXPECT_EQ(call(vm, "vm.pause").at("result").at("state"), json::value("paused"));
  EXPECT_EQ(error_code(call(vm, "vm.pause")), kNotInThisState);
  EXPECT_EQ(vm.pauses, 1);  // the refused pause did nothing
  EXPECT_EQ(call(vm, "vm.resume").at("result").at("state"), json::value("running"));
}

TEST(VmMethods, ResetKeepsTheRunStateAndIsRefusedWhileShuttingDown) {
  FakeVm vm;
  EXPECT_EQ(call(vm, "vm.reset").at("result").at("state"), json::value("running"));
  EXPECT_EQ(vm.resets, 1);
  call(vm, "vm.quit");
  EXPECT_EQ(error_code(call(vm, "vm.reset")), kNotInThisState);
  EXPECT_EQ(vm.resets, 1);
}

TEST(VmMethods, QuitReportsExitAndRefusesASecondTime) {
  FakeVm vm;
  const json::value s = call(vm, "vm.quit").at("result");
  EXPECT_EQ(s.at("state"), json::value("shutting-down"));
  EXPECT_EQ(s.at("exit").at("exit_status"), json::value(0));
  EXPECT_EQ(error_code(call(vm, "vm.quit")), kNotInThisState);
}

TEST(DeviceMethods, ListShowsAddressesPropertiesAndLatestEvents) {
  FakeVm vm;
  const json::array list = call(vm, "device.list").at("result").as_array();
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].at("id"), json::value("com1"));
  EXPECT_EQ(list[0].at("ports").at(0).at("base"), json::value(0x3f8));
  EXPECT_EQ(list[0].at("properties").at("backend"), json::value("stdio"));
  EXPECT_TRUE(list[0].at("settable").as_array().empty());
  EXPECT_EQ(list[1].at("pci").at(0), json::value("00:03.0"));
  EXPECT_EQ(list[1].at("events").at("link-changed").at("up"), json::value(true));
  EXPECT_EQ(list[1].at("settable").as_array().size(), 3u);
}

TEST(DeviceMethods, GetNamesUnknownDeviceAndProperty) {
  FakeVm vm;
  const json::value ok = call(vm, "device.get", {{"device", "com1"}, {"property", "irq"}});
  EXPECT_EQ(ok.at("result").at("value"), json::value(4));
  const json::value no_dev = call(vm, "device.get", {{"device", "com9"}, {"property", "irq"}});
  EXPECT_EQ(error_code(no_dev), kInvalidParams);
  EXPECT_NE(error_message(no_dev).find("com9"), std::string::npos);
  EXPECT_NE(error_message(no_dev).find("com1, nic0"), std::string::npos) << error_message(no_dev);
  const json::value no_prop = call(vm, "device.get", {{"device", "com1"}, {"property", "speed"}});
  EXPECT_EQ(error_code(no_prop), kInvalidParams);
  EXPECT_NE(error_message(no_prop).find("speed"), std::string::npos);
}

TEST(DeviceMethods, SetChangesASettableProperty) {
  FakeVm vm;
  const json::value reply =
      call(vm, "device.set", {{"device", "nic0"}, {"property", "link"}, {"value", false}});
  EXPECT_EQ(reply.at("result").at("value"), json::value(false)) << reply;
  EXPECT_EQ(call(vm, "device.get", {{"device", "nic0"}, {"property", "link"}}).at("result").at("value"),
            json::value(false));
  call(vm, "device.set", {{"device", "nic0"}, {"property", "mtu"}, {"value", "4K"}});
  EXPECT_EQ(vm.devices_[1].properties.at("mtu"), sdk::PropertyValue(std::uint64_t{4096}));
}

TEST(DeviceMethods, SetRefusalsLeaveTheValue) {
  FakeVm vm;
  const auto before = vm.devices_;
  const json::value fixed = call(vm, "device.set", {{"device", "com1"}, {"property", "irq"}, {"value", 3}});
  EXPECT_EQ(error_code(fixed), kDeviceError);
  EXPECT_NE(error_message(fixed).find("com1"), std::string::npos) << error_message(fixed);
  const json::value wrong_type =
      call(vm, "device.set", {{"device", "nic0"}, {"property", "link"}, {"value", "yes"}});
  EXPECT_EQ(error_code(wrong_type), kInvalidParams);
  EXPECT_NE(error_message(wrong_type).find("\"value\""), std::string::npos);
  const json::value out_of_range =
      call(vm, "device.set", {{"device", "nic0"}, {"property", "mtu"}, {"value", 20}});
  EXPECT_EQ(error_code(out_of_range), kInvalidParams);
  EXPECT_NE(error_message(out_of_range).find("68 to 9000"), std::string::npos) << error_message(out_of_range);
  const json::value refused =
      call(vm, "device.set", {{"device", "nic0"}, {"property", "label"}, {"value", "rejected"}});
  EXPECT_EQ(error_code(refused), kDeviceError);
  EXPECT_NE(error_message(refused).find("nic0"), std::string::npos);
  EXPECT_NE(error_message(refused).find("reserved"), std::string::npos) << error_message(refused);
  EXPECT_EQ(vm.devices_[0].properties, before[0].properties);
  EXPECT_EQ(vm.devices_[1].properties, before[1].properties);
}

TEST(PluginMethods, ListGivesPathVersionAbiAndTypes) {
  FakeVm vm;
  const json::value p = call(vm, "plugin.list").at("result").at(0);
  EXPECT_EQ(p.at("path"), json::value("/plugins/molt-serial.so"));
  EXPECT_EQ(p.at("sdk_abi"), json::value(1));
  EXPECT_EQ(p.at("device_types").at(0), json::value("serial-16550a"));
}

TEST(TraceMethods, SetAppliesToMatchingLoggersNowAndLater) {
  FakeVm vm;
  clear_trace_rules();
  auto matched = core::logger("dev.tracetest0");
  auto other = core::logger("core.tracetest");
  matched->set_level(spdlog::level::warn);
  other->set_level(spdlog::level::warn);
  const json::value reply = call(vm, "trace.set", {{"pattern", "dev.trace*"}, {"level", "debug"}});
  ASSERT_EQ(error_code(reply), 0) << reply;
  EXPECT_EQ(matched->level(), spdlog::level::debug);
  EXPECT_EQ(other->level(), spdlog::level::warn);
  // A logger made after the rule: the rule gives its level, and trace.list applies it.
  EXPECT_EQ(trace_level_for("dev.tracetest1"), spdlog::level::debug);
  auto later = core::logger("dev.tracetest1");
  const json::value list = call(vm, "trace.list").at("result");
  EXPECT_EQ(later->level(), spdlog::level::debug);
  bool listed = false;
  for (const json::value& l : list.at("loggers").as_array())
    listed |= l.at("name") == json::value("dev.tracetest1") && l.at("level") == json::value("debug");
  EXPECT_TRUE(listed) << list;
  EXPECT_EQ(list.at("rules").at(0).at("pattern"), json::value("dev.trace*"));
  clear_trace_rules();
}

TEST(TraceMethods, BadPatternOrLevelIsInvalidParams) {
  FakeVm vm;
  const json::value level = call(vm, "trace.set", {{"pattern", "dev.*"}, {"level", "loud"}});
  EXPECT_EQ(error_code(level), kInvalidParams);
  EXPECT_NE(error_message(level).find("\"level\""), std::string::npos);
  const json::value pattern = call(vm, "trace.set", {{"pattern", "dev/*"}, {"level", "info"}});
  EXPECT_EQ(error_code(pattern), kInvalidParams);
  EXPECT_NE(error_message(pattern).find("\"pattern\""), std::string::npos);
}

TEST(TracePatterns, GlobMatching) {
  EXPECT_TRUE(trace_pattern_matches("dev.*", "dev.com1"));
  EXPECT_TRUE(trace_pattern_matches("*", "core.machine"));
  EXPECT_TRUE(trace_pattern_matches("core.*.x", "core.a.b.x"));
  EXPECT_FALSE(trace_pattern_matches("dev.*", "core.dev.x"));
  EXPECT_FALSE(trace_pattern_matches("dev.com1", "dev.com10"));
}

TEST(EventMethods, SubscribeAndUnsubscribeByName) {
  FakeVm vm;
  Session session;
  const json::value all = call(vm, "events.subscribe", {}, &session);
  EXPECT_EQ(all.at("result").at("subscribed").as_array().size(), event_specs().size());
  call(vm, "events.unsubscribe", {{"events", json::array{"vm.exit"}}}, &session);
  EXPECT_EQ(session.subscriptions.count("vm.exit"), 0u);
  EXPECT_EQ(session.subscriptions.count("vm.state-changed"), 1u);
  const json::value unknown = call(vm, "events.subscribe", {{"events", json::array{"vm.boom"}}}, &session);
  EXPECT_EQ(error_code(unknown), kInvalidParams);
  EXPECT_NE(error_message(unknown).find("vm.boom"), std::string::npos);
  call(vm, "events.unsubscribe", {}, &session);
  EXPECT_TRUE(session.subscriptions.empty());
}

TEST(MonitorMethods, MethodsListsEveryRegisteredMethod) {
  FakeVm vm;
  const json::value r = call(vm, "monitor.methods").at("result");
  EXPECT_EQ(r.at("methods").as_array().size(), method_table().methods().size());
  EXPECT_EQ(r.at("events").as_array().size(), event_specs().size());
}

}  // namespace
}  // namespace molt::core::monitor::testing
