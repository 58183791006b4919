#include "model/group_plan.hpp"

#include <string>

#include "core/layout.hpp"
#include "plan/planner.hpp"
#include "plan/replica_choice.hpp"

namespace fusco::plan {

double GroupTraffic::dedup_ratio() const {
  return inter_node_rows == 0 ? 1.0
                              : static_cast<double>(inter_node_rows_without_dedup) /
                                    static_cast<double>(inter_node_rows);
}

namespace {

// One rank's routing as the planner sees it: the ids, their view and layout, and with
// replicas the translation to copies.
struct RankRouting {
  std::vector<int64_t> ids;
  TensorView view;
  core::Layout layout;
};

Result<RankRouting> routing_for(const RoutingOf& routing_of, int rank, int topk,
                                const core::ResolvedExpertMap& map) {
  RankRouting routing;
  Result<std::vector<int64_t>> ids = routing_of(rank);
  FUSCO_RETURN_IF_ERROR(ids.status());
  routing.ids = std::move(ids).value();
  if (routing.ids.size() % static_cast<size_t>(topk) != 0) {
    return Status(StatusCode::kInvalidArgument,
                  "routing of rank " + std::to_string(rank) + " has " +
                      std::to_string(routing.ids.size()) +
                      " ids, not a multiple of k = " + std::to_string(topk));
  }
  const auto tokens = static_cast<int64_t>(routing.ids.size()) / topk;
  routing.view = TensorView::host(routing.ids.data(), DType::kInt64, {tokens, topk});
  Result<core::Layout> layout = core::count_layout(routing.view, map);
  if (!layout.ok()) {
    return Status(layout.status().code(),
                  "routing of rank " + std::to_string(rank) + ": " + layout.status().message());
  }
  routing.layout = std::move(layout).value();
  return routing;
}

}  // namespace

Result<GroupTraffic> plan_group(const Topology& topology, int topk, int64_t num_experts,
                                const ExpertMap& expert_map, const PlanOptions& options,
                                const RoutingOf& routing_of) {
  FUSCO_RETURN_IF_ERROR(topology.validate());
  FUSCO_RETURN_IF_ERROR(options.validate());
  const int world = topology.world_size;
  const auto ws = static_cast<size_t>(world);
  Result<core::ResolvedExpertMap> resolved =
      core::resolve_expert_map(expert_map, num_experts, world);
  FUSCO_RETURN_IF_ERROR(resolved.status());
  const core::ResolvedExpertMap& logical = resolved.value();
  const ReplicatedExperts replicated(logical);

  // The replica exchange: every sender's demand, summed.
  ReplicaDemand demand;
  if (logical.replicated) {
    demand.base_rows.assign(ws, 0);
    for (int s = 0; s < world; ++s) {
      Result<RankRouting> routing = routing_for(routing_of, s, topk, logical);
      FUSCO_RETURN_IF_ERROR(routing.status());
      const SenderDemand mine = sender_demand(routing.value().layout, logical, replicated);
      for (size_t d = 0; d < ws; ++d) {
        demand.base_rows[d] += mine.single_rows_per_rank[d];
      }
      demand.rows.insert(demand.rows.end(), mine.replicated_rows.begin(),
                         mine.replicated_rows.end());
    }
  }
  // Every rank's routing, ready for planning (translated to copies when replicated).
  auto planned_routing = [&](int s, RankRouting& routing, PhysicalRouting& physical) -> Status {
    Result<RankRouting> made = routing_for(routing_of, s, topk, logical);
    FUSCO_RETURN_IF_ERROR(made.status());
    routing = std::move(made).value();
    if (logical.replicated) {
      const ReplicaChoice choice = choose_replicas(logical, replicated, topology, demand, s);
      Result<PhysicalRouting> routed =
          route_to_copies(routing.view, routing.layout, logical, replicated, choice);
      FUSCO_RETURN_IF_ERROR(routed.status());
      physical = std::move(routed).value();
    }
    return Status();
  };

  // The count exchange: counts[s][d], then each destination's starts for every source.
  std::vector<std::vector<Bytes>> counts(ws);  // counts[d][s]
  for (size_t d = 0; d < ws; ++d) counts[d].resize(ws);
  for (int s = 0; s < world; ++s) {
    RankRouting routing;
    PhysicalRouting physical;
    FUSCO_RETURN_IF_ERROR(planned_routing(s, routing, physical));
    std::vector<Bytes> out = logical.replicated
                                 ? encode_expert_counts(physical.layout, physical.map)
                                 : encode_expert_counts(routing.layout, logical);
    for (size_t d = 0; d < ws; ++d) {
      counts[d][static_cast<size_t>(s)] = std::move(out[d]);
    }
  }
  GroupTraffic traffic;
  traffic.world_size = world;
  traffic.rows.assign(ws * ws, 0);
  traffic.received_rows.assign(ws, 0);
  std::vector<std::vector<Bytes>> starts(ws);  // starts[s][d]
  for (size_t s = 0; s < ws; ++s) starts[s].resize(ws);
  const core::ResolvedExpertMap physical_map =
      logical.replicated ? logical.physical_map() : core::ResolvedExpertMap();
  const core::ResolvedExpertMap& planned_map = logical.replicated ? physical_map : logical;
  for (int d = 0; d < world; ++d) {
    Result<ReceiverOffsets> offsets = compute_receiver_offsets(
        counts[static_cast<size_t>(d)], planned_map.num_local(d), options.layout);
    FUSCO_RETURN_IF_ERROR(offsets.status());
    traffic.received_rows[static_cast<size_t>(d)] = offsets.value().num_recv_rows;
    for (size_t s = 0; s < ws; ++s) {
      starts[s][static_cast<size_t>(d)] = std::move(offsets.value().starts[s]);
    }
    counts[static_cast<size_t>(d)].clear();
  }

  // Each sender's plan, its direct rows and staged entries, and the forwards at its targets.
  for (int s = 0; s < world; ++s) {
    RankRouting routing;
    PhysicalRouting physical;
    FUSCO_RETURN_IF_ERROR(planned_routing(s, routing, physical));
    const core::Layout& layout = logical.replicated ? physical.layout : routing.layout;
    detail::PlanData plan = start_plan_data(s, topology, options, layout, logical, true, false);
    Result<std::vector<Bytes>> metadata = build_sender_side(
        plan, layout, planned_map, logical.replicated ? physical.view() : routing.view,
        starts[static_cast<size_t>(s)]);
    FUSCO_RETURN_IF_ERROR(metadata.status());
    for (const detail::DirectRow& row : plan.direct) {
      ++traffic.rows[static_cast<size_t>(s) * ws + static_cast<size_t>(row.rank)];
    }
    for (const detail::StagedOut& out : plan.staged_out) {
      traffic.rows[static_cast<size_t>(s) * ws + static_cast<size_t>(out.target)] +=
          static_cast<int64_t>(out.tokens.size());
      detail::PlanData target;
      target.rank = out.target;
      target.partial_sums = plan.partial_sums;
      target.topology = topology;
      FUSCO_RETURN_IF_ERROR(
          decode_staged_in(target, s, metadata.value()[static_cast<size_t>(out.target)]));
      for (const detail::FanoutRow& row : target.staged_in.front().fanout) {
        if (row.rank != out.target) {
          ++traffic.rows[static_cast<size_t>(out.target) * ws + static_cast<size_t>(row.rank)];
        }
      }
      traffic.relay_forwarded_rows += relay_forwarded_rows(target.staged_in, out.target);
    }
    traffic.logical_rows += plan.stats.logical_rows;
    traffic.inter_node_rows += plan.stats.inter_node_rows;
    traffic.inter_node_rows_without_dedup += plan.stats.inter_node_rows_without_dedup;
  }
  return traffic;
}

}  // namespace fusco::plan
