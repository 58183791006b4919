#pragma once

// The planner: turns one rank's routing into a Plan. make_plan is the collective driver;
// the steps below it are pure functions of their inputs (no communication), so tests and
// benchmarks can run one rank's part alone.

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/layout.hpp"
#include "fusco/expert_map.hpp"
#include "fusco/options.hpp"
#include "fusco/tensor.hpp"
#include "fusco/topology.hpp"
#include "plan/plan_data.hpp"
#include "plan/plan_memory.hpp"
#include "transport/transport.hpp"

namespace fusco::plan {

using transport::Bytes;

/// Collective: plans this rank's tokens. `plans_agreed` counts the group's planning calls
/// that passed the configuration check (all ranks must be at the same count); it grows by one
/// when this call passes it. A failed `prior` (e.g. a bad environment variable) is reported
/// like any other argument error: on every rank, after the configuration check.
/// `node_peers`: plan as the GPU engines move rows — every rank of a node stores into the
/// others' memory (LSA pointers) whatever the host transport can do; otherwise as the
/// transport can (its direct_access()). The plan is built in `memory` (a returned plan's
/// arrays, the scratch of earlier calls) and goes back there when its last holder drops it.
Result<std::shared_ptr<const detail::PlanData>> make_plan(
    transport::Transport& transport, const Topology& topology, uint64_t* plans_agreed,
    const TensorView& topk_idx, int64_t num_experts, const ExpertMap& expert_map,
    const PlanOptions& options, const Status& prior, PlanMemory& memory, bool node_peers = false);

/// A rank's plan before the exchanges: identity, options, sizes and local experts of `map`
/// (the logical map). Node dedup relays when peers store into each other (`direct_peers`) or
/// when relays between processes are on (`process_relays`). start_plan fills a new or
/// recycled PlanData; start_plan_data returns a new one.
void start_plan(detail::PlanData& plan, int rank, const Topology& topology,
                const PlanOptions& options, const core::Layout& layout,
                const core::ResolvedExpertMap& map, bool direct_peers, bool process_relays);
detail::PlanData start_plan_data(int rank, const Topology& topology, const PlanOptions& options,
                                 const core::Layout& layout, const core::ResolvedExpertMap& map,
                                 bool direct_peers, bool process_relays);

/// Step 1 (sender): for each destination rank d, the row count of every local expert of d.
std::vector<Bytes> encode_expert_counts(const core::Layout& layout,
                                        const core::ResolvedExpertMap& map);

/// Step 2 (receiver): rows per local expert and, for every source, the first receive row of
/// each local expert's block from it, under `layout` (expert-major, then source rank; or
/// rank-major: the first row of the source's block). Each source's message ends with the
/// first overflowing local expert (-1: none) and its rows, so every rank learns of overflow.
struct ReceiverOffsets {
  std::vector<int64_t> tokens_per_expert;            ///< Rows delivered per local expert.
  std::vector<int64_t> padded_tokens_per_expert;     ///< Rows of each expert's block.
  std::vector<int64_t> dropped_per_expert;           ///< Rows beyond the capacity.
  std::vector<std::pair<int64_t, int64_t>> padding;  ///< Row ranges dispatch zeroes.
  int64_t num_recv_rows = 0;
  int64_t first_overflow = -1;  ///< First local expert with dropped rows, or -1.
  int64_t first_overflow_rows = 0;
  std::vector<Bytes> starts;  ///< starts[s]: int64 per local expert, then the overflow pair.
};
Result<ReceiverOffsets> compute_receiver_offsets(const std::vector<Bytes>& counts_from_sources,
                                                 int64_t num_local_experts,
                                                 const RecvLayout& layout = RecvLayout());

/// Step 3 (sender): given the starts from every destination, fills `plan`'s direct rows,
/// staged lists, combine program and stats; returns the staged metadata for every target.
/// Rows past a capacity-bounded expert's block are dropped (no row, no combine term, slot
/// rank -1). With `row_experts` (rank-major layouts), also gives, per destination, the local
/// expert of each row sent to it, in row order. The metadata goes to scratch.metadata (the
/// encoding buffers of earlier plans are reused); the second form returns a copy.
Status build_sender_side(detail::PlanData& plan, const core::Layout& layout,
                         const core::ResolvedExpertMap& map, const TensorView& topk_idx,
                         const std::vector<Bytes>& starts_from_destinations, PlanScratch& scratch,
                         std::vector<std::vector<int32_t>>* row_experts = nullptr);
Result<std::vector<Bytes>> build_sender_side(
    detail::PlanData& plan, const core::Layout& layout, const core::ResolvedExpertMap& map,
    const TensorView& topk_idx, const std::vector<Bytes>& starts_from_destinations,
    std::vector<std::vector<int32_t>>* row_experts = nullptr);

/// Stores a receiver's offsets (counts, padding, drops, rows) in its plan.
void set_receiver_side(detail::PlanData& plan, const ReceiverOffsets& offsets);

/// Rows that `rank`, as a relay, forwards to other ranks of its node.
int64_t relay_forwarded_rows(const std::vector<detail::StagedIn>& staged_in, int rank);

/// Step 4 (target): decodes the staged metadata `source` sent (empty: none) and appends it to
/// `plan.staged_in`. Called for sources in rank order. With `scratch`, the list is a spare
/// one of a recycled plan (its arrays keep their capacity).
Status decode_staged_in(detail::PlanData& plan, int source, const Bytes& metadata,
                        PlanScratch* scratch = nullptr);

}  // namespace fusco::plan
