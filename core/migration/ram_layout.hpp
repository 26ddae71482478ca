// The ram-layout record (Tag::RamLayout, name "blocks") and snapshots that
// leave the guest's RAM in place: in the named RAM files it was running in
// (memory.backend "file"), rather than as pages in the snapshot file
// (docs/cpr.md, "Snapshots"; docs/migration-stream.md).
//
// Saving: in_place_layout() names each block's file and size (or refuses a
// machine whose RAM is in no named file); the engine writes it as the
// ram-layout record and no RAM chunk. Restoring: `molt run --restore FILE`
// reads the record before it builds the VM (peek_ram_layout), checks the
// machine's RAM against it (check_in_place_restore), and then maps the file
// without emptying it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace molt::core::memory {
class GuestRam;
}

namespace molt::core::migration {

inline constexpr std::string_view kRamLayoutName = "blocks";

struct RamLayoutBlock {
  std::string name;
  std::uint64_t size = 0;
  // Where the block's pages stayed (an in-place snapshot); empty when its
  // pages travel in the stream as chunks.
  std::filesystem::path path;
  bool in_place() const { return !path.empty(); }
  bool operator==(const RamLayoutBlock&) const = default;
};

// The record's JSON payload: [{"name", "size"}] per block, plus "path" and
// "in_place": true for a block whose pages stayed in its file.
std::string ram_layout_json(const std::vector<RamLayoutBlock>& blocks);
// Reads a payload; throws sdk::Error saying what is wrong and where
// ("the ram-layout record: block 0: "size" is missing").
std::vector<RamLayoutBlock> parse_ram_layout(std::string_view json_text);
bool any_in_place(const std::vector<RamLayoutBlock>& blocks);

// The layout of `ram` with every block left in place. Throws sdk::Error when
// a block is not in a named file (the sentence says what to change).
std::vector<RamLayoutBlock> in_place_layout(const memory::GuestRam& ram);

// A snapshot file's ram-layout record, read from the records before its
// first page or state (the file is not verified here; loading it does that).
// nullopt when the file has none, or can't be opened or read as a stream:
// the restore itself then reports that with its usual message.
std::optional<std::vector<RamLayoutBlock>> peek_ram_layout(const std::filesystem::path& snapshot);

// A machine's RAM as its description gives it, for check_in_place_restore.
struct MachineRam {
  std::string backend;         // "memfd", "anonymous" or "file"
  std::filesystem::path path;  // backend "file": memory.path
  std::uint64_t size = 0;
};

// Throws sdk::Error, naming the snapshot's file and what differs, unless an
// in-place `layout` can be restored into `machine`: a file backend with the
// same path and size, and that file still there with the block's size.
// A layout without in-place blocks is always fine here.
void check_in_place_restore(const std::vector<RamLayoutBlock>& layout, const MachineRam& machine);

}  // namespace molt::core::migration
