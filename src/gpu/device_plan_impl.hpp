#pragma once

// What a fusco::gpu::DevicePlan holds: the host plan, its programme in device memory and the
// group or communicator that made it (calls check that plans are their own).

#include <memory>

#include "fusco/gpu.hpp"
#include "gpu/device_programme.hpp"

namespace fusco::gpu {

struct SendRecvProgramme;

struct DevicePlan::Impl {
  const void* owner = nullptr;
  Plan plan;
  DeviceProgramme programme;
  /// Plans of NcclCommunicator: the most rows any rank of the group receives (what every
  /// rank's window must hold, so all ranks agree on whether a call fits).
  int64_t group_max_recv_rows = 0;
  /// Plans of an NcclCommunicator on the ncclSend/ncclRecv path: their row lists.
  std::shared_ptr<const SendRecvProgramme> send_recv;
};

}  // namespace fusco::gpu
