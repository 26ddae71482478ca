// Replays the state codec's fuzz entry without libFuzzer, so every build (and
// CI) runs it: the frozen and freshly saved sample records, a few thousand
// deterministic mutations of them, and any files named on the command line
// (crash reproducers saved by a libFuzzer run).
//
//   molt_fuzz_state_codec_replay                  # seeds + mutations
//   molt_fuzz_state_codec_replay crash-1234 ...   # replay files as well
//   molt_fuzz_state_codec_replay --write-seeds DIR  # write the seeds as a corpus
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "codec_samples.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace samples = molt::sdk::samples;
using Bytes = std::vector<std::uint8_t>;

std::vector<Bytes> seeds() {
  samples::SampleState full = samples::full_sample();
  samples::SampleState plain;
  samples::GoldenState golden = samples::golden_state();
  golden.scratch = 0x1234;
  return {samples::kGoldenV1, molt::sdk::save_state(samples::sample_descriptor(), &full),
          molt::sdk::save_state(samples::sample_descriptor(), &plain),
          molt::sdk::save_state(samples::golden_descriptor(2), &golden)};
}

void run(const Bytes& input) {
  LLVMFuzzerTestOneInput(input.data(), input.size());
}

int write_seeds(const std::string& dir) {
  const std::vector<Bytes> all = seeds();
  for (std::size_t i = 0; i < all.size(); ++i) {
    std::ofstream out(dir + "/seed-" + std::to_string(i), std::ios::binary);
    out.write(reinterpret_cast<const char*>(all[i].data()), static_cast<std::streamsize>(all[i].size()));
    if (!out) {
      std::fprintf(stderr, "cannot write %s/seed-%zu\n", dir.c_str(), i);
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--write-seeds") return write_seeds(argv[2]);
  for (int i = 1; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 1;
    }
    run(Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()));
  }
  const std::vector<Bytes> all = seeds();
  for (const Bytes& seed : all) {
    run(seed);
    for (std::size_t length = 0; length < seed.size(); ++length)
      run(Bytes(seed.begin(), seed.begin() + length));
  }
  std::mt19937 rng(0x5eed);
  constexpr unsigned kMutations = 5000;
  for (unsigned i = 0; i < kMutations; ++i) run(samples::mutate(all[i % all.size()], rng));
  std::printf("replayed %zu seeds, their truncations and %u mutations\n", all.size(), kMutations);
  return 0;
}
