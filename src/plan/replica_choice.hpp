#pragma once

// Replica choice for redundant experts: which copy of a replicated expert each (token, slot)
// row goes to. Pure functions of group-wide row counts, so every rank computes the same
// choice; the collective that gathers the counts lives in the planner.
//
// The policy, in three phases over blocks (expert i, sender s) of rows:
//   1. a sender that holds a copy sends all its rows of that expert to it;
//   2. otherwise, a sender whose node holds copies spreads its rows over them;
//   3. otherwise the rows spread over all copies.
// Phases run one after another over every block (experts ascending, senders ascending). In
// phases 2 and 3 a block's rows go one at a time to the candidate rank with the fewest rows
// planned so far (ties: lowest rank), counting every rank's rows of unreplicated experts
// from the start; this is water-filling, computed in closed form. Within a block, the
// sender's rows in (token, slot) order fill the copies in the map's list order, each up to
// its quota.

#include <cstdint>
#include <vector>

#include "core/layout.hpp"
#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "fusco/topology.hpp"

namespace fusco::plan {

/// The experts of a map with more than one copy, numbered 0 .. count - 1 in ascending id.
struct ReplicatedExperts {
  std::vector<int64_t> experts;   ///< Logical id of each replicated expert.
  std::vector<int64_t> index_of;  ///< Per logical expert: its index here, or -1.

  explicit ReplicatedExperts(const core::ResolvedExpertMap& map);
  int64_t count() const { return static_cast<int64_t>(experts.size()); }
};

/// One sender's share of the demand, from its layout under the logical map.
struct SenderDemand {
  std::vector<int64_t> single_rows_per_rank;  ///< Rows to each rank of single-copy experts.
  std::vector<int64_t> replicated_rows;       ///< Rows per replicated expert.
};
SenderDemand sender_demand(const core::Layout& layout, const core::ResolvedExpertMap& map,
                           const ReplicatedExperts& replicated);

/// Group-wide row counts the choice is made from.
struct ReplicaDemand {
  /// Per rank: rows it receives of experts with a single copy.
  std::vector<int64_t> base_rows;
  /// rows[s * count + i]: rows sender s has for replicated expert i.
  std::vector<int64_t> rows;
};

/// The outcome for one sender, and the load it leaves on every rank.
struct ReplicaChoice {
  /// For replicated expert i, quota[quota_begin[i] .. quota_begin[i + 1]) holds one count per
  /// copy in the map's list order: the sender's rows that copy takes.
  std::vector<int64_t> quota_begin;
  std::vector<int64_t> quota;
  /// Rows every rank receives when each expert's rows all go to its primary copy.
  std::vector<int64_t> rows_unbalanced;
  /// Rows every rank receives with this choice.
  std::vector<int64_t> rows_balanced;
};

/// Chooses copies for every sender's rows and returns `sender`'s quotas.
ReplicaChoice choose_replicas(const core::ResolvedExpertMap& map,
                              const ReplicatedExperts& replicated, const Topology& topology,
                              const ReplicaDemand& demand, int sender);

/// Translates `sender`'s routing (`ids`, T*k logical ids or -1, already validated) into
/// physical expert ids following `choice` (kInternal if the quotas do not cover them).
template <typename Id>
Result<std::vector<int64_t>> to_physical_ids(const Id* ids, int64_t count,
                                             const core::ResolvedExpertMap& map,
                                             const ReplicatedExperts& replicated,
                                             const ReplicaChoice& choice);

/// A sender's routing with every row sent to one copy: physical expert ids, the map over
/// physical experts and the layout under it. Planning continues with these.
struct PhysicalRouting {
  std::vector<int64_t> ids;  ///< [T, k] physical expert ids, -1 for unused slots.
  int64_t num_tokens = 0;
  int topk = 0;
  core::ResolvedExpertMap map;
  core::Layout layout;

  TensorView view() { return TensorView::host(ids.data(), DType::kInt64, {num_tokens, topk}); }
};

/// Translates `topk_idx` (validated; `layout` is its layout under the logical `map`) following
/// `choice`.
Result<PhysicalRouting> route_to_copies(const TensorView& topk_idx, const core::Layout& layout,
                                        const core::ResolvedExpertMap& map,
                                        const ReplicatedExperts& replicated,
                                        const ReplicaChoice& choice);

}  // namespace fusco::plan
