#pragma once

// The staged (inter-node) part of a group's plans as the GPU engine runs it, built on the
// host from every rank's plan: each hop expressed with the direct kernels' own lists, so the
// one-GPU engine runs it with the very kernels of the direct path and only the transfer
// between ranks (a device copy here, a GIN put between nodes) is the transport's.
//
// Dispatch: a source gathers each staged stream's rows (x[tokens[i]] -> row i of its send
// staging, as stores into a one-entry table), the transfer lands them in the target's arrival
// buffer, and the target fans each arrived entry out to its destination rows (stores whose
// "token" is the entry). Combine: the target forms each stream's return rows — one partial
// sum per entry over its fanout rows (node dedup) or each fanout row as it is (unit weight) —
// as a combine over its node's expert outputs whose weights come from the source's rows of
// the entries' tokens; the transfer lands them in the source's return buffer, which the
// source's own combine reads as one more table entry (index world).

#include <cstdint>
#include <vector>

#include "core/direct_steps.hpp"
#include "fusco/status.hpp"
#include "plan/plan_data.hpp"

namespace fusco::detail {

/// One staged stream from `source` to `target`, in every list its hops need.
struct StagedHop {
  int32_t source = 0;
  int32_t target = 0;
  int64_t entries = 0;
  int64_t send_begin = 0;    ///< First row in the source's send staging.
  int64_t arrive_begin = 0;  ///< First row in the target's arrival buffer.
  /// Dispatch, at the source: x[token] -> send staging row send_begin + i (table entry 0).
  std::vector<core::DirectStore> gather;
  /// Dispatch, at the target: arrival row `token` (an entry of this stream) -> (rank, row).
  std::vector<core::DirectStore> fanout;
  /// Combine, at the target: return row i of this stream sums terms
  /// [group_term_begin[i], group_term_begin[i + 1]) (one group per row), weights from the
  /// source's topk_weights row weight_rows[i] (the entry's token).
  std::vector<int64_t> group_term_begin;
  std::vector<core::DirectTerm> terms;
  std::vector<int32_t> weight_rows;
  int64_t return_rows = 0;
  int64_t return_begin = 0;        ///< First row in the source's return buffer.
  int64_t relay_return_begin = 0;  ///< First row in the target's return staging.
};

/// Every staged stream of a group, and the rows each rank's staging buffers need.
struct StagedProgramme {
  std::vector<StagedHop> hops;             ///< In (source, stream) order.
  std::vector<int64_t> send_rows;          ///< Per rank: its send staging.
  std::vector<int64_t> arrive_rows;        ///< Per rank: its arrival buffer.
  std::vector<int64_t> relay_return_rows;  ///< Per rank: its return staging (as a target).
  std::vector<int64_t> return_rows;        ///< Per rank: its return buffer (as a source).
  /// Per rank: its combine terms with kReturnBuffer translated to table index `world`.
  std::vector<std::vector<core::DirectTerm>> terms;
};

/// The staged programme of `plans` (rank r's plan at index r, ranks reaching each other's
/// memory). kUnsupported for relays between processes (forwarded rows) and for a world that
/// leaves no table index for the return buffer.
Result<StagedProgramme> staged_programme(const std::vector<const PlanData*>& plans);

}  // namespace fusco::detail
