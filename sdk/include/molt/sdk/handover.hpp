// Helpers for devices that hand backend fds over in cpr-transfer
// (Device::handover_fds, DeviceContext::take_handed_over_fd).
#pragma once

#include <string>

#include <molt/sdk/device.hpp>

namespace molt::sdk {

// Whether `fd` is open on the file `path` names now: the same device and
// inode. A path that names nothing, or an fd that is not open, is not.
bool names_open_file(int fd, const std::string& path);

// The fd handed over under `name` when it is open on the file `path` names
// (the old molt's output file: kept, so it is appended to, not truncated);
// otherwise -1. A handed fd on another file is closed and the choice logged:
// a `path` that names another file is the operator's, opened as on a fresh
// start by the caller.
int take_handed_over_file(DeviceContext& ctx, const std::string& name, const std::string& path);

}  // namespace molt::sdk
