// Replays the migration stream's fuzz entry without libFuzzer, so every build
// runs it: sample streams of each kind (a migration, a return path, a RAM
// channel), every truncation of them, a few thousand deterministic mutations,
// and any files named on the command line (crash reproducers).
//
//   molt_fuzz_migration_stream_replay                    # seeds + mutations
//   molt_fuzz_migration_stream_replay crash-1234 ...     # replay files as well
//   molt_fuzz_migration_stream_replay --write-seeds DIR  # write the seeds as a corpus
#include <cstdio>
#include <random>
#include <vector>

#include "codec_samples.hpp"
#include "core/migration/stream.hpp"
#include "replay_driver.hpp"
#include "stream_samples.hpp"

namespace {

namespace migration = molt::core::migration;
using molt::fuzz::Bytes;

Bytes ram_channel_stream() {
  migration::VectorSink sink;
  migration::StreamWriter writer(sink, migration::kKindRamChannel);
  writer.record(migration::Tag::Chunk, "ram",
                migration::samples::ram_chunk("pc.ram", {{0x3000, true}, {0x4000, false, 0x5a}}));
  writer.finish();
  return sink.data;
}

std::vector<Bytes> seeds() {
  return {migration::samples::sample_migration_stream(), migration::samples::sample_return_path(),
          ram_channel_stream(), migration::samples::ram_chunk("pc.ram", {{0x0, true}, {0x1000, false, 1}}),
          migration::samples::sample_state_record()};
}

}  // namespace

int main(int argc, char** argv) {
  if (auto status = molt::fuzz::handle_command_line(argc, argv, seeds())) return *status;
  const std::vector<Bytes> all = seeds();
  for (const Bytes& seed : all) {
    molt::fuzz::feed(seed);
    for (std::size_t length = 0; length < seed.size(); length += 1 + length / 64)
      molt::fuzz::feed(Bytes(seed.begin(), seed.begin() + static_cast<std::ptrdiff_t>(length)));
  }
  std::mt19937 rng(0x5eed);
  constexpr unsigned kMutations = 3000;
  for (unsigned i = 0; i < kMutations; ++i) molt::fuzz::feed(molt::sdk::samples::mutate(all[i % all.size()], rng));
  std::printf("replayed %zu seeds, their truncations and %u mutations\n", all.size(), kMutations);
  return 0;
}
