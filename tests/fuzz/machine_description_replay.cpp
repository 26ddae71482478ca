// Replays the machine description fuzz entry without libFuzzer, so every build
// (and CI) runs it: machines/default.json, every JSON example in
// docs/machine-format.md, hand-written descriptions that reach every field and
// property kind, each seed cut short at every length, a few thousand
// deterministic mutations, and any files named on the command line (crash
// reproducers saved by a libFuzzer run).
//
//   molt_fuzz_machine_description_replay                   # seeds + mutations
//   molt_fuzz_machine_description_replay crash-1234 ...    # replay files as well
//   molt_fuzz_machine_description_replay --write-seeds DIR # the seeds as a corpus
#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "replay_driver.hpp"

namespace {

const std::string kSourceDir = MOLT_SOURCE_DIR;

bool read_file(const std::string& path, std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

// Every ```json fenced block of a Markdown text.
std::vector<std::string> json_blocks(const std::string& markdown) {
  std::vector<std::string> blocks;
  std::istringstream in(markdown);
  std::string line, block;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line == "```json") {
      inside = true;
      block.clear();
    } else if (inside && line == "```") {
      inside = false;
      blocks.push_back(block);
    } else if (inside) {
      block += line + "\n";
    }
  }
  return blocks;
}

// Descriptions that reach what the files in the tree do not: every top-level
// field, every property kind in each accepted form, compat defaults, keys that
// need quoting in paths, and JSON corner cases the strict parser must refuse.
const std::vector<std::string> kHandWritten = {
    R"({"$schema": "schema.json", "machine": "molt-pc-1.0", "vcpus": 4,
 "memory": {"size": "0x10000000", "backend": "anonymous"},
 "kernel": {"path": "/boot/vmlinuz", "initrd": "initrd.img", "cmdline": "console=ttyS0 quiet"},
 "plugin_dirs": ["plugins", "/usr/lib/molt/plugins", "../x/./y"],
 "api_socket": "run/molt.sock",
 "devices": [
  {"id": "all", "type": "all-kinds", "properties": {"enabled": true, "flag": false, "count": "0x10",
   "any-number": 18446744073709551615, "buffer": "64k", "capacity": "2G", "label": "x\u00e9\"\\", "mode": "fast"}},
  {"id": "all2", "type": "all-kinds", "properties": {"enabled": false, "capacity": 1048576, "mode": ""}},
  {"id": "com1", "type": "serial-16550a", "properties": {"base": "0x2f8", "irq": 3, "backend": "file", "path": "out.log"}},
  {"id": "u", "type": "uart", "properties": {"path": "p"}},
  {"id": "exit", "type": "debug-exit", "properties": {}}
 ]})",
    R"({"memory": {"size": 4096}, "kernel": {"path": "k"}, "devices": [
  {"id": "a", "type": "all-kinds", "properties": {"enabled": 1, "capacity": "16E", "mode": "FAST"}},
  {"id": "b", "type": "all-kinds", "properties": {"buffer": "511", "count": 0, "capacity": "1T"}}]})",
    R"({"memory": {"size": "1G"}, "kernel": {"path": "k"}, "vcpus": 255, "api_socket": null,
 "devices": [{"id": "c", "type": "serial-16550a", "properties": {"base": "0xFFFFFFFFFFFFFFFFF", "irq": "0x17"}},
  {"id": "d", "type": "uart", "properties": {"path": "", "irq": -1, "backend": null}}]})",
    R"({"memory": {"size": "18446744073709551615"}, "kernel": {"path": "k", "cmdline": "a\u0000b"}})",
    R"({"memory": {"size": 1e3}, "kernel": {"path": "k\u0000"}, "vcpus": 2.0})",
    R"({"memory": {"size": "2 G"}, "kernel": {"path": "k"}, "machine": "Molt_PC"})",
    R"({"memory": {"size": "4K", "size": "8K"}, "kernel": {"path": "k"}})",
    R"({"memory": {"size": "4K"}, "kernel": {"path": "k"}, "devices": [{"id": "x", "type": "uart",
 "properties": {"path": "p", "odd key": 1, "\u0001": 2, "9": {"a": [[[[{"b": [1, {"c": {"c": 1, "c": 2}}]}]]]]}}}]})",
    R"({"memory": {"size": "4K"}, "kernel": {"path": "k"}, "plugin_dirs": "p", "devices": {}})",
    R"({"memory": {"size": "4K"}, "kernel": {"path": "k"}, "api_socket": ")" + std::string(120, 's') +
        R"("})",
    R"({"memory": {"size": "4K"}, "kernel": {"path": "k"}, "devices": [{"id": ")" + std::string(65, 'a') +
        R"(", "type": "uart"}, {"id": "a-1_B", "type": ""}]})",
    R"([[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]])",
    "{\"memory\": {\"size\": \"4K\"}, \"kernel\": {\"path\": \"\xff\xfe\"}} // comment",
    " \t\n",
};

// JSON pieces and names the loader knows, spliced in by the mutator so that
// mutations reach past the first syntax error.
constexpr std::array<std::string_view, 40> kTokens = {"{",
                                                      "}",
                                                      "[",
                                                      "]",
                                                      ",",
                                                      ":",
                                                      "\"",
                                                      "null",
                                                      "true",
                                                      "false",
                                                      "0",
                                                      "-1",
                                                      "4096",
                                                      "1e309",
                                                      "0.5",
                                                      "\"0x\"",
                                                      "\"16E\"",
                                                      "\"4K\"",
                                                      "\"0x3f8\"",
                                                      "\\u0000",
                                                      "\\ud800",
                                                      "\"memory\"",
                                                      "\"size\"",
                                                      "\"backend\"",
                                                      "\"kernel\"",
                                                      "\"path\"",
                                                      "\"initrd\"",
                                                      "\"cmdline\"",
                                                      "\"vcpus\"",
                                                      "\"devices\"",
                                                      "\"id\"",
                                                      "\"type\"",
                                                      "\"properties\"",
                                                      "\"uart\"",
                                                      "\"all-kinds\"",
                                                      "\"mode\"",
                                                      "\"capacity\"",
                                                      "\"plugin_dirs\"",
                                                      "\"api_socket\"",
                                                      "18446744073709551616"};

std::string mutate(std::string text, const std::vector<std::string>& seeds, std::mt19937& rng) {
  const unsigned rounds = 1 + rng() % 4;
  for (unsigned r = 0; r < rounds; ++r) {
    const std::size_t at = text.empty() ? 0 : rng() % (text.size() + 1);
    switch (rng() % 6) {
      case 0:
        if (at < text.size()) text[at] = static_cast<char>(text[at] ^ (1 << (rng() % 8)));
        break;
      case 1:
        if (at < text.size()) text[at] = static_cast<char>(rng());
        break;
      case 2:
        text.erase(at, 1 + rng() % 16);
        break;
      case 3:
        text.insert(at, kTokens[rng() % kTokens.size()]);
        break;
      case 4: {  // replace a stretch with one taken from any seed
        const std::string& donor = seeds[rng() % seeds.size()];
        const std::size_t from = rng() % donor.size(), length = 1 + rng() % 40;
        text.replace(at, rng() % 8, donor.substr(from, length));
        break;
      }
      default:
        text.resize(at);
        break;
    }
  }
  return text;
}

void run(const std::string& text) { molt::fuzz::feed(text); }

bool collect_seeds(std::vector<std::string>& seeds) {
  std::string text;
  if (!read_file(kSourceDir + "/machines/default.json", text)) {
    std::fprintf(stderr, "cannot read %s/machines/default.json\n", kSourceDir.c_str());
    return false;
  }
  seeds.push_back(text);
  if (!read_file(kSourceDir + "/docs/machine-format.md", text)) {
    std::fprintf(stderr, "cannot read %s/docs/machine-format.md\n", kSourceDir.c_str());
    return false;
  }
  const std::vector<std::string> examples = json_blocks(text);
  if (examples.size() < 10) {
    std::fprintf(stderr, "docs/machine-format.md has only %zu JSON examples\n", examples.size());
    return false;
  }
  seeds.insert(seeds.end(), examples.begin(), examples.end());
  seeds.insert(seeds.end(), kHandWritten.begin(), kHandWritten.end());
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> seeds;
  if (!collect_seeds(seeds)) return 1;
  if (auto status = molt::fuzz::handle_command_line(argc, argv, seeds)) return *status;
  for (const std::string& seed : seeds) {
    for (std::size_t length = 0; length <= seed.size(); ++length) run(seed.substr(0, length));
  }
  std::mt19937 rng(0x5eed);
  constexpr unsigned kMutations = 20000;
  for (unsigned i = 0; i < kMutations; ++i) run(mutate(seeds[i % seeds.size()], seeds, rng));
  std::printf("replayed %zu seeds, their truncations and %u mutations\n", seeds.size(), kMutations);
  return 0;
}
