#pragma once

// What a plan holds: everything dispatch and combine need, computed once by the planner.

#include <cstdint>
#include <utility>
#include <vector>

#include "fusco/options.hpp"
#include "fusco/plan.hpp"
#include "fusco/topology.hpp"

namespace fusco::detail {

/// A row this rank stores directly into a rank of its own node.
struct DirectRow {
  int32_t token;  ///< Source token on this rank.
  int32_t rank;   ///< Destination rank (same node).
  int64_t row;    ///< Row in the destination's receive buffer.

  bool operator==(const DirectRow&) const = default;
};

/// Where a staged entry's row lands, as seen by the entry's target (relay or remote rank).
struct FanoutRow {
  int32_t rank;  ///< Destination rank (on the target's node).
  int32_t slot;  ///< The source's top-k slot j of this row (selects the combine weight).
  int64_t row;   ///< Row in the destination's receive buffer.

  bool operator==(const FanoutRow&) const = default;
};

/// Staged traffic from this rank to one target.
struct StagedOut {
  int32_t target = 0;
  std::vector<int32_t> tokens;  ///< Entry i carries x[tokens[i]].
  int64_t return_rows = 0;      ///< Rows the target sends back in combine.
  int64_t return_begin = 0;     ///< Their first row in this rank's combine return buffer.
  bool partial = false;         ///< The target relays for another node: one partial per entry.
  /// Without partial sums: return rows up to and including entry i (an entry returns one row
  /// per fanout row). Empty with partial sums, where entry i returns row i.
  std::vector<int64_t> return_end;

  /// Return rows of entries [0, entry).
  int64_t return_rows_before(int64_t entry) const {
    return return_end.empty() || entry == 0 ? entry : return_end[static_cast<size_t>(entry) - 1];
  }

  bool operator==(const StagedOut&) const = default;
};

/// Staged traffic from one source to this rank.
struct StagedIn {
  int32_t source = 0;
  std::vector<int32_t> tokens;        ///< The source's token of each entry.
  std::vector<int64_t> fanout_begin;  ///< entries + 1 offsets into `fanout`.
  std::vector<FanoutRow> fanout;      ///< Destination rows of each entry, slot ascending.
  int64_t return_rows = 0;  ///< Rows sent back in combine: entries (partial sums) or fanout rows.
  /// True when this rank relays for a source on another node: combine returns one partial sum
  /// per entry. Otherwise every fanout row comes back unreduced.
  bool partial = false;
  /// Relays between processes: per fanout row, its place in the forward buffer (the row is
  /// passed on to its node peer in a second hop), or -1 for this rank's own rows. Empty when
  /// nothing is forwarded (direct peers store fanout rows themselves).
  std::vector<int64_t> forward;

  int64_t num_entries() const { return static_cast<int64_t>(tokens.size()); }

  bool operator==(const StagedIn&) const = default;
};

/// The second hop of a relay between processes: forward-buffer rows [begin, begin + rows)
/// go to (or, on the receiving side, come from) `peer`, a rank of this node. The receiver
/// knows where each lands: `recv_rows` (empty on the relay's side).
struct ForwardStream {
  int32_t peer = 0;
  int64_t begin = 0;
  int64_t rows = 0;
  std::vector<int64_t> recv_rows;

  bool operator==(const ForwardStream&) const = default;
};

/// One term of a token's combine sum: weight(slot) * value(rank, row).
struct CombineTerm {
  int32_t rank;  ///< Rank whose expert output holds the value, or kReturnBuffer.
  int32_t slot;  ///< Top-k slot of the weight, or kUnitWeight.
  int64_t row;   ///< Row in that rank's expert output, or in the combine return buffer.

  static constexpr int32_t kReturnBuffer = -1;
  static constexpr int32_t kUnitWeight = -1;

  bool operator==(const CombineTerm&) const = default;
};

struct PlanData {
  uint64_t group_id = 0;
  uint64_t sequence = 0;  ///< Plans made so far by the group, at the time of this one.
  int rank = 0;
  Topology topology;
  PlanOptions options;
  int64_t num_tokens = 0;
  int topk = 0;
  int64_t num_experts = 0;

  std::vector<int64_t> tokens_per_expert;
  std::vector<int64_t> padded_tokens_per_expert;     ///< Rows of each local expert's block.
  std::vector<int64_t> dropped_per_expert;           ///< Rows past a capacity, per local expert.
  std::vector<std::pair<int64_t, int64_t>> padding;  ///< Receive rows dispatch zeroes.
  std::vector<int32_t> recv_local_experts;           ///< Rank-major: the local expert of each row.
  int64_t num_recv_rows = 0;
  std::vector<int64_t> local_experts;  ///< Logical expert of each local slot.
  std::vector<int32_t> slot_ranks;     ///< Per (token, slot): destination rank, -1 if unused.

  /// True when the transport reaches the memory of this node's other ranks: rows for them are
  /// stored directly and node dedup uses relays. False: only this rank's own rows are direct,
  /// every other row is staged to its destination rank and returned unreduced.
  bool direct_peers = true;
  std::vector<DirectRow> direct;  ///< Sorted by (rank, row): stores stream per destination.
  std::vector<StagedOut> staged_out;
  std::vector<StagedIn> staged_in;
  /// True under node dedup: relays return one partial sum per entry, rounded to the dtype of
  /// the expert output (streams with another node; see StagedOut/StagedIn::partial); otherwise
  /// targets return every row unreduced.
  bool partial_sums = false;
  /// Relays between processes (node dedup without direct peers): rows this rank relays for
  /// its node peers wait in a forward buffer (forward_rows rows) and go on in a second hop
  /// (forward_out); rows relayed to this rank by its node's relays arrive in forward_in.
  int64_t forward_rows = 0;
  std::vector<ForwardStream> forward_out;
  std::vector<ForwardStream> forward_in;

  /// Combine program. Token t's groups are token_group_begin[t] .. [t + 1]; group g's terms
  /// are group_term_begin[g] .. [g + 1]. out[t] = sum over groups (in order) of the group's
  /// fp32 sum rounded to the output dtype.
  std::vector<int64_t> token_group_begin;
  std::vector<int64_t> group_term_begin;
  std::vector<CombineTerm> terms;
  int64_t return_rows_total = 0;
  /// Return-buffer rows read by tokens [0, t] (T entries): what a combine round over a token
  /// range needs. Empty when options.combine_buffer_bytes is 0 (one round).
  std::vector<int64_t> token_return_end;

  PlanStats stats;
};

/// This rank's combine rounds for rows of `row_bytes` under options.combine_buffer_bytes:
/// token ranges whose returned rows fit the buffer (a round holds at least one token), given
/// by the token each ends before. One round without a bound.
std::vector<int32_t> combine_round_ends(const PlanData& plan, int64_t row_bytes);

}  // namespace fusco::detail
