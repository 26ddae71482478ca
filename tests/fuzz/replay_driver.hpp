// What every fuzz replay driver shares: feeding the libFuzzer entry point,
// `--write-seeds DIR` to start a corpus, and replaying files named on the
// command line (crash reproducers from a libFuzzer run).
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace molt::fuzz {

using Bytes = std::vector<std::uint8_t>;

inline void feed(const Bytes& input) { LLVMFuzzerTestOneInput(input.data(), input.size()); }
inline void feed(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(input.data()), input.size());
}

inline std::optional<Bytes> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `--write-seeds DIR` writes the seeds and exits; file arguments are replayed
// first. Returns an exit status when the driver should stop, nullopt when it
// should go on with its seeds and mutations.
template <class Seed>
std::optional<int> handle_command_line(int argc, char** argv, const std::vector<Seed>& seeds) {
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") {
    for (std::size_t i = 0; i < seeds.size(); ++i) {
      const std::string path = std::string(argv[2]) + "/seed-" + std::to_string(i);
      std::ofstream out(path, std::ios::binary);
      out.write(reinterpret_cast<const char*>(seeds[i].data()), static_cast<std::streamsize>(seeds[i].size()));
      if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        return 1;
      }
    }
    return 0;
  }
  for (int i = 1; i < argc; ++i) {
    const auto input = read_bytes(argv[i]);
    if (!input) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 1;
    }
    feed(*input);
  }
  return std::nullopt;
}

}  // namespace molt::fuzz
