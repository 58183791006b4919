#pragma once

// The unfused pipeline on one GPU, for fusco_bench -t gpu's side-by-side columns: permute kernel,
// all-to-all of contiguous blocks (device-to-device copies between the logical ranks'
// buffers, what ncclAllToAllv does over NVLink), re-sort kernel; combine in reverse with the
// same fixed-order reduction as the fused engine. Runs on the DeviceGroup's streams.

#include <memory>
#include <vector>

#include "fusco/gpu.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/device_programme.hpp"
#include "gpu/unfused_device_lists.hpp"

namespace fusco::baseline {

class UnfusedDevice {
 public:
  /// Lists and buffers for rows of up to `row_bytes` bytes, for the group's `plans`.
  static Result<std::unique_ptr<UnfusedDevice>> create(gpu::DeviceGroup& group,
                                                       const std::vector<gpu::DevicePlan>& plans,
                                                       int64_t row_bytes);
  ~UnfusedDevice();

  /// x[r] [T_r, H] -> recv[r] [num_recv_rows_r, H], contiguous device rows.
  Status dispatch(const std::vector<TensorView>& x, const std::vector<TensorView>& recv);
  /// expert_out[r] [num_recv_rows_r, H], topk_weights[r] [T_r, k] fp32 -> out[r] [T_r, H].
  Status combine(const std::vector<TensorView>& expert_out,
                 const std::vector<TensorView>& topk_weights, const std::vector<TensorView>& out);

 private:
  UnfusedDevice() = default;
  Status barrier();

  gpu::DeviceGroup* group_ = nullptr;
  std::vector<gpu::DevicePlan> plans_;
  std::vector<gpu::UnfusedDeviceLists> lists_;
  int64_t max_row_bytes_ = 0;
  std::vector<gpu::DeviceBuffer> permute_, resort_, unsort_, terms_, token_groups_, group_terms_;
  std::vector<gpu::DeviceBuffer> send_, stage_;
  std::vector<cudaStream_t> streams_;  // the group's, one per rank
  std::vector<cudaEvent_t> events_;
};

}  // namespace fusco::baseline
