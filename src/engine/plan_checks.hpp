#pragma once

// Local argument checks of dispatch and combine (before any rank communicates).

#include <cstring>

#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "plan/plan_data.hpp"
#include "transport/transport.hpp"

namespace fusco::engine {

/// The plan exists and was made by this rank of this group.
Status check_plan_owner(const transport::Transport& transport, const detail::PlanData* plan);

/// dispatch: x [T, H], recv [num_recv_rows, H], same dtype; with a companion tensor (when
/// `extra` or `extra_recv` is not a default view) extra [T, E2] and extra_recv
/// [num_recv_rows, E2] of one dtype, and an x row plus an extra row fitting a staging slot.
Status check_dispatch_args(const transport::Transport& transport, const detail::PlanData* plan,
                           const TensorView& x, const TensorView& recv, const TensorView& extra,
                           const TensorView& extra_recv);

/// True when dispatch got a companion tensor.
inline bool has_extra(const TensorView& extra, const TensorView& extra_recv) {
  return extra.ndim != 0 || extra_recv.ndim != 0;
}

/// combine: expert_out [num_recv_rows, H] fp32/fp16/bf16, topk_weights [T, k] fp32,
/// out [T, H] with the dtype of expert_out.
Status check_combine_args(const transport::Transport& transport, const detail::PlanData* plan,
                          const TensorView& expert_out, const TensorView& topk_weights,
                          const TensorView& out);

/// Rows per chunk on the staged path: the plan's chunk size capped by what the transport's
/// staging slots hold, at least one row (check_row_fits makes sure a row fits).
int64_t rows_per_chunk(const transport::Transport& transport, const detail::PlanData& plan,
                       size_t row_bytes);

/// Copies one row; nothing for empty rows (whose pointers may be null).
inline void copy_row(void* dst, const void* src, size_t bytes) {
  if (bytes > 0) {
    std::memcpy(dst, src, bytes);
  }
}

}  // namespace fusco::engine
