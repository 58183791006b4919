// DeviceGroup::plan_on_device: planning of one GPU's logical ranks by kernels (layout, count
// matrix, stores and terms; core/device_plan_steps.hpp), and what plans made that way offer.

#include "gpu/device_planning.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "core/layout.hpp"
#include "device_plan.hpp"
#include "fusco/gpu.hpp"
#include "gpu/device_checks.hpp"
#include "gpu/device_group_impl.hpp"
#include "gpu/device_plan_impl.hpp"
#include "layout.hpp"

namespace fusco::gpu {

bool DevicePlan::on_device() const { return impl_ != nullptr && impl_->made != nullptr; }

int64_t DevicePlan::num_recv_rows() const { return impl_->data().num_recv_rows; }

int64_t DevicePlan::num_local_experts() const {
  return static_cast<int64_t>(impl_->data().local_experts.size());
}

const int64_t* DevicePlan::device_tokens_per_expert() const {
  return on_device() ? impl_->made->tokens_per_expert : nullptr;
}

const int64_t* DevicePlan::device_dropped_per_expert() const {
  return on_device() ? impl_->made->dropped_per_expert : nullptr;
}

const int64_t* DevicePlan::device_padded_tokens_per_expert() const {
  return on_device() ? impl_->made->padded_per_expert : nullptr;
}

Status zero_unfilled_rows(const DevicePlan::Impl& plan, void* rows, int64_t row_bytes,
                          const Launch& on) {
  const RowRanges ranges = plan.made ? RowRanges{plan.made->unfilled, plan.made->local_experts(),
                                                 plan.made->most_unfilled}
                                     : plan.programme.padding;
  return on.ops->zero_ranges(rows, row_bytes, ranges, on.stream, on.what);
}

int64_t expert_major_rows(int64_t max_recv_rows, const std::vector<int64_t>& tokens, int topk,
                          const core::ResolvedExpertMap& map, const RecvLayout& layout) {
  return max_recv_rows > 0 ? max_recv_rows
                           : core::most_recv_rows(tokens, topk, map, layout.alignment);
}

int64_t device_recv_rows(const RecvLayout& layout, const core::ResolvedExpertMap& map, int rank,
                         int64_t expert_major) {
  return layout.kind == RecvLayout::Kind::kCapacity ? map.num_local(rank) * layout.capacity
                                                    : expert_major;
}

Result<std::shared_ptr<DevicePlan::Impl>> allocate_device_plan(const DevicePlanning& planning,
                                                               const TensorView& ids, int rank) {
  const core::ResolvedExpertMap& map = *planning.map;
  const PlanOptions& options = *planning.options;
  auto made = std::make_shared<DeviceMadePlan>();
  detail::PlanData& shape = made->shape;
  shape.rank = rank;
  shape.topology = Topology::single_node(map.world_size);
  shape.options = options;
  shape.num_tokens = ids.shape[0];
  shape.topk = static_cast<int>(ids.shape[1]);
  shape.num_experts = planning.num_experts;
  const auto rr = static_cast<size_t>(rank);
  for (int64_t p = map.rank_begin[rr]; p < map.rank_begin[rr + 1]; ++p) {
    shape.local_experts.push_back(map.physical_logical[static_cast<size_t>(p)]);
  }
  const bool capacity = options.layout.kind == RecvLayout::Kind::kCapacity;
  made->most_unfilled = capacity ? options.layout.capacity : options.layout.alignment;
  made->group = planning.group;
  shape.num_recv_rows = device_recv_rows(options.layout, map, rank, planning.recv_rows);
  const auto pairs = static_cast<size_t>(shape.num_tokens * shape.topk);
  const auto local = static_cast<size_t>(made->local_experts());
  const DeviceOps& ops = *made->group->ops;
  std::vector<void*> parts;
  Result<DeviceBuffer> storage = DeviceBuffer::allocate_parts(
      {pairs * sizeof(int64_t), ops.layout_workspace_bytes(shape.num_tokens, map.num_physical()),
       ops.planning_workspace_bytes(shape.num_tokens),
       static_cast<size_t>(map.num_physical()) * sizeof(int64_t),
       static_cast<size_t>(map.num_physical()) * sizeof(int64_t), local * sizeof(int64_t),
       local * sizeof(int64_t), local * sizeof(int64_t), 2 * local * sizeof(int64_t),
       3 * sizeof(int64_t)},
      parts, "plan_on_device: plan buffers", ops);
  FUSCO_RETURN_IF_ERROR(storage.status());
  made->storage = std::move(storage).value();
  made->positions = static_cast<int64_t*>(parts[0]);
  made->layout_workspace = parts[1];
  made->planning_workspace = parts[2];
  made->first_row = static_cast<int64_t*>(parts[3]);
  made->limit = static_cast<int64_t*>(parts[4]);
  made->tokens_per_expert = static_cast<int64_t*>(parts[5]);
  made->dropped_per_expert = static_cast<int64_t*>(parts[6]);
  made->padded_per_expert = static_cast<int64_t*>(parts[7]);
  made->unfilled = static_cast<int64_t*>(parts[8]);
  made->bad = static_cast<int64_t*>(parts[9]);
  const auto stores = static_cast<int64_t>(pairs);
  Result<DeviceProgramme> programme =
      DeviceProgramme::allocate({stores, shape.num_tokens, shape.num_tokens, stores}, ops);
  FUSCO_RETURN_IF_ERROR(programme.status());
  auto plan = std::make_shared<DevicePlan::Impl>();
  plan->owner = planning.owner;
  plan->programme = std::move(programme).value();
  plan->made = std::move(made);
  return plan;
}

Result<std::shared_ptr<GroupPlanning>> upload_group(const core::ResolvedExpertMap& map,
                                                    bool with_matrix, const DeviceOps& ops) {
  auto group = std::make_shared<GroupPlanning>();
  group->ops = &ops;
  const size_t begins = with_matrix ? static_cast<size_t>(map.world_size) *
                                          static_cast<size_t>(map.num_physical() + 1)
                                    : 0;
  std::vector<void*> parts;
  Result<DeviceBuffer> storage = DeviceBuffer::upload_parts(
      {{map.physical.data(), map.physical.size() * sizeof(int64_t)},
       {map.physical_owner.data(), map.physical_owner.size() * sizeof(int32_t)},
       {map.rank_begin.data(), map.rank_begin.size() * sizeof(int64_t)},
       {nullptr, begins * sizeof(int64_t)}},
      parts, "plan_on_device: expert map", ops);
  FUSCO_RETURN_IF_ERROR(storage.status());
  group->storage = std::move(storage).value();
  group->physical = static_cast<int64_t*>(parts[0]);
  group->owner = static_cast<int32_t*>(parts[1]);
  group->rank_begin = static_cast<int64_t*>(parts[2]);
  group->begins = static_cast<int64_t*>(parts[3]);
  return group;
}

core::GroupCounts counts_of(const int64_t* begins, const GroupPlanning& group,
                            const core::ResolvedExpertMap& map, const RecvLayout& layout,
                            int64_t recv_rows) {
  core::GroupCounts counts;
  counts.begins = begins;
  counts.physical = map.num_physical();
  counts.world = map.world_size;
  counts.owner = group.owner;
  counts.rank_begin = group.rank_begin;
  counts.capacity_layout = layout.kind == RecvLayout::Kind::kCapacity;
  counts.capacity = layout.capacity;
  counts.alignment = layout.alignment;
  counts.recv_rows = recv_rows;
  return counts;
}

Status launch_rank_layout(const DevicePlan::Impl& plan, const TensorView& ids,
                          const core::GroupCounts& counts, int64_t* begins_row,
                          cudaStream_t stream) {
  const DeviceMadePlan& made = *plan.made;
  kernels::LayoutArgs layout;
  layout.topk_idx = ids.data;
  layout.ids_int64 = ids.dtype == DType::kInt64;
  layout.num_tokens = made.shape.num_tokens;
  layout.topk = made.shape.topk;
  layout.num_experts = made.shape.num_experts;
  layout.physical = made.group->physical;
  layout.num_physical = counts.physical;
  layout.positions = made.positions;
  layout.expert_begin = begins_row;
  layout.first_bad = made.bad + 2;
  const DeviceOps& ops = *made.group->ops;
  layout.workspace = made.layout_workspace;
  layout.workspace_bytes = ops.layout_workspace_bytes(layout.num_tokens, counts.physical);
  return ops.layout(layout, made.bad, stream,
                    "plan_on_device: layout of rank " + std::to_string(made.shape.rank));
}

Status launch_rank_planning(DevicePlan::Impl& plan, const TensorView& ids,
                            const core::GroupCounts& counts, cudaStream_t stream) {
  const DeviceMadePlan& made = *plan.made;
  kernels::DevicePlanningArgs args;
  args.group = counts;
  args.rank = made.shape.rank;
  args.topk_idx = ids.data;
  args.ids_int64 = ids.dtype == DType::kInt64;
  args.num_tokens = made.shape.num_tokens;
  args.topk = made.shape.topk;
  args.num_experts = made.shape.num_experts;
  args.physical = made.group->physical;
  args.positions = made.positions;
  args.first_row = made.first_row;
  args.limit = made.limit;
  args.stores = plan.programme.stores;
  args.token_group_begin = plan.programme.token_group_begin;
  args.group_term_begin = plan.programme.group_term_begin;
  args.terms = plan.programme.terms;
  args.tokens_per_expert = made.tokens_per_expert;
  args.dropped_per_expert = made.dropped_per_expert;
  args.padded_per_expert = made.padded_per_expert;
  args.unfilled = made.unfilled;
  const DeviceOps& ops = *made.group->ops;
  args.workspace = made.planning_workspace;
  args.workspace_bytes = ops.planning_workspace_bytes(args.num_tokens);
  return ops.device_planning(
      args, stream, "plan_on_device: planning kernels of rank " + std::to_string(args.rank));
}

Status routing_verdict(const DevicePlan::Impl& plan, const std::string& arg) {
  int64_t bad[2] = {-1, 0};
  FUSCO_RETURN_IF_ERROR(
      plan.made->group->ops->download(bad, plan.made->bad, sizeof(bad), "routing check of " + arg));
  if (bad[0] < 0) return Status();
  const detail::PlanData& shape = plan.made->shape;
  return Status(StatusCode::kInvalidArgument,
                arg + "[" + std::to_string(bad[0] / shape.topk) + ", " +
                    std::to_string(bad[0] % shape.topk) + "] = " + std::to_string(bad[1]) +
                    " is outside [-1, num_experts=" + std::to_string(shape.num_experts) +
                    ") (plan_on_device planned the slot as unused)");
}

Result<std::vector<DevicePlan>> DeviceGroup::plan_on_device(const std::vector<TensorView>& topk_idx,
                                                            int64_t num_experts,
                                                            const ExpertMap& expert_map,
                                                            const PlanOptions& options,
                                                            int64_t max_recv_rows) {
  const int world = impl_->world;
  FUSCO_RETURN_IF_ERROR(check_rank_count("topk_idx", topk_idx.size(), world));
  const int nodes = impl_->planners.front().topology().num_nodes();
  if (nodes > 1) {
    return Status(StatusCode::kUnsupported,
                  "plan_on_device: this DeviceGroup groups its ranks into " +
                      std::to_string(nodes) +
                      " nodes; planning on the device is for the ranks of one node (staged rows "
                      "between nodes are planned on the host); DeviceGroup::plan() has it");
  }
  Result<core::ResolvedExpertMap> resolved =
      core::resolve_expert_map(expert_map, num_experts, world);
  FUSCO_RETURN_IF_ERROR(resolved.status());
  const core::ResolvedExpertMap& map = resolved.value();
  FUSCO_RETURN_IF_ERROR(check_device_planning(options, map, max_recv_rows));
  FUSCO_RETURN_IF_ERROR(check_device_routing(topk_idx));
  FUSCO_RETURN_IF_ERROR(impl_->ops->use_device(impl_->device));
  std::vector<int64_t> tokens;
  tokens.reserve(topk_idx.size());
  for (const TensorView& ids : topk_idx) tokens.push_back(ids.shape[0]);
  const int64_t recv_rows = expert_major_rows(
      max_recv_rows, tokens, static_cast<int>(topk_idx.front().shape[1]), map, options.layout);
  Result<std::shared_ptr<GroupPlanning>> group = upload_group(map, true, *impl_->ops);
  FUSCO_RETURN_IF_ERROR(group.status());
  int64_t* begins = group.value()->begins;
  const core::GroupCounts counts =
      counts_of(begins, *group.value(), map, options.layout, recv_rows);
  std::vector<std::shared_ptr<DevicePlan::Impl>> plans;
  const DevicePlanning planning{impl_.get(), num_experts, &map, &options, recv_rows, group.value()};
  for (int r = 0; r < world; ++r) {
    Result<std::shared_ptr<DevicePlan::Impl>> plan =
        allocate_device_plan(planning, topk_idx[static_cast<size_t>(r)], r);
    FUSCO_RETURN_IF_ERROR(plan.status());
    plans.push_back(std::move(plan).value());
  }
  for (int r = 0; r < world; ++r) {  // every rank's layout, its counts into the matrix
    const auto rr = static_cast<size_t>(r);
    FUSCO_RETURN_IF_ERROR(launch_rank_layout(
        *plans[rr], topk_idx[rr], counts, begins + r * (counts.physical + 1), impl_->streams[rr]));
  }
  FUSCO_RETURN_IF_ERROR(impl_->barrier());  // the count matrix is complete
  std::vector<DevicePlan> result;
  for (int r = 0; r < world; ++r) {
    const auto rr = static_cast<size_t>(r);
    FUSCO_RETURN_IF_ERROR(
        launch_rank_planning(*plans[rr], topk_idx[rr], counts, impl_->streams[rr]));
    result.emplace_back(std::move(plans[rr]));
  }
  return result;
}

Status DeviceGroup::check_routing(const std::vector<DevicePlan>& plans) {
  std::vector<const detail::PlanData*> data;
  FUSCO_RETURN_IF_ERROR(impl_->plans_of(plans, data));
  FUSCO_RETURN_IF_ERROR(impl_->ops->use_device(impl_->device));
  for (int r = 0; r < impl_->world; ++r) {
    const auto rr = static_cast<size_t>(r);
    if (!plans[rr].on_device()) continue;
    FUSCO_RETURN_IF_ERROR(
        impl_->ops->synchronize(impl_->streams[rr], "routing check of rank " + std::to_string(r)));
    FUSCO_RETURN_IF_ERROR(routing_verdict(plans[rr].impl(), "topk_idx[" + std::to_string(r) + "]"));
  }
  return Status();
}

}  // namespace fusco::gpu
