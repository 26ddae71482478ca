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
#include "replay_driver.hpp"


namespace {

namespace samples = molt::sdk::samples;
using molt::fuzz::Bytes;
constexpr auto run = [](const Bytes& input) { molt::fuzz::feed(input); };

std::vector<Bytes> seeds() {
  samples::SampleState full = samples::full_sample();
  samples::SampleState plain;
  samples::GoldenState golden = samples::golden_state();
  golden.scratch = 0x1234;
  return {samples::kGoldenV1, molt::sdk::save_state(samples::sample_descriptor(), &full),
          molt::sdk::save_state(samples::sample_descriptor(), &plain),
          molt::sdk::save_state(samples::golden_descriptor(2), &golden)};
}

}  // namespace

int main(int argc, char** argv) {
  if (auto status = molt::fuzz::handle_command_line(argc, argv, seeds())) return *status;
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
