#pragma once

// Planning a whole group in one process: every rank's plan made one after another with the
// same pure steps the collective planner runs (the exchanges become plain loops), keeping only
// the traffic each plan causes. This is how fusco_plan predicts plans for 64..1024 ranks on
// one machine, and how tests compare the planner's link counts with a brute-force count.

#include <cstdint>
#include <functional>
#include <vector>

#include "fusco/expert_map.hpp"
#include "fusco/options.hpp"
#include "fusco/status.hpp"
#include "fusco/topology.hpp"

namespace fusco::plan {

/// Rows dispatch moves between ranks when every rank runs its plan. Combine moves the same
/// rows back (with node dedup, relays return one partial sum per row they received).
struct GroupTraffic {
  int world_size = 0;
  /// rows[s * W + d]: rows rank s writes into rank d in one hop. Ranks of one node: direct
  /// stores and relay forwards (NVLink); of different nodes: staged entries (network);
  /// s == d: rows a rank keeps (local copies).
  std::vector<int64_t> rows;
  std::vector<int64_t> received_rows;  ///< Per rank: rows in its receive buffer.
  int64_t logical_rows = 0;            ///< Valid (token, slot) pairs of all ranks.
  int64_t inter_node_rows = 0;         ///< Rows crossing nodes (after dedup).
  int64_t inter_node_rows_without_dedup = 0;
  int64_t relay_forwarded_rows = 0;  ///< Rows relays forward inside their node.

  int64_t at(int source, int destination) const {
    return rows[static_cast<size_t>(source) * static_cast<size_t>(world_size) +
                static_cast<size_t>(destination)];
  }
  /// inter_node_rows_without_dedup / inter_node_rows (1 when nothing crosses nodes).
  double dedup_ratio() const;
};

/// Rank r's routing, [T_r, k] row-major expert ids (-1 = unused); called once or more per
/// rank, it must return the same ids every time.
using RoutingOf = std::function<Result<std::vector<int64_t>>(int rank)>;

/// Plans every rank of `topology` (ranks of a node reach each other directly, as GPUs over
/// NVLink) and sums the traffic. Memory: O(W^2 + W * E) plus one rank's plan at a time.
Result<GroupTraffic> plan_group(const Topology& topology, int topk, int64_t num_experts,
                                const ExpertMap& expert_map, const PlanOptions& options,
                                const RoutingOf& routing_of);

}  // namespace fusco::plan
