// The SDK ABI version. Bump it when a change to any header under molt/sdk/
// changes the layout or meaning of something a built plugin relies on (a
// virtual function added, removed or reordered in an interface, a struct
// member changed, PluginEntry's layout). Adding a new free function or a new
// header does not bump it. The core refuses plugins built for another value.
#pragma once

#include <cstdint>

namespace molt::sdk {
inline constexpr std::uint32_t kSdkAbiVersion = 4;  // 4: backend fd handover for cpr-transfer (docs/sdk-abi.md)
}
