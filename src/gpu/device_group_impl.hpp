#pragma once

// What a fusco::gpu::DeviceGroup holds: its streams, the events of its barriers, and the
// in-process ranks that make its host plans. Shared by the files that implement its calls.

#include <cuda_runtime_api.h>

#include <string>
#include <vector>

#include "fusco/communicator.hpp"
#include "fusco/gpu.hpp"
#include "gpu/device_checks.hpp"
#include "gpu/device_ops.hpp"
#include "gpu/device_plan_impl.hpp"
#include "gpu/device_staged.hpp"
#include "gpu/stream_barrier.hpp"
#include "plan/plan_data.hpp"

namespace fusco::gpu {

struct DeviceGroup::Impl {
  const DeviceOps* ops = nullptr;  ///< CUDA, or the host backend (create_on_host).
  int device = 0;
  int world = 0;
  std::vector<Communicator> planners;  ///< In-process ranks of one node: the planning collective.
  std::vector<cudaStream_t> streams;
  std::vector<cudaEvent_t> events;
  StagedScratch scratch;  ///< Staging of the inter-node hops (groups of several nodes).

  ~Impl() {
    if (ops == nullptr) return;
    (void)ops->use_device(device);
    for (cudaEvent_t event : events) ops->destroy_event(event);
    for (cudaStream_t stream : streams) ops->destroy_stream(stream);
  }

  Status barrier() const { return stream_barrier(*ops, streams, events, "barrier"); }

  Status plans_of(const std::vector<DevicePlan>& plans,
                  std::vector<const detail::PlanData*>& data) const {
    FUSCO_RETURN_IF_ERROR(check_rank_count("plans", plans.size(), world));
    data.clear();
    for (int r = 0; r < world; ++r) {
      const DevicePlan& plan = plans[static_cast<size_t>(r)];
      if (!plan.valid() || plan.impl().owner != this || plan.impl().data().rank != r) {
        return Status(StatusCode::kInvalidArgument,
                      "plans[" + std::to_string(r) + "] is not rank " + std::to_string(r) +
                          "'s plan from this DeviceGroup's plan() or plan_on_device()");
      }
      data.push_back(&plan.impl().data());
      if (plan.impl().copies != plans.front().impl().copies) {
        return Status(StatusCode::kInvalidArgument,
                      "plans[" + std::to_string(r) +
                          "] comes from another plan() call than plans[0]: staged rows move "
                          "between the plans of one call");
      }
    }
    return Status();
  }
};

}  // namespace fusco::gpu
