// The JSON-RPC 2.0 envelope: parse errors, invalid requests, unknown methods,
// params checking, notifications and batches.
#include <gtest/gtest.h>

#include "fake_vm.hpp"

namespace molt::core::monitor::testing {
namespace {

TEST(JsonRpc, MalformedJsonIsAParseErrorWithNullId) {
  FakeVm vm;
  for (const char* line : {"{", "not json", "{\"jsonrpc\":\"2.0\",\"id\":1,", "\x01\x02\xff"}) {
    const json::value reply = call_line(vm, line);
    EXPECT_EQ(error_code(reply), kParseError) << line;
    EXPECT_TRUE(reply.at("id").is_null()) << line;
  }
}

TEST(JsonRpc, DeepNestingIsRefusedNotRecursedInto) {
  FakeVm vm;
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_EQ(error_code(call_line(vm, deep)), kParseError);
}

TEST(JsonRpc, InvalidRequestsNameWhatIsWrong) {
  FakeVm vm;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"42", "JSON object"},
      {R"({"id":1,"method":"vm.status"})", "jsonrpc"},
      {R"({"jsonrpc":"1.0","id":1,"method":"vm.status"})", "jsonrpc"},
      {R"({"jsonrpc":"2.0","id":1})", "method"},
      {R"({"jsonrpc":"2.0","id":1,"method":7})", "method"},
      {R"({"jsonrpc":"2.0","id":{"a":1},"method":"vm.status"})", "id"},
      {R"({"jsonrpc":"2.0","id":1,"method":"vm.status","extra":true})", "extra"},
  };
  for (const auto& [line, named] : cases) {
    const json::value reply = call_line(vm, line);
    EXPECT_EQ(error_code(reply), kInvalidRequest) << line;
    EXPECT_NE(error_message(reply).find(named), std::string::npos) << line << " -> " << error_message(reply);
  }
  // The id of a request that is otherwise invalid is echoed when it is usable.
  EXPECT_EQ(call_line(vm, R"({"jsonrpc":"1.0","id":"abc","method":"vm.status"})").at("id"),
            json::value("abc"));
}

TEST(JsonRpc, UnknownMethodIsNamed) {
  FakeVm vm;
  const json::value reply = call(vm, "vm.explode");
  EXPECT_EQ(error_code(reply), kMethodNotFound);
  EXPECT_NE(error_message(reply).find("vm.explode"), std::string::npos);
  EXPECT_EQ(reply.at("id"), json::value(1));
}

TEST(JsonRpc, PositionalParamsAreRefused) {
  FakeVm vm;
  const json::value reply =
      call_line(vm, R"({"jsonrpc":"2.0","id":1,"method":"device.get","params":["com1","irq"]})");
  EXPECT_EQ(error_code(reply), kInvalidParams);
  EXPECT_NE(error_message(reply).find("object"), std::string::npos);
}

// Every registered method: an unknown param is named, and each required param
// is reported missing by name when left out.
TEST(JsonRpc, EveryMethodChecksItsParams) {
  FakeVm vm;
  for (const MethodSpec& m : method_table().methods()) {
    const json::value unknown = call(vm, m.name, {{"no_such_param", 1}});
    EXPECT_EQ(error_code(unknown), kInvalidParams) << m.name;
    EXPECT_NE(error_message(unknown).find("no_such_param"), std::string::npos) << m.name;
    for (const ParamSpec& p : m.params) {
      if (!p.required) continue;
      json::object params;
      for (const ParamSpec& other : m.params)
        if (other.name != p.name)
          params[other.name] = other.type == ParamType::StringList ? json::value(json::array{})
                               : other.type == ParamType::Bool     ? json::value(true)
                               : other.type == ParamType::UInt     ? json::value(1)
                                                                   : json::value("x");
      const json::value missing = call(vm, m.name, params);
      EXPECT_EQ(error_code(missing), kInvalidParams) << m.name << " without " << p.name;
      EXPECT_NE(error_message(missing).find("missing param \"" + p.name + "\""), std::string::npos)
          << m.name << ": " << error_message(missing);
    }
  }
  EXPECT_EQ(vm.state, "running");  // nothing was carried out
}

TEST(JsonRpc, WrongParamTypeNamesParamAndExpectedType) {
  FakeVm vm;
  const json::value reply = call(vm, "trace.set", {{"pattern", 5}, {"level", "debug"}});
  EXPECT_EQ(error_code(reply), kInvalidParams);
  EXPECT_NE(error_message(reply).find("\"pattern\" must be a string"), std::string::npos)
      << error_message(reply);
  const json::value list = call(vm, "events.subscribe", {{"events", json::array{1, 2}}});
  EXPECT_EQ(error_code(list), kInvalidParams);
  EXPECT_NE(error_message(list).find("array of strings"), std::string::npos) << error_message(list);
}

TEST(JsonRpc, NotificationIsCarriedOutWithoutReply) {
  FakeVm vm;
  EXPECT_TRUE(call_line(vm, R"({"jsonrpc":"2.0","method":"vm.pause"})").is_null());
  EXPECT_EQ(vm.state, "paused");
  // Even a failing notification gets no reply.
  EXPECT_TRUE(call_line(vm, R"({"jsonrpc":"2.0","method":"no.such"})").is_null());
}

TEST(JsonRpc, BatchRepliesInOrderWithoutNotifications) {
  FakeVm vm;
  const json::value reply = call_line(vm, R"([
    {"jsonrpc":"2.0","id":1,"method":"vm.status"},
    {"jsonrpc":"2.0","method":"vm.pause"},
    {"jsonrpc":"2.0","id":"b","method":"no.such"},
    5,
    {"jsonrpc":"2.0","id":3,"method":"vm.status"}])");
  ASSERT_TRUE(reply.is_array()) << reply;
  const json::array& replies = reply.as_array();
  ASSERT_EQ(replies.size(), 4u);
  EXPECT_EQ(replies[0].at("result").at("state"), json::value("running"));
  EXPECT_EQ(error_code(replies[1]), kMethodNotFound);
  EXPECT_EQ(replies[1].at("id"), json::value("b"));
  EXPECT_EQ(error_code(replies[2]), kInvalidRequest);
  EXPECT_EQ(replies[3].at("result").at("state"), json::value("paused"));
}

TEST(JsonRpc, BatchOfNotificationsHasNoReply) {
  FakeVm vm;
  EXPECT_TRUE(
      call_line(vm, R"([{"jsonrpc":"2.0","method":"vm.status"},{"jsonrpc":"2.0","method":"vm.status"}])")
          .is_null());
}

TEST(JsonRpc, EmptyAndOversizedBatchesAreOneInvalidRequest) {
  FakeVm vm;
  EXPECT_EQ(error_code(call_line(vm, "[]")), kInvalidRequest);
  std::string big = "[";
  for (std::size_t i = 0; i <= kMaxBatch; ++i)
    big += std::string(i ? "," : "") + R"({"jsonrpc":"2.0","method":"vm.pause"})";
  big += "]";
  const json::value reply = call_line(vm, big);
  EXPECT_EQ(error_code(reply), kInvalidRequest);
  EXPECT_EQ(vm.pauses, 0);  // none of it was carried out
}

}  // namespace
}  // namespace molt::core::monitor::testing
