#include "core/migration/ram.hpp"

#include <bit>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include <molt/sdk/error.hpp>
#include <molt/sdk/state.hpp>

#include "core/machine/machine.hpp"

namespace molt::core::migration {

namespace {

constexpr std::uint64_t kWordsPerGranule = 8;  // 8 x 64 pages = 2 MiB: one lane's share

bool is_zero_page(const std::uint8_t* page) {
  const auto* words = reinterpret_cast<const std::uint64_t*>(page);
  if (words[0] != 0) return false;
  for (std::size_t block = 0; block < kPageSize / 8; block += 16) {
    std::uint64_t any = 0;
    for (std::size_t i = 0; i < 16; ++i) any |= words[block + i];
    if (any != 0) return false;
  }
  return true;
}

using sdk::detail::put_le;  // the SDK codec's little-endian helpers

std::uint64_t get_le(std::span<const std::uint8_t> in, std::size_t at, unsigned bytes) {
  return sdk::detail::get_le(in.data() + at, bytes);
}

// One chunk being filled: block name, page count (patched at the end), pages.
class ChunkBuilder {
 public:
  explicit ChunkBuilder(const std::string& block) {
    put_le(buffer_, block.size(), 2);
    buffer_.insert(buffer_.end(), block.begin(), block.end());
    count_at_ = buffer_.size();
    put_le(buffer_, 0, 4);
    header_size_ = buffer_.size();
    buffer_.reserve(header_size_ + kPagesPerChunk * (8 + kPageSize));
  }
  void add(std::uint64_t block_offset, const std::uint8_t* page, bool zero) {
    put_le(buffer_, block_offset | (zero ? kZeroPageFlag : 0), 8);
    if (!zero) buffer_.insert(buffer_.end(), page, page + kPageSize);
    ++pages_;
  }
  std::uint32_t pages() const { return pages_; }
  // Writes the chunk if it holds pages; returns its size.
  std::uint64_t flush(sdk::ChunkWriter& out) {
    if (pages_ == 0) return 0;
    for (unsigned i = 0; i < 4; ++i) buffer_[count_at_ + i] = static_cast<std::uint8_t>(pages_ >> (8 * i));
    out.write(buffer_);
    const std::uint64_t size = buffer_.size();
    buffer_.resize(header_size_);
    pages_ = 0;
    return size;
  }

 private:
  std::vector<std::uint8_t> buffer_;
  std::size_t count_at_ = 0;
  std::size_t header_size_ = 0;
  std::uint32_t pages_ = 0;
};

}  // namespace

struct RamSection::Region {
  const memory::RamRegion* ram;
  std::uint32_t slot;
  std::uint64_t pages;
  std::vector<std::uint64_t> to_send;  // one bit per page
  std::vector<std::uint64_t> scratch;  // KVM's dirty log lands here
  std::vector<std::uint64_t> cursor;   // per lane: the next word to scan
};

RamSection::RamSection(memory::GuestRam& ram, machine::Machine* machine) : ram_(ram), machine_(machine) {
  std::uint32_t slot = 0;
  for (const memory::RamRegion& r : ram_.regions()) {
    Region region{&r, slot++, r.size / kPageSize, {}, {}, {}};
    region.to_send.assign((region.pages + 63) / 64, 0);
    total_pages_ += region.pages;
    regions_.push_back(std::move(region));
  }
  for (const auto& block : ram_.blocks()) written_.emplace_back((block->size() / kPageSize + 63) / 64);
}

RamSection::~RamSection() { cleanup(); }

void RamSection::set_extra_lanes(std::vector<sdk::ChunkWriter*> lanes) { extra_ = std::move(lanes); }

void RamSection::setup() {
  machine_->set_dirty_logging(true);
  logging_ = true;
  std::uint64_t marked = 0;
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    Region& region = regions_[i];
    ram_.device_dirty(i).take();  // what DMA wrote before now is covered by the first pass
    region.cursor.assign(lane_count(), 0);
    region.scratch.assign(region.to_send.size(), 0);
    const std::uint64_t begin = region.ram->block_offset;
    const std::uint64_t end = begin + region.ram->size;
    for (const auto& [from, to] : region.ram->block->data_extents()) {
      const std::uint64_t lo = std::max(from, begin), hi = std::min(to, end);
      for (std::uint64_t page = (lo - begin) / kPageSize; lo < hi && page < (hi - begin + kPageSize - 1) / kPageSize;
           ++page) {
        region.to_send[page / 64] |= 1ull << (page % 64);
        ++marked;
      }
    }
  }
  remaining_ = marked;
}

void RamSection::sync_dirty() {
  for (std::size_t i = 0; i < regions_.size(); ++i) {
    Region& region = regions_[i];
    machine_->vm().get_dirty_log(region.slot, region.scratch.data());
    const std::vector<std::uint64_t> dma = ram_.device_dirty(i).take();
    std::uint64_t added = 0;
    for (std::size_t w = 0; w < region.to_send.size(); ++w) {
      const std::uint64_t dirty = region.scratch[w] | dma[w];
      added += static_cast<std::uint64_t>(std::popcount(dirty & ~region.to_send[w]));
      region.to_send[w] |= dirty;
    }
    remaining_ += added;
    counters_.dirtied_pages += added;
  }
}

std::uint64_t RamSection::pending() {
  sync_dirty();
  return remaining_ * kPageSize;
}

bool RamSection::send_lane(unsigned lane, sdk::ChunkWriter& out, std::uint64_t budget) {
  const unsigned lanes = lane_count();
  auto flush = [this](ChunkBuilder& chunk, sdk::ChunkWriter& to) {
    const std::uint64_t size = chunk.flush(to);
    counters_.bytes += size;
    return size;
  };
  std::uint64_t sent = 0;
  for (Region& region : regions_) {
    const std::string& block = region.ram->block->name();
    ChunkBuilder chunk(block);
    std::uint64_t& w = region.cursor[lane];
    for (; w < region.to_send.size(); ++w) {
      if ((w / kWordsPerGranule) % lanes != lane) {
        w = (w / kWordsPerGranule + 1) * kWordsPerGranule - 1;  // skip to the end of this granule
        continue;
      }
      while (region.to_send[w] != 0) {
        const unsigned bit = static_cast<unsigned>(std::countr_zero(region.to_send[w]));
        region.to_send[w] &= region.to_send[w] - 1;
        const std::uint64_t page = w * 64 + bit;
        const std::uint8_t* host = region.ram->host() + page * kPageSize;
        const bool zero = is_zero_page(host);
        chunk.add(region.ram->block_offset + page * kPageSize, host, zero);
        (zero ? counters_.zero_pages : counters_.data_pages)++;
        --remaining_;
        if (chunk.pages() == kPagesPerChunk) sent += flush(chunk, out);
      }
      if (sent >= budget) {
        sent += flush(chunk, out);
        ++w;
        return false;
      }
    }
    sent += flush(chunk, out);
  }
  for (Region& region : regions_) region.cursor[lane] = 0;  // the next pass starts over
  return true;
}

bool RamSection::iterate(sdk::ChunkWriter& out, std::uint64_t budget) {
  const unsigned lanes = lane_count();
  if (lanes == 1) return send_lane(0, out, budget);
  std::vector<std::thread> workers;
  std::vector<char> done(lanes, 0);
  std::vector<std::exception_ptr> errors(lanes);
  for (unsigned lane = 1; lane < lanes; ++lane) {
    workers.emplace_back([&, lane] {
      try {
        done[lane] = send_lane(lane, *extra_[lane - 1], budget / lanes);
      } catch (...) {
        errors[lane] = std::current_exception();
      }
    });
  }
  try {
    done[0] = send_lane(0, out, budget / lanes);
  } catch (...) {
    errors[0] = std::current_exception();
  }
  for (std::thread& t : workers) t.join();
  for (const std::exception_ptr& e : errors)
    if (e) std::rethrow_exception(e);
  for (char d : done)
    if (!d) return false;
  return true;
}

void RamSection::complete(sdk::ChunkWriter& out) {
  sync_dirty();
  while (!iterate(out, ~0ull)) {
  }
}

void RamSection::cleanup() {
  if (!logging_) return;
  logging_ = false;
  try {
    machine_->set_dirty_logging(false);
  } catch (const std::exception&) {
    // The VM is going away; nothing to turn off.
  }
}

void RamSection::load(std::span<const std::uint8_t> chunk) {
  if (chunk.size() < 6) throw sdk::StateError("ram", "a chunk of " + std::to_string(chunk.size()) + " bytes is too short");
  const std::size_t name_length = get_le(chunk, 0, 2);
  if (chunk.size() < 2 + name_length + 4) throw sdk::StateError("ram", "a chunk ends inside its header");
  const std::string name(chunk.begin() + 2, chunk.begin() + 2 + static_cast<std::ptrdiff_t>(name_length));
  std::size_t block_index = 0;
  while (block_index < ram_.blocks().size() && ram_.blocks()[block_index]->name() != name) ++block_index;
  if (block_index == ram_.blocks().size()) throw sdk::StateError("ram", "no RAM block named '" + name + "' here");
  memory::RamBlock& block = *ram_.blocks()[block_index];
  auto& written = written_[block_index];
  const std::uint64_t count = get_le(chunk, 2 + name_length, 4);
  std::size_t at = 2 + name_length + 4;
  for (std::uint64_t i = 0; i < count; ++i) {
    if (chunk.size() - at < 8) throw sdk::StateError("ram." + name, fmt::format("page {} of {}: the chunk ends", i, count));
    const std::uint64_t word = get_le(chunk, at, 8);
    at += 8;
    const std::uint64_t offset = word & ~(kPageSize - 1), flags = word & (kPageSize - 1);
    if (flags & ~kZeroPageFlag)
      throw sdk::StateError("ram." + name, fmt::format("page at {:#x}: unknown flags {:#x}", offset, flags));
    if (offset >= block.size())
      throw sdk::StateError("ram." + name,
                            fmt::format("page at {:#x} is beyond the block's {:#x} bytes", offset, block.size()));
    std::uint8_t* host = block.host() + offset;
    const std::uint64_t page = offset / kPageSize;
    const std::uint64_t bit = 1ull << (page % 64);
    if (flags & kZeroPageFlag) {
      if (written[page / 64].load(std::memory_order_relaxed) & bit) std::memset(host, 0, kPageSize);
      continue;
    }
    if (chunk.size() - at < kPageSize)
      throw sdk::StateError("ram." + name, fmt::format("page at {:#x}: the chunk ends inside its data", offset));
    std::memcpy(host, chunk.data() + at, kPageSize);
    at += kPageSize;
    written[page / 64].fetch_or(bit, std::memory_order_relaxed);
  }
  if (at != chunk.size())
    throw sdk::StateError("ram." + name, fmt::format("{} bytes after the chunk's {} pages", chunk.size() - at, count));
}

}  // namespace molt::core::migration
