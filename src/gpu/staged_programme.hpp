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
// more table entry (index world). A rank's transfers are point-to-point blocks
// (dispatch_blocks, return_blocks) that pair up like messages (match_blocks).

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

/// Rows [begin, begin + rows) of a rank's buffer that go to, or come from, `peer`.
struct StagedBlock {
  int32_t peer = 0;
  int64_t begin = 0;
  int64_t rows = 0;
};

/// What one rank sends and receives in one step, as point-to-point messages (ncclSend/ncclRecv
/// between processes): `sends` from one buffer, `recvs` into another.
struct StagedBlocks {
  std::vector<StagedBlock> sends;
  std::vector<StagedBlock> recvs;
};

/// Dispatch (rows, companion rows and the weight rows of combine): send staging blocks to each
/// Out stream's target, arrival blocks from each In stream's source. Empty streams are left out.
StagedBlocks dispatch_blocks(const StagedStreams& streams);
/// Combine: return staging blocks to each In stream's source, return buffer blocks from each
/// Out stream's target.
StagedBlocks return_blocks(const StagedStreams& streams);

/// A block moved from one rank's buffer into another's: a matched send and receive.
struct StagedCopy {
  int32_t from = 0;
  int32_t to = 0;
  int64_t from_begin = 0;
  int64_t to_begin = 0;
  int64_t rows = 0;
};

/// Every rank's sends (ranks[r]: rank r's blocks) matched with their receivers' receives as
/// point-to-point messages match: the i-th send from s to t with the i-th receive at t from s.
/// What the one-GPU engine copies. kInternal where two ends disagree (a size, or a message
/// without its other end), naming both ranks.
Result<std::vector<StagedCopy>> match_blocks(const std::vector<StagedBlocks>& ranks);

}  // namespace fusco::detail
