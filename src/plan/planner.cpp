// The collective planning driver: local checks, a configuration check across ranks (so a
// mismatch is an error on every rank, never a hang or garbage), then the count and metadata
// exchanges around the pure steps.

#include "plan/planner.hpp"

#include <string>

#include "core/layout.hpp"

namespace fusco::plan {

namespace {

// What every rank must agree on; exchanged before any data-dependent step.
struct PlanConfig {
  int32_t ok;  // 0 when this rank's arguments were rejected
  int32_t topk;
  int64_t num_experts;
  uint64_t map_fingerprint;
  int32_t dedup;
  int32_t relay;
  int64_t chunk_bytes;
  int64_t timeout_ms;
  int32_t world_size;
  int32_t ranks_per_node;
  uint64_t sequence;
};

Status compare_configs(const std::vector<PlanConfig>& configs, int me) {
  for (size_t r = 0; r < configs.size(); ++r) {
    if (configs[r].ok == 0 && static_cast<int>(r) != me) {
      return Status(StatusCode::kInvalidArgument,
                    "rank " + std::to_string(r) +
                        " rejected its arguments to plan (see its error); no plan was made");
    }
  }
  const PlanConfig& first = configs[0];
  for (size_t r = 1; r < configs.size(); ++r) {
    const PlanConfig& other = configs[r];
    auto differs = [&](const char* field, auto mine, auto theirs) {
      return Status(StatusCode::kMismatch,
                    std::string(field) + " differs across ranks: rank 0 has " +
                        std::to_string(mine) + ", rank " + std::to_string(r) + " has " +
                        std::to_string(theirs));
    };
    if (other.sequence != first.sequence) {
      return differs("the plan call count (ranks called plan a different number of times)",
                     first.sequence, other.sequence);
    }
    if (other.topk != first.topk)
      return differs("topk (topk_idx.shape[1])", first.topk, other.topk);
    if (other.num_experts != first.num_experts) {
      return differs("num_experts", first.num_experts, other.num_experts);
    }
    if (other.map_fingerprint != first.map_fingerprint) {
      return differs("expert_map fingerprint", first.map_fingerprint, other.map_fingerprint);
    }
    if (other.dedup != first.dedup) return differs("options.dedup", first.dedup, other.dedup);
    if (other.relay != first.relay) return differs("options.relay", first.relay, other.relay);
    if (other.chunk_bytes != first.chunk_bytes) {
      return differs("options.chunk_bytes", first.chunk_bytes, other.chunk_bytes);
    }
    if (other.timeout_ms != first.timeout_ms) {
      return differs("options.timeout_ms", first.timeout_ms, other.timeout_ms);
    }
    if (other.world_size != first.world_size || other.ranks_per_node != first.ranks_per_node) {
      return differs("topology.ranks_per_node", first.ranks_per_node, other.ranks_per_node);
    }
  }
  return Status();
}

}  // namespace

Result<std::shared_ptr<const detail::PlanData>> make_plan(
    transport::Transport& transport, const Topology& topology, uint64_t sequence,
    const TensorView& topk_idx, int64_t num_experts, const ExpertMap& expert_map,
    const PlanOptions& options, const Status& prior) {
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

  PlanConfig config{};
  config.ok = local.ok() ? 1 : 0;
  config.topk = local.ok() ? layout.value().topk : 0;
  config.num_experts = num_experts;
  config.map_fingerprint = expert_map.fingerprint(num_experts, world);
  config.dedup = static_cast<int32_t>(options.dedup);
  config.relay = static_cast<int32_t>(options.relay);
  config.chunk_bytes = options.chunk_bytes;
  config.timeout_ms = options.timeout_ms;
  config.world_size = world;
  config.ranks_per_node = topology.node_width();
  config.sequence = sequence;
  std::vector<PlanConfig> configs(static_cast<size_t>(world));
  FUSCO_RETURN_IF_ERROR(transport.allgather(&config, sizeof(config),
                                            reinterpret_cast<std::byte*>(configs.data()), deadline,
                                            "plan (configuration check)"));
  FUSCO_RETURN_IF_ERROR(local);
  FUSCO_RETURN_IF_ERROR(compare_configs(configs, me));

  auto plan = std::make_shared<detail::PlanData>();
  plan->group_id = transport.group_id();
  plan->sequence = sequence;
  plan->rank = me;
  plan->topology = topology;
  plan->options = options;
  plan->num_tokens = layout.value().num_tokens;
  plan->topk = layout.value().topk;
  plan->num_experts = num_experts;
  plan->direct_peers = transport.direct_access();
  plan->partial_sums = options.dedup == Dedup::kNode && plan->direct_peers;

  std::vector<Bytes> counts_in;
  FUSCO_RETURN_IF_ERROR(transport::alltoallv(transport,
                                             encode_expert_counts(layout.value(), map.value()),
                                             &counts_in, deadline, "plan (count exchange)"));
  Result<ReceiverOffsets> offsets = compute_receiver_offsets(counts_in, map.value().num_local(me));
  FUSCO_RETURN_IF_ERROR(offsets.status());
  plan->tokens_per_expert = std::move(offsets.value().tokens_per_expert);
  plan->num_recv_rows = offsets.value().num_recv_rows;

  std::vector<Bytes> starts_in;
  FUSCO_RETURN_IF_ERROR(transport::alltoallv(transport, offsets.value().starts, &starts_in,
                                             deadline, "plan (offset exchange)"));
  Result<std::vector<Bytes>> metadata =
      build_sender_side(*plan, layout.value(), map.value(), topk_idx, starts_in);
  FUSCO_RETURN_IF_ERROR(metadata.status());

  // Decoded in place, straight from each source's message.
  FUSCO_RETURN_IF_ERROR(transport.alltoallv_consume(
      metadata.value(),
      [&plan](int source, const Bytes& bytes) { return decode_staged_in(*plan, source, bytes); },
      deadline, "plan (staged metadata exchange)"));

  plan->stats.received_rows = plan->num_recv_rows;
  plan->stats.relay_forwarded_rows = 0;
  for (const detail::StagedIn& in : plan->staged_in) {
    for (const detail::FanoutRow& row : in.fanout) {
      plan->stats.relay_forwarded_rows += row.rank != me ? 1 : 0;
    }
  }
  return std::shared_ptr<const detail::PlanData>(std::move(plan));
}

}  // namespace fusco::plan
