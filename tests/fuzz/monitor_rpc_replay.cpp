// Replays the monitor JSON-RPC fuzz entry without libFuzzer: a request for
// every registered method (with and without params), batches and broken
// framing, every truncation of them, and deterministic byte mutations.
#include <random>
#include <string>
#include <vector>

#include "core/monitor/methods.hpp"
#include "replay_driver.hpp"

namespace {

std::vector<std::string> seeds() {
  std::vector<std::string> out = {
      R"({"jsonrpc":"2.0","id":1,"method":"vm.status"})",
      R"({"jsonrpc":"2.0","id":"a","method":"device.get","params":{"device":"com1","name":"backend"}})",
      R"({"jsonrpc":"2.0","id":2,"method":"device.set","params":{"device":"com1","name":"backend","value":"none"}})",
      R"({"jsonrpc":"2.0","id":3,"method":"trace.set","params":{"pattern":"dev.*","level":"debug"}})",
      R"({"jsonrpc":"2.0","id":4,"method":"events.subscribe","params":{"events":["vm.state-changed"]}})",
      R"([{"jsonrpc":"2.0","id":5,"method":"vm.pause"},{"jsonrpc":"2.0","method":"vm.resume"},{"jsonrpc":"2.0","id":6,"method":"plugin.list"}])",
      R"({"jsonrpc":"2.0","method":"vm.status"})",
      R"({"jsonrpc":"1.0","id":null,"method":7,"params":[1,2]})",
      R"([])", R"({)", R"("\u0000")", R"({"jsonrpc":"2.0","id":{"x":1},"method":"vm.status"})",
  };
  for (const auto& m : molt::core::monitor::method_table().methods())
    out.push_back(R"({"jsonrpc":"2.0","id":9,"method":")" + m.name + R"(","params":{}})");
  return out;
}

std::string mutate(std::string s, std::mt19937& rng) {
  static const char* kTokens[] = {"{", "}", "[", "]", ",", ":", "\"", "null", "true", "-1", "1e309", "\\u", "\n"};
  const unsigned edits = 1 + rng() % 4;
  for (unsigned i = 0; i < edits; ++i) {
    const std::size_t at = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 4) {
      case 0: if (!s.empty()) s[at] = static_cast<char>(rng()); break;
      case 1: s.insert(at, kTokens[rng() % std::size(kTokens)]); break;
      case 2: if (!s.empty()) s.erase(at, 1 + rng() % 8); break;
      default: s.insert(at, s.substr(rng() % (s.size() + 1))); break;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> all = seeds();
  if (auto status = molt::fuzz::handle_command_line(argc, argv, all)) return *status;
  for (const std::string& seed : all) {
    for (std::size_t length = 0; length <= seed.size(); ++length) molt::fuzz::feed(seed.substr(0, length));
  }
  std::mt19937 rng(0x5eed);
  constexpr unsigned kMutations = 20000;
  for (unsigned i = 0; i < kMutations; ++i) molt::fuzz::feed(mutate(all[i % all.size()], rng));
  std::printf("replayed %zu seeds, their truncations and %u mutations\n", all.size(), kMutations);
  return 0;
}
