#pragma once

// The unfused GPU baseline's programme, computed on the host from one-node plans: what the
// Megatron + NCCL pipeline does on a GPU, step by step, as row lists for a row-copy kernel.
//   dispatch: permute (x rows into send order: by destination rank, then expert, token,
//             slot), all-to-all of contiguous blocks into each receiver's staging buffer,
//             re-sort (staging rows into their expert-major place);
//   combine:  the reverse: un-sort expert outputs into staging order, blocks back, then
//             unpermute and reduce the returned rows with the top-k weights.
// Results equal the fused engine's bit for bit (same rows, same fixed-order sums). These lists
// drive NcclCommunicator's ncclSend/ncclRecv path, so they live with the GPU engine, in
// libfusco (host code only); the one-GPU unfused baseline (src/baseline/unfused_device.cpp)
// runs them too.

#include <cstdint>
#include <vector>

#include "core/direct_steps.hpp"
#include "fusco/status.hpp"
#include "plan/plan_data.hpp"

namespace fusco::gpu {

/// One row copy: source row `from` -> destination row `to` (kernels::GatherRow's layout).
struct RowMove {
  int32_t from;
  int32_t pad;
  int64_t to;
};

struct UnfusedDeviceLists {
  std::vector<RowMove> permute;        ///< x token -> send row; send row i is list entry i.
  std::vector<int64_t> send_offsets;   ///< [W + 1]: send rows for rank d.
  std::vector<int64_t> stage_offsets;  ///< [W + 1]: staging rows from rank s.
  std::vector<RowMove> resort;         ///< staging row -> receive row (the inverse: un-sort).
  /// The plan's combine terms reading row i of the returned buffer (table entry 0) instead of
  /// the owner's expert output.
  std::vector<core::DirectTerm> return_terms;
};

/// One rank's send side from its own one-node plan: permute, send_offsets and return_terms.
Result<UnfusedDeviceLists> send_side_lists(const detail::PlanData& plan, int world);

/// One rank's receive side from what its peers send it: counts[s] rows from rank s, whose
/// receive rows are `rows` (the blocks of ranks 0, 1, ... in their send order).
Status set_receive_side(UnfusedDeviceLists& lists, const std::vector<int64_t>& counts,
                        const std::vector<int64_t>& rows, int64_t num_recv_rows);

/// The inverse moves (to -> from) of a re-sort: combine's un-sort.
std::vector<RowMove> inverse_moves(const std::vector<RowMove>& moves);

/// Every rank's lists from every rank's one-node plan (no staged rows). Fails when a row
/// index exceeds the kernel's int32 source rows.
Result<std::vector<UnfusedDeviceLists>> unfused_device_lists(
    const std::vector<const detail::PlanData*>& plans);

}  // namespace fusco::gpu
