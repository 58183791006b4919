#pragma once

// Argument checks of the one-GPU engine's dispatch and combine, per rank, before anything is
// enqueued: the same rules as the CPU engine's, for device memory.

#include <string>
#include <vector>

#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "plan/plan_data.hpp"

namespace fusco::core {
struct ResolvedExpertMap;
}  // namespace fusco::core

namespace fusco::gpu {

/// `count` per-rank arguments named `arg` for a group of `world` ranks.
Status check_rank_count(const char* arg, size_t count, int world);

/// One rank's dispatch: x [T, H] (strided rows allowed) and recv [num_recv_rows, H]
/// contiguous, CUDA device memory of `dtype`. Argument names end in `suffix` ("[3]" or "").
Status check_rank_dispatch(const detail::PlanData& plan, const TensorView& x,
                           const TensorView& recv, int64_t hidden, DType dtype,
                           const std::string& suffix);

/// One rank's companion tensor: extra [T, cols] (strided rows allowed) and extra_recv
/// [num_recv_rows, cols] contiguous, CUDA device memory of `dtype`.
Status check_rank_companion(const detail::PlanData& plan, const TensorView& extra,
                            const TensorView& extra_recv, int64_t cols, DType dtype,
                            const std::string& suffix);

/// One rank's combine: expert_out [num_recv_rows, H] (strided rows allowed) of `dtype`
/// (fp32/fp16/bf16), topk_weights [T, k] fp32, out [T, H] contiguous of `dtype`, all CUDA
/// device memory.
Status check_rank_combine(const detail::PlanData& plan, const TensorView& expert_out,
                          const TensorView& topk_weights, const TensorView& out, int64_t hidden,
                          DType dtype, const std::string& suffix);

/// Combine on NCCL copies expert_out into the expert-output window (`window`, `window_bytes`)
/// unless it is the window's own view (its first byte, rows back to back): an expert_out that
/// lies partly inside the window in another layout would be copied onto itself.
Status check_outside_window(const TensorView& expert_out, const void* window, size_t window_bytes);

/// dispatch: x[r] [T_r, H] (strided rows allowed) and recv[r] [num_recv_rows_r, H] contiguous,
/// both CUDA device memory of one dtype, H equal on every rank.
Status check_device_dispatch(const std::vector<const detail::PlanData*>& plans,
                             const std::vector<TensorView>& x, const std::vector<TensorView>& recv);

/// combine: expert_out[r] [num_recv_rows_r, H] (strided rows allowed) fp32/fp16/bf16,
/// topk_weights[r] [T_r, k] fp32, out[r] [T_r, H] contiguous with expert_out's dtype, all CUDA
/// device memory, dtype and H equal on every rank.
Status check_device_combine(const std::vector<const detail::PlanData*>& plans,
                            const std::vector<TensorView>& expert_out,
                            const std::vector<TensorView>& topk_weights,
                            const std::vector<TensorView>& out);

/// What plan_on_device plans with: valid options with an expert-major layout or a capacity
/// layout that drops (kUnsupported otherwise, naming the option and that plan() has it), a map
/// without replicas, max_recv_rows 0 or (expert-major only) positive.
Status check_device_planning(const PlanOptions& options, const core::ResolvedExpertMap& map,
                             int64_t max_recv_rows);

/// One rank's routing for planning on the device, named `name`: contiguous device int32/int64
/// [T, k], k in [1, kMaxTopk], T below 2^31 - 1.
Status check_device_ids(const TensorView& ids, const std::string& name);

/// plan_on_device's routing: topk_idx[r] contiguous device int32/int64 [T, k], k in
/// [1, kMaxTopk] and equal on every rank, T below 2^31 - 1.
Status check_device_routing(const std::vector<TensorView>& topk_idx);

}  // namespace fusco::gpu
