#pragma once

// One rank's part of a routing case through fusco::gpu::NcclCommunicator: plan (on the host,
// or with `device_planning` from device routing by plan_on_device), dispatch into the receive
// window, expert outputs written into the expert-output window (or, with `copy_expert_out`,
// passed from separate device memory), combine; results read back.

#include "fusco/nccl.hpp"
#include "gpu/gpu_presence.hpp"
#include "multirank/harness.hpp"

namespace fusco::testing {

RankResult run_nccl_rank(const Case& c, gpu::NcclCommunicator& comm, bool copy_expert_out,
                         bool device_planning = false);

}  // namespace fusco::testing
