// Errors on setup and control paths. Run-time paths (I/O callbacks, timers)
// never throw: guest misbehaviour is logged and the device carries on.
#pragma once

#include <stdexcept>
#include <string>

namespace molt::sdk {

// A setup or control failure, phrased as a sentence that says what to do next.
// The core adds the context it knows (device id, JSON path) when it reports it.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A state stream that cannot be loaded: names the field (dotted path inside the
// descriptor, e.g. "fifo.rx_count") and why.
class StateError : public Error {
 public:
  StateError(std::string field, const std::string& why)
      : Error(field.empty() ? why : field + ": " + why), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

}  // namespace molt::sdk
