// Fuzz entry for the monitor's JSON-RPC layer: one request line (or batch)
// through every registered method against the unit tests' fake VM. Any
// exception escaping handle_line, or a reply that is not a JSON-RPC 2.0
// response, is a bug: a client's bytes must only ever produce a reply.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <boost/json.hpp>

#include "core/monitor/methods.hpp"
#include "core/monitor/rpc.hpp"
#include "tests/unit/monitor/fake_vm.hpp"

namespace {

namespace json = boost::json;
using namespace molt::core::monitor;

[[noreturn]] void bug(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "monitor rpc fuzz: %s: %.*s\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool is_response(const json::value& v) {
  const json::object* o = v.if_object();
  if (!o || !o->contains("jsonrpc") || o->at("jsonrpc") != "2.0" || !o->contains("id")) return false;
  return o->contains("result") != o->contains("error");
}

void check_reply(const std::string& reply) {
  if (reply.empty()) return;  // a notification, or a batch of them
  if (reply.find('\n') != std::string::npos) bug("a reply spans lines", reply);
  json::error_code ec;
  const json::value v = json::parse(reply, ec);
  if (ec) bug("a reply is not JSON", reply);
  if (const json::array* batch = v.if_array()) {
    if (batch->empty()) bug("an empty batch reply", reply);
    for (const json::value& r : *batch) {
      if (!is_response(r)) bug("a batch element is not a response", reply);
    }
  } else if (!is_response(v)) {
    bug("the reply is not a response", reply);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static molt::core::monitor::testing::FakeVm vm;  // state carries across inputs, as a session's would
  Services services{vm};
  Session session;
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  try {
    check_reply(handle_line(method_table(), line, session, services));
  } catch (const std::exception& e) {
    bug("an exception escaped handle_line", e.what());
  }
  return 0;
}
