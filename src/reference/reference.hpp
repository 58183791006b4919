#pragma once

// The test oracle: dispatch and combine written straight from the definitions in DESIGN.md,
// over all ranks at once, single-threaded and naive. It shares no code with the planner or
// the engine (only the scalar fp16/bf16 conversions, which have their own tests).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "fusco/expert_map.hpp"
#include "fusco/options.hpp"
#include "fusco/tensor.hpp"
#include "fusco/topology.hpp"

namespace fusco::reference {

/// Where one received row came from; rank -1 for a padding row (zeros).
struct RowSource {
  int rank;
  int64_t token;
  int slot;
};

/// What every rank receives: rows in receive order and rows per local expert.
struct ReceiveLayout {
  std::vector<std::vector<RowSource>> rows;             ///< rows[d]: rank d's rows.
  std::vector<std::vector<int64_t>> tokens_per_expert;  ///< per rank, per local expert.
  std::vector<std::vector<int64_t>> padded_tokens_per_expert;
  std::vector<std::vector<int64_t>> dropped_per_expert;
  std::vector<std::vector<int32_t>> recv_local_experts;  ///< rank-major only
};

/// Receive layout of all ranks: rows sorted by (local expert, source rank, token, slot), each
/// expert's block padded to the alignment or cut and padded to the capacity; or, rank-major,
/// sorted by (source rank, token, slot). `topk_idx[r]` is rank r's [T_r, k] int32/int64
/// routing. With replicated experts each row goes to the copy the replica-choice policy
/// gives it (computed here one row at a time). Inputs must be valid.
ReceiveLayout receive_layout(const std::vector<TensorView>& topk_idx, int64_t num_experts,
                             const ExpertMap& expert_map, const Topology& topology,
                             const RecvLayout& recv_layout = RecvLayout());

/// Dispatch of every rank's `x[r]` [T_r, H]: rank d's received rows, byte for byte.
std::vector<std::vector<std::byte>> dispatch(const ReceiveLayout& layout,
                                             const std::vector<TensorView>& x);
/// The same for rank `rank` only.
std::vector<std::byte> dispatch_rank(const ReceiveLayout& layout, const std::vector<TensorView>& x,
                                     int rank);

/// Row `row` of rank `rank`'s expert output.
using RowReader = std::function<const std::byte*(int rank, int64_t row)>;

/// Combine for rank `rank` only, reading expert output rows through `y` (so they need not
/// all be in memory at once); `dtype` and `hidden` describe those rows.
std::vector<std::byte> combine_rank(const ReceiveLayout& layout, int rank,
                                    const TensorView& topk_idx, const TensorView& weights,
                                    const RowReader& y, DType dtype, int64_t hidden,
                                    const Topology& topology, Dedup dedup);

/// Combine: out[r][t] as defined, for rank r's weights [T_r, k] and every rank's expert
/// output `y[d]` [R_d, H] (fp32, fp16 or bf16). With node partials (dedup = node) each node's
/// partial (the rows that landed on that node) is rounded to y's dtype and the partials are
/// added in node order.
std::vector<std::vector<std::byte>> combine(const ReceiveLayout& layout,
                                            const std::vector<TensorView>& topk_idx,
                                            const std::vector<TensorView>& weights,
                                            const std::vector<TensorView>& y,
                                            const Topology& topology, Dedup dedup);

}  // namespace fusco::reference
