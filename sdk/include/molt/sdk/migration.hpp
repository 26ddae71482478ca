// Iterative migration state: for a device whose state is too large to send
// while the guest is stopped (a device's own RAM, queued packets), or that a
// destination wants early to prepare (open backends, size queues).
//
// The migration engine runs every IterativeState through one loop, the same
// one guest RAM goes through (the core's RAM section implements this
// interface too):
//
//   source                                   destination
//   setup()                 live phase begins
//   iterate(out, budget)*   guest running    load(chunk)  as each chunk arrives
//   pending()               after each pass: bytes still to send (estimate)
//   complete(out)           guest stopped    load(chunk)
//   cleanup()               migration over, either way
//
// An `early` section is iterated to completion before any RAM is sent, so the
// destination holds it while the source still runs; at switchover only what
// changed since is sent by complete(). Sections are loaded, on the
// destination, in the order of their priority (higher first); among equal
// priorities in the order the source sent them. Device states (StateBinding)
// of the same priority load after the iterative sections' final chunks.
//
// Hooks run on the migration thread. For a device, the core calls them under
// the device's lock, so they never overlap the device's I/O callbacks.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace molt::sdk {

// Receives one chunk of a section: the destination's load() gets exactly
// these bytes back, in order.
class ChunkWriter {
 public:
  virtual ~ChunkWriter() = default;
  virtual void write(std::span<const std::uint8_t> chunk) = 0;
};

// Load priorities: higher loads first. Devices that others depend on
// (interrupt controllers, buses) load before their users.
inline constexpr int kPriorityEarly = 300;     // e.g. a PCI host bridge
inline constexpr int kPriorityPlatform = 200;  // chipset, interrupt routing
inline constexpr int kPriorityDefault = 100;   // ordinary devices
inline constexpr int kPriorityLate = 0;

class IterativeState {
 public:
  virtual ~IterativeState() = default;
  // Sent before guest RAM and loaded while the source still runs.
  virtual bool early() const { return false; }
  virtual int priority() const { return kPriorityDefault; }
  // Source: the live phase begins (start tracking changes).
  virtual void setup() {}
  // Source: bytes this section still has to send, as of now.
  virtual std::uint64_t pending() = 0;
  // Source, guest running: write chunks of about `budget` bytes in all
  // (budget may be exceeded by one chunk); return true when nothing is left
  // to send for now.
  virtual bool iterate(ChunkWriter& out, std::uint64_t budget) = 0;
  // Source, guest stopped: write everything that is left.
  virtual void complete(ChunkWriter& out) = 0;
  // Destination: one chunk, in the order written. Validate it (bound every
  // index and length) and throw StateError naming what is wrong.
  virtual void load(std::span<const std::uint8_t> chunk) = 0;
  // Source: the migration ended (completed, failed or cancelled): stop
  // tracking; the device runs on as before.
  virtual void cleanup() {}
};

}  // namespace molt::sdk
