#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "fusco/options.hpp"
#include "fusco/topology.hpp"

namespace fusco {

namespace detail {
struct PlanData;
}  // namespace detail

/// What a plan moves, seen from one rank. Counts are rows; a row is one token's hidden vector,
/// so bytes = rows * hidden * element size (bytes_for()).
struct PlanStats {
  int64_t num_tokens = 0;    ///< Tokens on this rank (T).
  int64_t logical_rows = 0;  ///< Valid (token, slot) pairs: rows this rank's tokens become.
  /// Logical rows per destination rank (index = rank).
  std::vector<int64_t> rows_per_destination;
  /// Rows that leave this rank toward each rank (direct stores for ranks of its node, staged
  /// entries for relays and remote ranks).
  std::vector<int64_t> wire_rows_per_destination;
  int64_t intra_node_rows = 0;  ///< Rows stored directly into ranks of this rank's node.
  int64_t inter_node_rows = 0;  ///< Rows this rank sends across nodes (after dedup).
  /// Rows that would cross nodes without dedup (every remote (token, slot) pair).
  int64_t inter_node_rows_without_dedup = 0;
  /// Rows this rank forwards, as a relay, to other ranks of its node.
  int64_t relay_forwarded_rows = 0;
  int64_t received_rows = 0;  ///< Rows that land in this rank's receive buffer.
  /// How rows reach the other ranks of this node: true, stored straight into their receive
  /// buffers (threads; processes of one machine sharing memory); false, through staging
  /// windows (processes that cannot map each other's memory, FUSCO_SHM_DIRECT=0, UCX).
  bool direct_peers = false;
  /// With replicated experts (ExpertMap::with_replicas): the rows each rank of the group
  /// (index = rank) would receive if every expert's rows went to its primary copy, and the
  /// rows each receives with the planner's replica choice. Empty for maps without replicas.
  std::vector<int64_t> received_rows_per_rank_unbalanced;
  std::vector<int64_t> received_rows_per_rank;

  /// inter_node_rows_without_dedup / inter_node_rows (1 when nothing crosses nodes).
  double dedup_ratio() const;
  /// `rows` * `row_bytes`.
  static int64_t bytes_for(int64_t rows, int64_t row_bytes) { return rows * row_bytes; }
  /// A multi-line human-readable summary, with bytes for rows of `row_bytes`.
  std::string to_string(int64_t row_bytes) const;
};

/// The immutable result of Communicator::plan: where every (token, slot) row goes, how it
/// travels and how combine brings it back. Cheap to copy (shared); reuse it for combine and
/// backward. A plan belongs to the communicator (rank and group) that made it.
class Plan {
 public:
  /// An empty plan: its accessors return rank -1, zeros and empty lists (options() and
  /// topology() their defaults), and a dispatch or combine with it is an error.
  Plan() = default;

  /// True for a plan made by Communicator::plan.
  bool valid() const { return data_ != nullptr; }
  /// Rank that made the plan.
  int rank() const;
  /// Topology of the group that made the plan.
  const Topology& topology() const;
  /// Tokens on this rank (T).
  int64_t num_tokens() const;
  /// Slots per token (k).
  int topk() const;
  /// Logical experts (E).
  int64_t num_experts() const;
  /// Rows delivered per local expert on this rank, in local slot order (real rows: without
  /// padding, without rows dropped by a capacity).
  const std::vector<int64_t>& tokens_per_expert() const;
  /// Rows of each local expert's block in the receive buffer: tokens_per_expert() rounded up
  /// to the layout's alignment, or the capacity; equal to tokens_per_expert() otherwise.
  /// Expert-major layouts: expert e's block starts at the sum of the blocks before it.
  const std::vector<int64_t>& padded_tokens_per_expert() const;
  /// Rows each local expert did not receive because its capacity was full (capacity layouts
  /// with Overflow::kDrop; zeros otherwise).
  const std::vector<int64_t>& dropped_per_expert() const;
  /// Rank-major layouts: the local expert slot of every received row (num_recv_rows()
  /// entries); empty for the other layouts, where the blocks say it.
  const std::vector<int32_t>& recv_local_experts() const;
  /// The logical expert id of each local slot on this rank (ascending; with replicas, the
  /// experts this rank holds a copy of).
  const std::vector<int64_t>& local_experts() const;
  /// The rank each (token, slot) row of this rank goes to, row-major [T, k], -1 for unused
  /// slots and for rows a capacity dropped: the owner of the slot's expert, or with replicas
  /// the copy the planner chose.
  const std::vector<int32_t>& slot_ranks() const;
  /// Rows of this rank's receive buffer (delivered rows plus padding).
  int64_t num_recv_rows() const;
  /// Traffic statistics.
  const PlanStats& stats() const;
  /// The options the plan was made with.
  const PlanOptions& options() const;
  /// Rounds this rank's combine needs for expert-output rows of `row_bytes` bytes under
  /// options().combine_buffer_bytes (1 without a bound); a combine call runs the most any
  /// rank of the group needs.
  int64_t combine_rounds(int64_t row_bytes) const;

  /// Internal: the plan's data (for the engine); only for a valid() plan.
  const detail::PlanData& data() const { return *data_; }

 private:
  friend class Communicator;  // Communicator::Impl makes plans
  explicit Plan(std::shared_ptr<const detail::PlanData> data) : data_(std::move(data)) {}
  std::shared_ptr<const detail::PlanData> data_;
};

}  // namespace fusco
