// The collective planning driver: local checks, a configuration check across ranks (so a
// mismatch is an error on every rank, never a hang or garbage), then the count and metadata
// exchanges around the pure steps.

#include "plan/planner.hpp"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/layout.hpp"
#include "core/wire.hpp"
#include "plan/forwarding.hpp"
#include "plan/replica_choice.hpp"
#include "transport/agreement.hpp"

namespace fusco::plan {

namespace {

// What every rank must agree on before any data-dependent step, named for messages.
std::vector<transport::AgreedField> plan_fields(const PlanOptions& options,
                                                const Topology& topology, uint64_t sequence,
                                                int topk, int64_t num_experts,
                                                uint64_t map_fingerprint) {
  return {
      {"the plan call count (ranks made a different number of plans)",
       static_cast<int64_t>(sequence)},
      {"topk (topk_idx.shape[1])", topk},
      {"num_experts", num_experts},
      {"expert_map fingerprint", static_cast<int64_t>(map_fingerprint), transport::show_hex},
      {"options.dedup", static_cast<int64_t>(options.dedup)},
      {"options.relay", static_cast<int64_t>(options.relay)},
      {"options.process_relays", static_cast<int64_t>(options.process_relays)},
      {"options.chunk_bytes", options.chunk_bytes},
      {"options.timeout_ms", options.timeout_ms},
      {"options.combine_buffer_bytes", options.combine_buffer_bytes},
      {"options.layout.kind", static_cast<int64_t>(options.layout.kind)},
      {"options.layout.alignment", options.layout.alignment},
      {"options.layout.capacity", options.layout.capacity},
      {"options.layout.overflow", static_cast<int64_t>(options.layout.overflow)},
      {"topology.ranks_per_node", topology.node_width()},
  };
}

// Collective: gathers the group's row counts of replicated experts and the rows every rank
// receives of the others, then chooses this rank's replicas (the same choice on every rank).
Result<ReplicaChoice> choose_replicas_collectively(transport::Transport& transport,
                                                   const Topology& topology,
                                                   const core::ResolvedExpertMap& map,
                                                   const ReplicatedExperts& replicated,
                                                   const core::Layout& layout,
                                                   const transport::Deadline& deadline) {
  const int me = transport.rank();
  const int world = transport.world_size();
  const SenderDemand mine_demand = sender_demand(layout, map, replicated);
  std::vector<Bytes> send(static_cast<size_t>(world));
  for (int d = 0; d < world; ++d) {
    core::WireWriter writer;
    writer.put(mine_demand.single_rows_per_rank[static_cast<size_t>(d)]);
    send[static_cast<size_t>(d)] = writer.take();
  }
  // A sender's count is at most its T * k (< 2^41); sums stay far from overflow.
  constexpr int64_t kMaxCount = int64_t{1} << 41;
  auto impossible = [](int source, int64_t value) {
    return Status(StatusCode::kInternal, "replica counts from rank " + std::to_string(source) +
                                             " hold an impossible value " + std::to_string(value));
  };
  int64_t my_base_rows = 0;
  const auto add_base_rows = [&](int source, const Bytes& bytes) {
    core::WireReader reader(bytes);
    int64_t rows = 0;
    FUSCO_RETURN_IF_ERROR(reader.get(&rows));
    if (rows < 0 || rows > kMaxCount) return impossible(source, rows);
    my_base_rows += rows;
    return Status();
  };
  FUSCO_RETURN_IF_ERROR(
      transport.alltoallv_consume(send, add_base_rows, deadline, "plan (replica load exchange)"));

  const auto stride = static_cast<size_t>(replicated.count()) + 1;
  std::vector<int64_t> mine(stride);
  mine[0] = my_base_rows;
  std::copy(mine_demand.replicated_rows.begin(), mine_demand.replicated_rows.end(),
            mine.begin() + 1);
  std::vector<int64_t> all(stride * static_cast<size_t>(world));
  FUSCO_RETURN_IF_ERROR(transport.allgather(mine.data(), stride * sizeof(int64_t),
                                            reinterpret_cast<std::byte*>(all.data()), deadline,
                                            "plan (replica count exchange)"));
  ReplicaDemand demand;
  demand.base_rows.resize(static_cast<size_t>(world));
  demand.rows.reserve((stride - 1) * static_cast<size_t>(world));
  for (int s = 0; s < world; ++s) {
    for (size_t i = 0; i < stride; ++i) {
      const int64_t value = all[static_cast<size_t>(s) * stride + i];
      const int64_t limit = i == 0 ? kMaxCount * world : kMaxCount;
      if (value < 0 || value > limit) return impossible(s, value);
      if (i == 0) {
        demand.base_rows[static_cast<size_t>(s)] = value;
      } else {
        demand.rows.push_back(value);
      }
    }
  }
  return choose_replicas(map, replicated, topology, demand, me);
}

// Under a capacity layout that must not drop rows, any destination's overflow (reported at
// the end of its starts message, which every rank receives) fails the plan on every rank.
Status check_overflow(const RecvLayout& layout, const core::ResolvedExpertMap& map,
                      const std::vector<Bytes>& starts_in) {
  if (layout.kind != RecvLayout::Kind::kCapacity ||
      layout.overflow != RecvLayout::Overflow::kError) {
    return Status();
  }
  for (size_t d = 0; d < starts_in.size(); ++d) {
    const Bytes& bytes = starts_in[d];
    if (bytes.size() < 2 * sizeof(int64_t)) {
      return Status(StatusCode::kInternal,
                    "offsets from rank " + std::to_string(d) + " are truncated");
    }
    int64_t tail[2];
    std::memcpy(tail, bytes.data() + bytes.size() - sizeof(tail), sizeof(tail));
    const int64_t slot = tail[0];
    if (slot < 0) continue;
    const int64_t local = map.num_local(static_cast<int>(d));
    const int64_t expert =
        slot < local ? map.physical_logical[static_cast<size_t>(map.rank_begin[d] + slot)] : -1;
    return Status(StatusCode::kCapacityExceeded,
                  "expert " + std::to_string(expert) + " (local slot " + std::to_string(slot) +
                      " of rank " + std::to_string(d) + ") gets " + std::to_string(tail[1]) +
                      " rows but layout.capacity is " + std::to_string(layout.capacity) +
                      " (overflow = error; use a larger capacity or overflow = drop)");
  }
  return Status();
}

// Rank-major layouts: every destination learns the local expert of each row it receives; the
// rows of source s form one block, in source order, so the lists concatenate in rank order.
Status exchange_row_experts(transport::Transport& transport, detail::PlanData& plan,
                            const std::vector<std::vector<int32_t>>& row_experts,
                            const transport::Deadline& deadline) {
  std::vector<Bytes> send(row_experts.size());
  for (size_t d = 0; d < row_experts.size(); ++d) {
    core::WireWriter writer;
    writer.put_array(row_experts[d].data(), row_experts[d].size());
    send[d] = writer.take();
  }
  plan.recv_local_experts.clear();
  plan.recv_local_experts.reserve(static_cast<size_t>(plan.num_recv_rows));
  const auto num_local = static_cast<int32_t>(plan.tokens_per_expert.size());
  const auto append = [&](int source, const Bytes& bytes) {
    const size_t count = bytes.size() / sizeof(int32_t);
    if (bytes.size() % sizeof(int32_t) != 0 ||
        plan.recv_local_experts.size() + count > static_cast<size_t>(plan.num_recv_rows)) {
      return Status(StatusCode::kInternal,
                    "row experts from rank " + std::to_string(source) + " have the wrong size");
    }
    const size_t at = plan.recv_local_experts.size();
    if (count == 0) return Status();
    plan.recv_local_experts.resize(at + count);
    std::memcpy(plan.recv_local_experts.data() + at, bytes.data(), bytes.size());
    for (size_t i = at; i < at + count; ++i) {
      if (plan.recv_local_experts[i] < 0 || plan.recv_local_experts[i] >= num_local) {
        return Status(StatusCode::kInternal, "row experts from rank " + std::to_string(source) +
                                                 " name slot " +
                                                 std::to_string(plan.recv_local_experts[i]));
      }
    }
    return Status();
  };
  FUSCO_RETURN_IF_ERROR(
      transport.alltoallv_consume(send, append, deadline, "plan (row expert exchange)"));
  if (plan.recv_local_experts.size() != static_cast<size_t>(plan.num_recv_rows)) {
    return Status(StatusCode::kInternal, "row experts do not cover the received rows");
  }
  return Status();
}

}  // namespace

void set_receiver_side(detail::PlanData& plan, const ReceiverOffsets& offsets) {
  plan.tokens_per_expert = offsets.tokens_per_expert;
  plan.padded_tokens_per_expert = offsets.padded_tokens_per_expert;
  plan.dropped_per_expert = offsets.dropped_per_expert;
  plan.padding = offsets.padding;
  plan.num_recv_rows = offsets.num_recv_rows;
}

void start_plan(detail::PlanData& plan, int rank, const Topology& topology,
                const PlanOptions& options, const core::Layout& layout,
                const core::ResolvedExpertMap& map, bool direct_peers, bool process_relays) {
  plan.rank = rank;
  plan.topology = topology;
  plan.options = options;
  plan.num_tokens = layout.num_tokens;
  plan.topk = layout.topk;
  plan.num_experts = map.num_experts;
  plan.direct_peers = direct_peers;
  plan.partial_sums = options.dedup == Dedup::kNode && (direct_peers || process_relays);
  plan.local_experts.assign(
      map.physical_logical.begin() + map.rank_begin[static_cast<size_t>(rank)],
      map.physical_logical.begin() + map.rank_begin[static_cast<size_t>(rank) + 1]);
}

detail::PlanData start_plan_data(int rank, const Topology& topology, const PlanOptions& options,
                                 const core::Layout& layout, const core::ResolvedExpertMap& map,
                                 bool direct_peers, bool process_relays) {
  detail::PlanData plan;
  start_plan(plan, rank, topology, options, layout, map, direct_peers, process_relays);
  return plan;
}

int64_t relay_forwarded_rows(const std::vector<detail::StagedIn>& staged_in, int rank) {
  int64_t rows = 0;
  for (const detail::StagedIn& in : staged_in) {
    for (const detail::FanoutRow& row : in.fanout) {
      rows += row.rank != rank ? 1 : 0;
    }
  }
  return rows;
}

Result<std::shared_ptr<const detail::PlanData>> make_plan(
    transport::Transport& transport, const Topology& topology, uint64_t* plans_agreed,
    const TensorView& topk_idx, int64_t num_experts, const ExpertMap& expert_map,
    const PlanOptions& options, const Status& prior, PlanMemory& memory, bool node_peers) {
  const int me = transport.rank();
  const int world = transport.world_size();
  const transport::Deadline deadline =
      transport::Deadline::after_ms(options.validate().ok() ? options.timeout_ms : 60000);

  // Local checks first; their verdict travels with the configuration so that every rank
  // fails together instead of waiting for a rank that gave up.
  Status local = prior.ok() ? options.validate() : prior;
  Result<core::ResolvedExpertMap> map = Status(StatusCode::kInternal, "not resolved");
  Result<core::Layout> layout = Status(StatusCode::kInternal, "not built");
  if (local.ok()) {
    map = core::resolve_expert_map(expert_map, num_experts, world);
    local = map.status();
  }
  if (local.ok()) {
    layout = core::count_layout(topk_idx, map.value());
    local = layout.status();
  }

  transport::Proposal proposal;
  proposal.kind = transport::CallKind::kPlan;
  proposal.local = local;
  proposal.fields =
      plan_fields(options, topology, *plans_agreed, local.ok() ? layout.value().topk : 0,
                  num_experts, expert_map.fingerprint(num_experts, world));
  FUSCO_RETURN_IF_ERROR(
      transport::agree(transport, proposal, nullptr, deadline, "plan (configuration check)"));
  // Counted only once every rank agreed: a call that failed here on one rank failed on all,
  // so the ranks' counts stay equal (a plan's number identifies it in dispatch and combine).
  const uint64_t sequence = (*plans_agreed)++;

  const bool process_relays =
      options.process_relays == ProcessRelays::kOn ||
      (options.process_relays == ProcessRelays::kAuto && transport.crosses_machines());
  std::unique_ptr<detail::PlanData> plan = memory.take();
  start_plan(*plan, me, topology, options, layout.value(), map.value(),
             node_peers || transport.direct_access(), process_relays);
  plan->group_id = transport.group_id();
  plan->sequence = sequence;
  const core::ResolvedExpertMap& logical = map.value();

  // With replicated experts the routing is translated to physical experts (one copy chosen
  // per row) and planned with the physical map; otherwise the two are the same.
  PhysicalRouting physical;
  if (logical.replicated) {
    const ReplicatedExperts replicated(logical);
    Result<ReplicaChoice> choice = choose_replicas_collectively(
        transport, topology, logical, replicated, layout.value(), deadline);
    FUSCO_RETURN_IF_ERROR(choice.status());
    Result<PhysicalRouting> routed =
        route_to_copies(topk_idx, layout.value(), logical, replicated, choice.value());
    FUSCO_RETURN_IF_ERROR(routed.status());
    physical = std::move(routed).value();
    plan->stats.received_rows_per_rank_unbalanced = std::move(choice.value().rows_unbalanced);
    plan->stats.received_rows_per_rank = std::move(choice.value().rows_balanced);
  }
  const core::ResolvedExpertMap& planned = logical.replicated ? physical.map : logical;
  const core::Layout& planned_layout = logical.replicated ? physical.layout : layout.value();
  const TensorView routing = logical.replicated ? physical.view() : topk_idx;

  std::vector<Bytes> counts_in;
  FUSCO_RETURN_IF_ERROR(transport::alltoallv(transport,
                                             encode_expert_counts(planned_layout, planned),
                                             &counts_in, deadline, "plan (count exchange)"));
  Result<ReceiverOffsets> offsets =
      compute_receiver_offsets(counts_in, planned.num_local(me), options.layout);
  FUSCO_RETURN_IF_ERROR(offsets.status());
  set_receiver_side(*plan, offsets.value());

  std::vector<Bytes> starts_in;
  FUSCO_RETURN_IF_ERROR(transport::alltoallv(transport, offsets.value().starts, &starts_in,
                                             deadline, "plan (offset exchange)"));
  FUSCO_RETURN_IF_ERROR(check_overflow(options.layout, logical, starts_in));
  const bool rank_major = options.layout.kind == RecvLayout::Kind::kRankMajor;
  std::vector<std::vector<int32_t>> row_experts;
  PlanScratch& scratch = memory.scratch();
  FUSCO_RETURN_IF_ERROR(build_sender_side(*plan, planned_layout, planned, routing, starts_in,
                                          scratch, rank_major ? &row_experts : nullptr));
  if (rank_major) {
    FUSCO_RETURN_IF_ERROR(exchange_row_experts(transport, *plan, row_experts, deadline));
  }

  // Decoded in place, straight from each source's message.
  FUSCO_RETURN_IF_ERROR(transport.alltoallv_consume(
      scratch.metadata,
      [&](int source, const Bytes& bytes) {
        return decode_staged_in(*plan, source, bytes, &scratch);
      },
      deadline, "plan (staged metadata exchange)"));

  // Relays between processes pass their node peers' rows on in a second hop.
  if (plan->partial_sums && !plan->direct_peers) {
    FUSCO_RETURN_IF_ERROR(set_up_forwarding(transport, *plan, deadline));
  }

  plan->stats.received_rows = plan->num_recv_rows;
  plan->stats.direct_peers = plan->direct_peers;
  plan->stats.relay_forwarded_rows = relay_forwarded_rows(plan->staged_in, me);
  return memory.publish(std::move(plan));
}

}  // namespace fusco::plan
