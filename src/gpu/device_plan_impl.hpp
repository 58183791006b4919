#pragma once

// What a fusco::gpu::DevicePlan holds: the host plan, its programme in device memory and the
// group or communicator that made it (calls check that plans are their own).

#include "fusco/gpu.hpp"
#include "gpu/device_programme.hpp"

namespace fusco::gpu {

struct DevicePlan::Impl {
  const void* owner = nullptr;
  Plan plan;
  DeviceProgramme programme;
  /// Plans of NcclCommunicator: the most rows any rank of the group receives (what every
  /// rank's window must hold, so all ranks agree on whether a call fits).
  int64_t group_max_recv_rows = 0;
};

}  // namespace fusco::gpu
