// `handover-probe`: a test-only device for cpr-transfer's backend fd handover
// and the core's hold of device callbacks (docs/cpr.md). Its backend is an
// append-only log file (property `handover_file`) that it hands over as
// "file"; every step it sees becomes a line there, written with the pid of the
// molt it runs in:
//   realize pid=P took=yes|no          took: the fd came from the old molt
//   timer pid=P loaded=yes|no          its timer fired; loaded: after post_load
//   completed source|destination pid=P handover_completed
// The timer is armed at reset() to fire at once, so on an incoming machine it
// fires only when the core releases the device: after the state loaded.
// `handover_blocker`, when set, is the reason it gives for refusing a handover.
#pragma once

#include <molt/sdk/plugin.hpp>

namespace molt::iterative_probe {

sdk::DeviceType handover_probe_type();

}  // namespace molt::iterative_probe
