// NcclCommunicator::plan_on_device: planning on the GPU across processes. Each rank lays out
// its routing into its row of the count matrix in its count window, stores that row into every
// peer's matrix through LSA pointers, passes an LSA barrier and runs the planning kernels over
// the complete matrix (gpu/device_planning.hpp; the same steps as DeviceGroup's).

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/layout.hpp"
#include "device_plan.hpp"
#include "gpu/device_planning.hpp"
#include "gpu/nccl_communicator_impl.hpp"

namespace fusco::gpu {

namespace {

// What every rank must agree on before the collective part: the shapes and the map.
std::vector<transport::AgreedField> planning_fields(const TensorView& ids, int64_t num_experts,
                                                    const ExpertMap& map, int world,
                                                    const PlanOptions& options,
                                                    int64_t max_recv_rows) {
  return {{"num_experts", num_experts, nullptr},
          {"topk (topk_idx.shape[1])", ids.ndim == 2 ? ids.shape[1] : 0, nullptr},
          {"options.layout.kind", static_cast<int64_t>(options.layout.kind),
           [](int64_t v) {
             return std::string(recv_layout_kind_name(static_cast<RecvLayout::Kind>(v)));
           }},
          {"options.layout.alignment", options.layout.alignment, nullptr},
          {"options.layout.capacity", options.layout.capacity, nullptr},
          {"max_recv_rows", max_recv_rows, nullptr},
          {"expert_map fingerprint", static_cast<int64_t>(map.fingerprint(num_experts, world)),
           transport::show_hex}};
}

}  // namespace

Result<DevicePlan> NcclCommunicator::plan_on_device(const TensorView& topk_idx, int64_t num_experts,
                                                    const ExpertMap& expert_map,
                                                    const PlanOptions& options,
                                                    int64_t max_recv_rows) {
  Impl& im = *impl_;
  Result<core::ResolvedExpertMap> resolved =
      core::resolve_expert_map(expert_map, num_experts, im.world);
  Status local = im.health();
  if (local.ok()) local = resolved.status();
  if (local.ok()) local = check_device_planning(options, resolved.value(), max_recv_rows);
  if (local.ok()) local = check_device_ids(topk_idx, "topk_idx");
  if (local.ok() && im.host.topology().num_nodes() > 1) {
    local = Status(StatusCode::kUnsupported,
                   "plan_on_device: the host topology groups the ranks into " +
                       std::to_string(im.host.topology().num_nodes()) +
                       " nodes; planning on the device is for the ranks of one node (staged rows "
                       "between nodes are planned on the host); plan() has it");
  }
  if (local.ok() && !im.device_api) {
    local = Status(StatusCode::kUnsupported,
                   "plan_on_device needs NCCL's device API (this communicator moves rows by "
                   "ncclSend/ncclRecv); plan() has it");
  }
  // The shapes and the map must agree; the token counts (which may differ) travel along.
  transport::Proposal proposal;
  proposal.kind = transport::CallKind::kPlan;
  proposal.local = local;
  if (local.ok()) {  // (a rank that failed sends none: shapes are compared only if none did)
    proposal.fields =
        planning_fields(topk_idx, num_experts, expert_map, im.world, options, max_recv_rows);
  }
  const int64_t my_tokens = local.ok() ? topk_idx.shape[0] : 0;
  proposal.payload = &my_tokens;
  proposal.payload_bytes = sizeof(my_tokens);
  std::vector<int64_t> tokens(static_cast<size_t>(im.world));
  FUSCO_RETURN_IF_ERROR(transport::agree(im.allgather, im.world, proposal,
                                         reinterpret_cast<std::byte*>(tokens.data()),
                                         "plan_on_device"));
  const core::ResolvedExpertMap& map = resolved.value();
  const int64_t recv_rows = expert_major_rows(
      max_recv_rows, tokens, static_cast<int>(topk_idx.shape[1]), map, options.layout);
  const int64_t row = map.num_physical() + 1;
  const auto matrix_bytes = static_cast<size_t>(im.world * row) * sizeof(int64_t);
  FUSCO_RETURN_IF_ERROR(im.ensure_counts_window(2 * matrix_bytes));

  Result<std::shared_ptr<GroupPlanning>> group = upload_group(map, false, im.ops());
  Result<std::shared_ptr<DevicePlan::Impl>> plan = Status(StatusCode::kAborted, "");
  if (group.ok()) {
    const DevicePlanning planning{impl_.get(), num_experts, &map,
                                  &options,    recv_rows,   group.value()};
    plan = allocate_device_plan(planning, topk_idx, im.rank);
  }
  FUSCO_RETURN_IF_ERROR(agree(im.allgather, group.ok() ? plan.status() : group.status(),
                              "plan_on_device allocation"));
  const auto offset = static_cast<int64_t>((im.device_plans++ % 2) * matrix_bytes);
  auto* begins = reinterpret_cast<int64_t*>(static_cast<char*>(im.counts_window.base) + offset);
  const core::GroupCounts counts =
      counts_of(begins, *group.value(), map, options.layout, recv_rows);
  DevicePlan::Impl& made = *plan.value();
  for (int r = 0; r < im.world; ++r) {  // what every rank's window must hold
    made.group_max_recv_rows =
        std::max(made.group_max_recv_rows, device_recv_rows(options.layout, map, r, recv_rows));
  }
  int64_t* own_row = begins + im.rank * row;
  FUSCO_RETURN_IF_ERROR(launch_rank_layout(made, topk_idx, counts, own_row, im.stream));
  FUSCO_RETURN_IF_ERROR(
      im.ops().publish_row(own_row, row, im.counts_peers, im.world,
                           offset + im.rank * row * static_cast<int64_t>(sizeof(int64_t)),
                           im.stream, "plan_on_device: publishing the counts"));
  FUSCO_RETURN_IF_ERROR(im.barrier(options.timeout_ms, "plan_on_device (counts published)"));
  FUSCO_RETURN_IF_ERROR(launch_rank_planning(made, topk_idx, counts, im.stream));
  return DevicePlan(std::move(plan).value());
}

Status NcclCommunicator::check_routing(const DevicePlan& plan) {
  FUSCO_RETURN_IF_ERROR(impl_->check_plan(plan));
  if (!plan.on_device()) return Status();
  Impl& im = *impl_;
  FUSCO_RETURN_IF_ERROR(
      im.watch.wait(im.stream, im.longest_timeout_ms, "routing check (waiting for the planning)"));
  FUSCO_RETURN_IF_ERROR(im.health());  // a barrier of the planning that gave up
  return routing_verdict(plan.impl(), "topk_idx");
}

}  // namespace fusco::gpu
