#pragma once

// The staged (inter-node) part of a plan as the GPU engine runs it: each rank's staged
// streams expressed with the direct kernels' own lists, built from that rank's plan alone, so
// a process of a multi-node group builds its own and the one-GPU engine builds every rank's.
// Only the transfer of a stream's rows between its two ranks is the transport's (grouped
// ncclSend/ncclRecv between processes, a device copy on one GPU).
//
// Dispatch: a source gathers every stream's rows (x[token] -> its send staging, as stores
// into a one-entry table); each stream's block goes to its target's arrival buffer; the target
// fans every arrived row out to its destination rows (stores whose "token" is the arrival
// row). Combine: the source's top-k weight rows of the entries travel the same way (one row
// of k floats per entry, into the target's arrived weights); the target forms each stream's
// return rows — one partial sum per entry over its fanout rows (node dedup) or each fanout row
// as it is (unit weight) — as a combine over its node's expert outputs; each stream's return
// rows go back into the source's return buffer, which the source's own combine reads as one
// more table entry (index world).

#include <cstdint>
#include <vector>

#include "core/direct_steps.hpp"
#include "fusco/status.hpp"
#include "plan/plan_data.hpp"

namespace fusco::detail {

/// Where one rank's staged streams sit in its buffers (sizes and offsets, no lists).
struct StagedStreams {
  /// A stream this rank sends: send staging rows [send_begin, send_begin + entries) go to
  /// `target`'s arrival buffer; in combine `return_rows` rows come back into this rank's
  /// return buffer from row return_begin.
  struct Out {
    int32_t target = 0;
    int64_t send_begin = 0;
    int64_t entries = 0;
    int64_t return_begin = 0;
    int64_t return_rows = 0;
  };
  /// A stream this rank receives: from `source` into arrival rows [arrive_begin, arrive_begin
  /// + entries); in combine its return staging rows [relay_return_begin, + return_rows) go
  /// back to the source.
  struct In {
    int32_t source = 0;
    int64_t arrive_begin = 0;
    int64_t entries = 0;
    int64_t relay_return_begin = 0;
    int64_t return_rows = 0;
  };
  std::vector<Out> out;           ///< In the plan's staged_out order.
  std::vector<In> in;             ///< In the plan's staged_in order.
  int64_t send_rows = 0;          ///< Rows of the send staging (entries of every Out).
  int64_t arrive_rows = 0;        ///< Rows of the arrival buffer (entries of every In).
  int64_t relay_return_rows = 0;  ///< Rows of the return staging (return rows of every In).
  int64_t return_rows = 0;        ///< Rows of the return buffer (return rows of every Out).
};

/// One rank's staged lists.
struct RankStaged {
  StagedStreams streams;
  /// Dispatch, as a source: x[token] -> send staging row (table entry 0), every Out stream.
  std::vector<core::DirectStore> gather;
  /// Dispatch, as a target: arrival row `token` -> (rank, row) on this rank's node.
  std::vector<core::DirectStore> fanout;
  /// Combine, as a target: return staging row i sums relay_terms [group_term_begin[i],
  /// group_term_begin[i + 1]) of the node's expert outputs, weighted by arrived weight row
  /// weight_rows[i] (the arrival row of its entry). relay_return_rows + 1 offsets.
  std::vector<int64_t> group_term_begin;
  std::vector<core::DirectTerm> relay_terms;
  std::vector<int32_t> weight_rows;
  /// Combine, as a source: the plan's terms with kReturnBuffer as table entry `world`.
  std::vector<core::DirectTerm> terms;
};

/// The staged lists of `plan` (its rank's). kUnsupported for relays between processes
/// (forwarded rows) and for a world that leaves no table entry for the return buffer.
Result<RankStaged> rank_staged(const PlanData& plan);

/// One stream seen from both ends: what a transport moves in dispatch (send staging rows of
/// the source -> arrival rows of the target, and the weight rows alike) and back in combine
/// (return staging rows of the target -> return rows of the source).
struct StagedTransfer {
  int32_t source = 0;
  int32_t target = 0;
  int64_t entries = 0;
  int64_t send_begin = 0;
  int64_t arrive_begin = 0;
  int64_t return_rows = 0;
  int64_t relay_return_begin = 0;
  int64_t return_begin = 0;
};

/// Every stream of a group (rank r's streams at index r), each source's Out paired with its
/// target's In, in (source, stream) order. kInternal where the two ends disagree.
Result<std::vector<StagedTransfer>> staged_transfers(const std::vector<StagedStreams>& ranks);

}  // namespace fusco::detail
