#pragma once

// One rank's part of a routing case through fusco::gpu::NcclCommunicator: plan (on the host,
// or with `device_planning` from device routing by plan_on_device), dispatch into the receive
// window, expert outputs written into the expert-output window (or, with `copy_expert_out`,
// passed from separate device memory), combine; results read back.

#include "fusco/nccl.hpp"
#include "multirank/harness.hpp"

namespace fusco::testing {

RankResult run_nccl_rank(const Case& c, gpu::NcclCommunicator& comm, bool copy_expert_out,
                         bool device_planning = false);

/// The number of CUDA devices (0 when CUDA finds none or no driver).
int cuda_devices();

}  // namespace fusco::testing
