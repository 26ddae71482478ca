#include "core/migration/ram_layout.hpp"

#include <fcntl.h>

#include <system_error>

#include <fmt/format.h>
#include <boost/json.hpp>

#include <molt/sdk/error.hpp>

#include "core/memory/guest_ram.hpp"
#include "core/migration/channel.hpp"
#include "core/migration/stream.hpp"

namespace molt::core::migration {

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

// Records a snapshot may hold before its ram-layout record.
constexpr int kMaxLeadingRecords = 8;

[[noreturn]] void bad_layout(std::size_t index, const std::string& what) {
  throw sdk::Error(fmt::format("the ram-layout record: block {}: {}", index, what));
}

RamLayoutBlock read_block(const json::value& value, std::size_t index) {
  if (!value.is_object()) bad_layout(index, "expected an object {\"name\", \"size\"}");
  const json::object& object = value.as_object();
  RamLayoutBlock block;
  const json::value* name = object.if_contains("name");
  if (!name || !name->is_string() || name->as_string().empty())
    bad_layout(index, "\"name\" is missing or not a string");
  block.name = std::string(name->as_string());
  const json::value* size = object.if_contains("size");
  if (!size || !size->is_number()) bad_layout(index, "\"size\" is missing or not a number");
  std::error_code error;
  block.size = size->to_number<std::uint64_t>(error);
  if (error) bad_layout(index, "\"size\" is not a byte count");
  const json::value* in_place = object.if_contains("in_place");
  if (in_place && !in_place->is_bool()) bad_layout(index, "\"in_place\" is not true or false");
  if (in_place && in_place->as_bool()) {
    const json::value* path = object.if_contains("path");
    if (!path || !path->is_string() || path->as_string().empty())
      bad_layout(index, "a block left in place needs the \"path\" of its file");
    block.path = std::string(path->as_string());
  }
  return block;
}

std::string size_text(std::uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  return fmt::format("{} bytes", bytes);
}

bool same_path(const fs::path& a, const fs::path& b) {
  if (a.lexically_normal() == b.lexically_normal()) return true;
  std::error_code error;
  return fs::equivalent(a, b, error);
}

void check_block(const RamLayoutBlock& block, const MachineRam& machine) {
  const std::string left = fmt::format("the snapshot left RAM in place in {}", block.path.string());
  if (block.name != "pc.ram")
    throw sdk::Error(
        fmt::format("{} for RAM block {}; this machine has one block, pc.ram", left, block.name));
  if (machine.backend != "file")
    throw sdk::Error(
        fmt::format("{}; this machine's memory.backend is {}: set \"memory\": {{\"backend\": \"file\", "
                    "\"path\": \"{}\"}} "
                    "in its machine file",
                    left, machine.backend, block.path.string()));
  if (!same_path(machine.path, block.path))
    throw sdk::Error(fmt::format("{}; this machine's memory.path is {}: give it the same path", left,
                                 machine.path.string()));
  if (machine.size != block.size)
    throw sdk::Error(fmt::format("{} ({}); this machine's memory.size is {}: give it the same size", left,
                                 size_text(block.size), size_text(machine.size)));
  std::error_code error;
  const auto status = fs::status(block.path, error);
  if (!fs::exists(status))
    throw sdk::Error(
        fmt::format("{}, which does not exist any more (files on /dev/shm do not survive a host reboot): the "
                    "guest's RAM is "
                    "gone, so this snapshot can't be restored",
                    left));
  const std::uintmax_t file_size = fs::file_size(block.path, error);
  if (error || file_size != block.size)
    throw sdk::Error(
        fmt::format("{} ({}); the file now holds {}: it changed since the snapshot, so it can't be "
                    "restored",
                    left, size_text(block.size),
                    error ? "nothing readable" : size_text(static_cast<std::uint64_t>(file_size))));
}

}  // namespace

std::string ram_layout_json(const std::vector<RamLayoutBlock>& blocks) {
  json::array out;
  for (const RamLayoutBlock& b : blocks) {
    json::object entry{{"name", b.name}, {"size", b.size}};
    if (b.in_place()) {
      entry["in_place"] = true;
      entry["path"] = b.path.string();
    }
    out.push_back(std::move(entry));
  }
  return json::serialize(out);
}

std::vector<RamLayoutBlock> parse_ram_layout(std::string_view json_text) {
  std::error_code error;
  const json::value root = json::parse(json_text, error);
  if (error) throw sdk::Error("the ram-layout record is not JSON: " + error.message());
  if (!root.is_array()) throw sdk::Error("the ram-layout record is not a JSON array of blocks");
  std::vector<RamLayoutBlock> blocks;
  for (std::size_t i = 0; i < root.as_array().size(); ++i)
    blocks.push_back(read_block(root.as_array()[i], i));
  return blocks;
}

bool any_in_place(const std::vector<RamLayoutBlock>& blocks) {
  for (const RamLayoutBlock& b : blocks)
    if (b.in_place()) return true;
  return false;
}

std::vector<RamLayoutBlock> in_place_layout(const memory::GuestRam& ram) {
  std::vector<RamLayoutBlock> out;
  for (const auto& block : ram.blocks()) {
    if (block->path().empty())
      throw sdk::Error(
          fmt::format("ram in-place needs the guest's RAM in a named file: set memory.backend to \"file\" "
                      "with a path, for "
                      "example on /dev/shm; this machine's RAM is {}",
                      block->backing() == memory::RamBacking::Anonymous ? "anonymous memory" : "a memfd"));
    out.push_back(RamLayoutBlock{block->name(), block->size(), block->path()});
  }
  return out;
}

std::optional<std::vector<RamLayoutBlock>> peek_ram_layout(const fs::path& snapshot) {
  kvm::Fd fd(::open(snapshot.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return std::nullopt;
  try {
    Channel file(std::move(fd), "snapshot");
    StreamReader in(file, kKindMigration);
    Record r;
    for (int i = 0; i < kMaxLeadingRecords && in.next(r); ++i) {
      if (r.tag == Tag::RamLayout)
        return parse_ram_layout(
            std::string_view(reinterpret_cast<const char*>(r.payload.data()), r.payload.size()));
      if (r.tag != Tag::Fingerprint && r.tag != Tag::Phase) return std::nullopt;
    }
  } catch (const sdk::Error&) {
    // Damaged: loading the file reports it, with the byte where it went wrong.
  }
  return std::nullopt;
}

void check_in_place_restore(const std::vector<RamLayoutBlock>& layout, const MachineRam& machine) {
  for (const RamLayoutBlock& block : layout)
    if (block.in_place()) check_block(block, machine);
}

}  // namespace molt::core::migration
