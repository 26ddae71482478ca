#include "stream_samples.hpp"

#include <array>

#include <molt/sdk/state.hpp>

#include "core/migration/stream.hpp"

namespace molt::core::migration::samples {

namespace {

void put_le(std::vector<std::uint8_t>& out, std::uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
}

struct SampleTimer {
  std::uint64_t deadline = 0x0102030405060708;
};

struct SampleDev {
  std::uint8_t ctrl = 0x81;
  std::uint16_t count = 0x1234;
  bool enabled = true;
  std::array<std::uint8_t, 4> fifo{1, 2, 3, 4};
  std::string label = "com1";
  std::vector<std::uint32_t> regs{1, 2, 3};
  std::int64_t delta = -5;
  SampleTimer timer;
};

const sdk::StateDescriptor& timer_descriptor() {
  static const sdk::StateDescriptor d = sdk::StateDescriptorBuilder<SampleTimer>("sample-timer", 1)
                                            .field("deadline", &SampleTimer::deadline)
                                            .build();
  return d;
}

const sdk::StateDescriptor& sample_descriptor() {
  static const sdk::StateDescriptor d =
      sdk::StateDescriptorBuilder<SampleDev>("sample-dev", 2)
          .field("ctrl", &SampleDev::ctrl)
          .field("count", &SampleDev::count)
          .field("enabled", &SampleDev::enabled)
          .field("fifo", &SampleDev::fifo)
          .field("label", &SampleDev::label)
          .field("regs", &SampleDev::regs)
          .field("delta", &SampleDev::delta, 2)
          .subsection(timer_descriptor(), &SampleDev::timer, [](const SampleDev&) { return true; })
          .build();
  return d;
}

}  // namespace

std::vector<std::uint8_t> ram_chunk(const std::string& block, const std::vector<RamPage>& pages) {
  std::vector<std::uint8_t> out;
  put_le(out, block.size(), 2);
  out.insert(out.end(), block.begin(), block.end());
  put_le(out, pages.size(), 4);
  for (const RamPage& page : pages) {
    put_le(out, page.offset | (page.zero ? 1 : 0), 8);
    if (!page.zero) out.insert(out.end(), 4096, page.fill);
  }
  return out;
}

std::vector<std::uint8_t> sample_state_record() {
  SampleDev dev;
  return sdk::save_state(sample_descriptor(), &dev);
}

std::vector<std::uint8_t> sample_migration_stream() {
  VectorSink sink;
  StreamWriter writer(sink, kKindMigration);
  writer.record(Tag::Fingerprint, "machine",
                R"({"machine":"pc","vcpus":1,"ram":[{"name":"pc.ram","size":16777216}]})");
  writer.record(Tag::Chunk, "com1/fifo", std::string_view("\x01\x02\x03", 3));
  writer.record(Tag::Phase, "live", "");
  writer.record(Tag::Chunk, "ram", ram_chunk("pc.ram", {{0x0, true}, {0x1000, false, 0xaa}, {0x5000, true}}));
  writer.record(Tag::Chunk, "ram", ram_chunk("pc.ram", {{0x2000, false, 0xbb}}));
  writer.record(Tag::Phase, "stopped", "");
  const std::vector<std::uint8_t> state = sample_state_record();
  writer.record(Tag::DeviceState, "com1", state);
  writer.record(Tag::CpuState, "cpu0", state);
  writer.record(Tag::MachineState, "pit", state);
  writer.finish();
  return sink.data;
}

std::vector<std::uint8_t> sample_return_path() {
  VectorSink sink;
  StreamWriter writer(sink, kKindReturnPath);
  writer.record(Tag::Handshake, "refuse",
                R"({"differences":["device disk0: present at source, absent here"]})");
  writer.record(Tag::Status, "failed", R"({"error":"device com1: bad state"})");
  writer.finish();
  return sink.data;
}

}  // namespace molt::core::migration::samples
