#include <cstddef>
#include <string>
#include <thread>

#include "direct_combine.hpp"
#include "direct_dispatch.hpp"
#include "fusco/gpu.hpp"
#include "gpu/cuda_status.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/device_checks.hpp"
#include "gpu/device_group_impl.hpp"
#include "gpu/device_plan_impl.hpp"
#include "gpu/host_routing.hpp"
#include "gpu/stream_barrier.hpp"
#include "plan/plan_data.hpp"

namespace fusco::gpu {

const Plan& DevicePlan::host() const { return impl_->plan; }

namespace {

// Every rank's plan with its programme in device memory; plans that stage rows between
// nodes carry their rank's staged lists and share the group's copies, and read their
// return buffer as table entry W.
Result<std::vector<DevicePlan>> upload(const DeviceGroup::Impl* owner, std::vector<Plan> plans) {
  const DeviceOps& ops = *owner->ops;
  bool staged = false;
  for (const Plan& plan : plans) {
    staged = staged || !plan.data().staged_out.empty() || !plan.data().staged_in.empty();
  }
  std::vector<detail::RankStaged> lists;
  std::shared_ptr<const StagedGroupCopies> copies;
  if (staged) {
    for (const Plan& plan : plans) {
      Result<detail::RankStaged> built = detail::rank_staged(plan.data());
      FUSCO_RETURN_IF_ERROR(built.status());
      lists.push_back(std::move(built).value());
    }
    Result<std::shared_ptr<const StagedGroupCopies>> matched = StagedGroupCopies::match(lists);
    FUSCO_RETURN_IF_ERROR(matched.status());
    copies = std::move(matched).value();
  }
  std::vector<DevicePlan> result;
  for (size_t r = 0; r < plans.size(); ++r) {
    auto impl = std::make_shared<DevicePlan::Impl>();
    FUSCO_RETURN_IF_ERROR(
        upload_rank_plan(plans[r].data(), ops, staged ? &lists[r] : nullptr, *impl));
    impl->copies = copies;
    impl->owner = owner;
    impl->plan = std::move(plans[r]);
    result.emplace_back(std::move(impl));
  }
  return result;
}

// The group's ranks as the staged steps of `plans` use them; no ranks without staged rows.
StagedGroup staged_of(DeviceGroup::Impl& impl, const std::vector<DevicePlan>& plans) {
  StagedGroup group;
  if (plans.front().impl().copies == nullptr) return group;
  group.ops = impl.ops;
  group.streams = &impl.streams;
  group.scratch = &impl.scratch;
  for (const DevicePlan& plan : plans) group.ranks.push_back(plan.impl().staged.get());
  group.copies = plans.front().impl().copies.get();
  group.barrier = [&impl] { return impl.barrier(); };
  return group;
}

// The host backend (device -1).
Status open_host(DeviceGroup::Impl& impl, int device) {
  impl.device = device;
  impl.ops = &host_ops();
  impl.scratch = StagedScratch(host_ops());
  return Status();
}

// CUDA device `device`, made current for this thread.
Status open_device(DeviceGroup::Impl& impl, int device) {
  impl.device = device;
  int count = 0;
  FUSCO_RETURN_IF_ERROR(cuda_status(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
  if (device < 0 || device >= count) {
    return Status(StatusCode::kUnsupported, "device = " + std::to_string(device) +
                                                " but CUDA finds " + std::to_string(count) +
                                                " device(s)");
  }
  impl.ops = &cuda_ops();
  return impl.ops->use_device(device);
}

core::PeerTable table_of(const std::vector<TensorView>& views) {
  core::PeerTable table{};
  for (size_t r = 0; r < views.size(); ++r) {
    table.base[r] = static_cast<char*>(views[r].data);
    table.pitch[r] = views[r].row_pitch_bytes();
  }
  return table;
}

}  // namespace

Result<std::unique_ptr<DeviceGroup>> DeviceGroup::create(int world_size, int device,
                                                         int ranks_per_node) {
  return make(world_size, ranks_per_node, &open_device, device);
}

Result<std::unique_ptr<DeviceGroup>> DeviceGroup::create_on_host(int world_size,
                                                                 int ranks_per_node) {
  return make(world_size, ranks_per_node, &open_host, -1);
}

Result<std::unique_ptr<DeviceGroup>> DeviceGroup::make(int world_size, int ranks_per_node,
                                                       Status (*open)(Impl&, int), int device) {
  if (world_size < 1 || world_size > core::kMaxDirectPeers) {
    return Status(StatusCode::kInvalidArgument,
                  "world_size = " + std::to_string(world_size) + " is outside [1, " +
                      std::to_string(core::kMaxDirectPeers) + "] (one GPU's logical ranks)");
  }
  if (ranks_per_node < 0) {
    return Status(
        StatusCode::kInvalidArgument,
        "ranks_per_node = " + std::to_string(ranks_per_node) + " must be 0 (one node) or positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->world = world_size;
  FUSCO_RETURN_IF_ERROR(open(*impl, device));
  for (int r = 0; r < world_size; ++r) {
    cudaStream_t stream = nullptr;
    FUSCO_RETURN_IF_ERROR(impl->ops->create_stream(&stream));
    impl->streams.push_back(stream);
    cudaEvent_t event = nullptr;
    FUSCO_RETURN_IF_ERROR(impl->ops->create_event(&event));
    impl->events.push_back(event);
  }
  Result<std::vector<Communicator>> planners =
      Communicator::create_local(world_size, ranks_per_node == 0 || ranks_per_node >= world_size
                                                 ? Topology::single_node(world_size)
                                                 : Topology::nodes_of(world_size, ranks_per_node));
  FUSCO_RETURN_IF_ERROR(planners.status());
  impl->planners = std::move(planners).value();
  return std::unique_ptr<DeviceGroup>(new DeviceGroup(std::move(impl)));
}

DeviceGroup::DeviceGroup(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DeviceGroup::~DeviceGroup() = default;

int DeviceGroup::world_size() const { return impl_->world; }
int DeviceGroup::device() const { return impl_->device; }
bool DeviceGroup::on_host() const { return impl_->ops->on_host(); }
cudaStream_t DeviceGroup::stream(int rank) const {
  return impl_->streams.at(static_cast<size_t>(rank));
}

Result<std::vector<DevicePlan>> DeviceGroup::plan(const std::vector<TensorView>& topk_idx,
                                                  int64_t num_experts, const ExpertMap& expert_map,
                                                  const PlanOptions& options) {
  FUSCO_RETURN_IF_ERROR(check_rank_count("topk_idx", topk_idx.size(), impl_->world));
  FUSCO_RETURN_IF_ERROR(impl_->ops->use_device(impl_->device));
  std::vector<std::vector<std::byte>> copies(topk_idx.size());
  std::vector<TensorView> routing;
  for (size_t r = 0; r < topk_idx.size(); ++r) {
    const std::string arg = "topk_idx[" + std::to_string(r) + "]";
    if (topk_idx[r].device == Device::kCuda) {  // the router wrote it on the rank's stream
      FUSCO_RETURN_IF_ERROR(
          impl_->ops->synchronize(impl_->streams[r], "the work that writes " + arg));
    }
    Result<TensorView> host = host_routing(*impl_->ops, topk_idx[r], copies[r], arg);
    FUSCO_RETURN_IF_ERROR(host.status());
    routing.push_back(host.value());
  }
  std::vector<Result<Plan>> plans(static_cast<size_t>(impl_->world),
                                  Status(StatusCode::kAborted, ""));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(impl_->world));
  for (int r = 0; r < impl_->world; ++r) {
    threads.emplace_back([&, r] {
      const auto rr = static_cast<size_t>(r);
      plans[rr] = impl_->planners[rr].plan(routing[rr], num_experts, expert_map, options);
    });
  }
  for (std::thread& thread : threads) thread.join();
  std::vector<Plan> made;
  for (Result<Plan>& plan : plans) {
    FUSCO_RETURN_IF_ERROR(plan.status());
    made.push_back(std::move(plan).value());
  }
  return upload(impl_.get(), std::move(made));
}

Status DeviceGroup::dispatch(const std::vector<DevicePlan>& plans, const std::vector<TensorView>& x,
                             const std::vector<TensorView>& recv) {
  return dispatch(plans, x, recv, {}, {});
}

Status DeviceGroup::dispatch(const std::vector<DevicePlan>& plans, const std::vector<TensorView>& x,
                             const std::vector<TensorView>& recv,
                             const std::vector<TensorView>& extra,
                             const std::vector<TensorView>& extra_recv) {
  std::vector<const detail::PlanData*> data;
  FUSCO_RETURN_IF_ERROR(impl_->plans_of(plans, data));
  FUSCO_RETURN_IF_ERROR(check_device_dispatch(data, x, recv));
  const bool with_extra = !extra.empty() || !extra_recv.empty();
  if (with_extra) {
    FUSCO_RETURN_IF_ERROR(check_rank_count("extra", extra.size(), impl_->world));
    FUSCO_RETURN_IF_ERROR(check_rank_count("extra_recv", extra_recv.size(), impl_->world));
    const int64_t cols = extra.front().ndim == 2 ? extra.front().shape[1] : 0;
    for (size_t r = 0; r < data.size(); ++r) {
      FUSCO_RETURN_IF_ERROR(check_rank_companion(*data[r], extra[r], extra_recv[r], cols,
                                                 extra.front().dtype,
                                                 "[" + std::to_string(r) + "]"));
    }
  }
  FUSCO_RETURN_IF_ERROR(impl_->ops->use_device(impl_->device));
  const int64_t row_bytes = x.front().shape[1] * static_cast<int64_t>(dtype_size(x.front().dtype));
  const int64_t extra_bytes =
      with_extra ? extra.front().shape[1] * static_cast<int64_t>(dtype_size(extra.front().dtype))
                 : 0;
  kernels::DirectDispatchArgs args;
  args.row_bytes = row_bytes;
  args.recv = table_of(recv);
  args.extra_row_bytes = extra_bytes;
  if (with_extra) args.extra_recv = table_of(extra_recv);
  FUSCO_RETURN_IF_ERROR(impl_->barrier());  // every receive buffer is free to be written
  for (int r = 0; r < impl_->world; ++r) {
    const auto rr = static_cast<size_t>(r);
    const DevicePlan::Impl& plan = plans[rr].impl();
    cudaStream_t stream = impl_->streams[rr];
    const std::string what = "dispatch of rank " + std::to_string(r);
    const DeviceOps& ops = *impl_->ops;
    const Launch on{&ops, stream, what};
    FUSCO_RETURN_IF_ERROR(zero_unfilled_rows(plan, recv[rr].data, row_bytes, on));
    if (with_extra) {
      FUSCO_RETURN_IF_ERROR(zero_unfilled_rows(plan, extra_recv[rr].data, extra_bytes, on));
    }
    args.x = x[rr].data;
    args.x_pitch = x[rr].row_pitch_bytes();
    if (with_extra) {
      args.extra = extra[rr].data;
      args.extra_pitch = extra[rr].row_pitch_bytes();
    }
    args.stores = plan.programme.stores;
    args.num_stores = plan.num_stores();
    FUSCO_RETURN_IF_ERROR(
        ops.direct_dispatch(args, stream, "dispatch kernel of rank " + std::to_string(r)));
  }
  const StagedGroup staged = staged_of(*impl_, plans);
  if (!staged.ranks.empty()) {  // between nodes
    // Every rank's rows of `views` (rows of `bytes`) staged into `into` through the buffers
    // `send` and `arrive`.
    const auto stage = [&](const std::vector<TensorView>& views, int64_t bytes,
                           const core::PeerTable& into, StagedBuffer send, StagedBuffer arrive) {
      GroupRows rows;
      rows.row_bytes = bytes;
      for (const TensorView& view : views) {
        rows.source.push_back(view.data);
        rows.pitch.push_back(view.row_pitch_bytes());
      }
      return staged_group_dispatch(staged, rows, into, send, arrive);
    };
    FUSCO_RETURN_IF_ERROR(stage(x, row_bytes, args.recv, kSendRows, kArriveRows));
    if (with_extra) {
      FUSCO_RETURN_IF_ERROR(stage(extra, extra_bytes, args.extra_recv, kSendExtra, kArriveExtra));
    }
  }
  return impl_->barrier();  // every rank's rows have landed before its stream goes on
}

Status DeviceGroup::combine(const std::vector<DevicePlan>& plans,
                            const std::vector<TensorView>& expert_out,
                            const std::vector<TensorView>& topk_weights,
                            const std::vector<TensorView>& out) {
  std::vector<const detail::PlanData*> data;
  FUSCO_RETURN_IF_ERROR(impl_->plans_of(plans, data));
  FUSCO_RETURN_IF_ERROR(check_device_combine(data, expert_out, topk_weights, out));
  FUSCO_RETURN_IF_ERROR(impl_->ops->use_device(impl_->device));
  kernels::DirectCombineArgs args;
  args.hidden = expert_out.front().shape[1];
  args.row_type = static_cast<int32_t>(expert_out.front().dtype);
  args.expert_out = table_of(expert_out);
  const StagedGroup staged = staged_of(*impl_, plans);
  if (!staged.ranks.empty()) {  // the sources' weight rows go to their streams' targets first
    std::vector<const float*> weights;
    weights.reserve(topk_weights.size());
    for (const TensorView& view : topk_weights) {
      weights.push_back(static_cast<const float*>(view.data));
    }
    FUSCO_RETURN_IF_ERROR(staged_group_weights(staged, weights, data.front()->topk));
  }
  FUSCO_RETURN_IF_ERROR(impl_->barrier());  // every expert output (and weight row) is there
  std::vector<char*> returned;              // with staged rows: every rank's return buffer
  const int64_t row_bytes =
      args.hidden * static_cast<int64_t>(dtype_size(expert_out.front().dtype));
  if (!staged.ranks.empty()) {
    FUSCO_RETURN_IF_ERROR(staged_group_combine(
        staged, args.expert_out, {data.front()->topk, args.hidden, args.row_type}, returned));
  }
  for (int r = 0; r < impl_->world; ++r) {
    const auto rr = static_cast<size_t>(r);
    const DevicePlan::Impl& plan = plans[rr].impl();
    if (!returned.empty()) {  // the return buffer is the table's entry after the ranks
      args.expert_out.base[impl_->world] = returned[rr];
      args.expert_out.pitch[impl_->world] = row_bytes;
    }
    args.num_tokens = data[rr]->num_tokens;
    args.topk = data[rr]->topk;
    args.token_group_begin = plan.programme.token_group_begin;
    args.group_term_begin = plan.programme.group_term_begin;
    args.terms = plan.programme.terms;
    args.topk_weights = static_cast<const float*>(topk_weights[rr].data);
    args.out = out[rr].data;
    FUSCO_RETURN_IF_ERROR(impl_->ops->direct_combine(
        args, impl_->streams[rr], "combine kernel of rank " + std::to_string(r)));
  }
  return impl_->barrier();  // no rank overwrites its expert output while a peer still reads
}

Status DeviceGroup::synchronize() {
  FUSCO_RETURN_IF_ERROR(impl_->ops->use_device(impl_->device));
  for (int r = 0; r < impl_->world; ++r) {
    FUSCO_RETURN_IF_ERROR(impl_->ops->synchronize(impl_->streams[static_cast<size_t>(r)],
                                                  "work of rank " + std::to_string(r)));
  }
  return Status();
}

}  // namespace fusco::gpu
