#include <cstring>
#include <string>

#include "communicator_impl.hpp"
#include "core/env.hpp"
#include "direct_combine.hpp"
#include "direct_dispatch.hpp"
#include "gpu/host_routing.hpp"
#include "gpu/nccl_communicator_impl.hpp"

namespace fusco::gpu {

Result<NcclOptions> NcclOptions::from_env() {
  NcclOptions options;
  Result<int64_t> bytes = core::nccl_window_bytes_from_env(options.window_bytes);
  FUSCO_RETURN_IF_ERROR(bytes.status());
  Result<bool> check = core::nccl_check_calls_from_env(options.check_calls);
  FUSCO_RETURN_IF_ERROR(check.status());
  Result<int32_t> path = core::nccl_path_from_env(static_cast<int32_t>(options.path));
  FUSCO_RETURN_IF_ERROR(path.status());
  Result<int32_t> inter_node =
      core::nccl_inter_node_from_env(static_cast<int32_t>(options.inter_node));
  FUSCO_RETURN_IF_ERROR(inter_node.status());
  options.inter_node = static_cast<NcclInterNode>(inter_node.value());
  options.window_bytes = bytes.value();
  options.check_calls = check.value();
  options.path = static_cast<NcclPath>(path.value());
  return options;
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create(
    Communicator host, Communicator::BootstrapAllgather allgather, const NcclOptions& options) {
  return make(std::move(host), std::move(allgather), options, cuda_nccl_ops());
}

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::create_on_host(
    Communicator host, Communicator::BootstrapAllgather allgather, const NcclOptions& options) {
  return make(std::move(host), std::move(allgather), options, host_nccl_ops());
}

bool NcclCommunicator::on_host() const { return impl_->ops().on_host(); }

Result<std::unique_ptr<NcclCommunicator>> NcclCommunicator::make(
    Communicator host, Communicator::BootstrapAllgather allgather, const NcclOptions& options,
    const NcclOps& nccl) {
  auto impl = std::make_unique<Impl>(std::move(host), nccl);
  impl->allgather = std::move(allgather);
  impl->options = options;
  impl->rank = impl->host.rank();
  impl->world = impl->host.world_size();
  const int rank = impl->rank;
  const auto& gather = impl->allgather;
  Status local;
  if (impl->world > core::kMaxDirectPeers) {
    local = Status(StatusCode::kUnsupported,
                   "world_size = " + std::to_string(impl->world) + " is more than the " +
                       std::to_string(core::kMaxDirectPeers) + " ranks one LSA domain holds");
  } else if (impl->host.topology().num_nodes() != 1 && options.path == NcclPath::kSendRecv) {
    local = Status(StatusCode::kUnsupported,
                   "options.path = sendrecv with a host topology of " +
                       std::to_string(impl->host.topology().num_nodes()) +
                       " nodes: rows between nodes go through relays that store into their node "
                       "peers' windows, which needs NCCL's device API (path auto or device)");
  } else if (static_cast<int32_t>(options.path) < 0 || static_cast<int32_t>(options.path) > 2) {
    local = Status(StatusCode::kInvalidArgument,
                   "options.path = " + std::to_string(static_cast<int32_t>(options.path)) +
                       " is not an NcclPath (0 auto, 1 device, 2 sendrecv)");
  } else if (static_cast<int32_t>(options.inter_node) < 0 ||
             static_cast<int32_t>(options.inter_node) > 1) {
    local =
        Status(StatusCode::kInvalidArgument,
               "options.inter_node = " + std::to_string(static_cast<int32_t>(options.inter_node)) +
                   " is not an NcclInterNode (0 sendrecv, 1 gin)");
  } else if (options.window_bytes < 1) {
    local = Status(
        StatusCode::kInvalidArgument,
        "options.window_bytes = " + std::to_string(options.window_bytes) + " must be positive");
  } else {
    local = nccl.check_device();
  }
  // The windows are symmetric and the path is collective: every rank must ask for the same.
  transport::Proposal setup;
  setup.kind = transport::CallKind::kSetup;
  setup.local = local;
  setup.fields = {{"NcclOptions.window_bytes", options.window_bytes, nullptr},
                  {"NcclOptions.path", static_cast<int64_t>(options.path), nullptr},
                  {"NcclOptions.check_calls", options.check_calls ? 1 : 0, nullptr},
                  {"NcclOptions.inter_node", static_cast<int64_t>(options.inter_node), nullptr}};
  FUSCO_RETURN_IF_ERROR(transport::agree(gather, impl->world, setup, nullptr, "NCCL setup"));

  // Rank 0's unique id, to every rank.
  Result<ncclUniqueId> id = impl->unique_id_of(0, "ncclGetUniqueId");
  FUSCO_RETURN_IF_ERROR(id.status());
  FUSCO_RETURN_IF_ERROR(agree(gather, nccl.init_rank(&impl->comm, impl->world, id.value(), rank),
                              "ncclCommInitRank"));

  constexpr size_t kAlign = NCCL_WIN_REQUIRED_ALIGNMENT;
  impl->window_bytes = (static_cast<size_t>(options.window_bytes) + kAlign - 1) / kAlign * kAlign;
  FUSCO_RETURN_IF_ERROR(agree(gather, nccl.device().create_stream(&impl->stream), "stream"));
  if (options.path != NcclPath::kSendRecv) {
    const Status direct = impl->set_up_device_api();
    impl->device_api = direct.ok();
    if (!direct.ok()) {
      impl->release_device_api();
      // Several nodes have no ncclSend/ncclRecv fallback (their relays store into peers).
      if (options.path == NcclPath::kDeviceApi || impl->host.topology().num_nodes() > 1) {
        return direct;
      }
    }
  }
  if (!impl->device_api) {  // plain device memory; rows move by ncclSend/ncclRecv
    Result<DeviceBuffer> recv =
        DeviceBuffer::allocate(impl->window_bytes, "receive buffer", nccl.device());
    Result<DeviceBuffer> expert =
        DeviceBuffer::allocate(impl->window_bytes, "expert-output buffer", nccl.device());
    Status allocated = recv.ok() ? expert.status() : recv.status();
    FUSCO_RETURN_IF_ERROR(agree(gather, allocated, "buffer allocation"));
    impl->recv_plain = std::move(recv).value();
    impl->expert_plain = std::move(expert).value();
    impl->recv_window = impl->recv_plain.data();
    impl->expert_window = impl->expert_plain.data();
  }
  return std::unique_ptr<NcclCommunicator>(new NcclCommunicator(std::move(impl)));
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
NcclCommunicator::~NcclCommunicator() = default;

int NcclCommunicator::rank() const { return impl_->rank; }
int NcclCommunicator::world_size() const { return impl_->world; }
Status NcclCommunicator::health() const { return impl_->health(); }

Status NcclCommunicator::synchronize(int64_t timeout_ms) {
  if (timeout_ms < 0) {
    return Status(StatusCode::kInvalidArgument,
                  "synchronize: timeout_ms = " + std::to_string(timeout_ms) +
                      " must be at least 0 (0: the longest timeout of the calls so far)");
  }
  Impl& im = *impl_;
  Status waited = im.watch.wait(im.stream, timeout_ms > 0 ? timeout_ms : im.longest_timeout_ms,
                                "synchronize (the calls enqueued on stream())");
  // A barrier that gave up let the stream end: its record names the peer, so it comes first.
  FUSCO_RETURN_IF_ERROR(im.health());
  return waited;
}
NcclPath NcclCommunicator::path() const {
  return impl_->device_api ? NcclPath::kDeviceApi : NcclPath::kSendRecv;
}
cudaStream_t NcclCommunicator::stream() const { return impl_->stream; }
ncclComm_t NcclCommunicator::nccl() const { return impl_->comm; }

Result<DevicePlan> NcclCommunicator::plan(const TensorView& topk_idx, int64_t num_experts,
                                          const ExpertMap& expert_map, const PlanOptions& options) {
  // Routing on the GPU is copied to the host first; every rank learns whether all copies
  // worked before any enters the planning collective.
  std::vector<std::byte> copy;
  Status local = impl_->health();
  if (local.ok() && topk_idx.device == Device::kCuda) {  // the router wrote it on stream()
    local =
        impl_->watch.wait(impl_->stream, options.timeout_ms, "plan (the work writing topk_idx)");
  }
  Result<TensorView> routing = local.ok() ? host_routing(impl_->ops(), topk_idx, copy, "topk_idx")
                                          : Result<TensorView>(local);
  if (local.ok()) local = routing.status();
  transport::Proposal planning;
  planning.kind = transport::CallKind::kPlan;
  planning.local = local;
  FUSCO_RETURN_IF_ERROR(
      transport::agree(impl_->allgather, impl_->world, planning, nullptr, "plan (routing copy)"));
  // Planned with the ranks of each node as direct peers (LSA), whatever the host transport.
  Result<Plan> plan = Communicator::Impl::plan_for_gpus(impl_->host, routing.value(), num_experts,
                                                        expert_map, options);
  FUSCO_RETURN_IF_ERROR(plan.status());
  auto impl = std::make_shared<DevicePlan::Impl>();
  impl->owner = impl_.get();
  const Status programme = upload_rank_plan(plan.value().data(), impl_->ops(), nullptr, *impl);
  // Every rank's receive rows: each window must hold the most of any rank.
  const int64_t my_rows = plan.value().num_recv_rows();
  transport::Proposal upload;
  upload.kind = transport::CallKind::kSetup;
  upload.local = programme;
  upload.payload = &my_rows;
  upload.payload_bytes = sizeof(my_rows);
  std::vector<int64_t> rows(static_cast<size_t>(impl_->world));
  FUSCO_RETURN_IF_ERROR(transport::agree(impl_->allgather, impl_->world, upload,
                                         reinterpret_cast<std::byte*>(rows.data()), "plan upload"));
  for (const int64_t r : rows) impl->group_max_recv_rows = std::max(impl->group_max_recv_rows, r);
  if (impl_->gin != nullptr) {  // where this rank's GIN puts land (peer to peer)
    Status learned;
    if (impl->staged != nullptr) {
      Result<detail::PutDestinations> to =
          exchange_put_destinations(impl->staged->streams, impl_->lane(options.timeout_ms));
      learned = to.status();
      if (to.ok()) {
        impl->put_destinations =
            std::make_shared<const detail::PutDestinations>(std::move(to).value());
      }
    }
    FUSCO_RETURN_IF_ERROR(agree(impl_->allgather, learned, "plan exchange"));
  }
  if (!impl_->device_api) {  // every rank got here: the exchange above agreed
    Result<SendRecvProgramme> lists = SendRecvProgramme::build(plan.value().data(), impl_->world,
                                                               impl_->lane(options.timeout_ms));
    FUSCO_RETURN_IF_ERROR(agree(impl_->allgather, lists.status(), "plan exchange"));
    impl->send_recv = std::make_shared<const SendRecvProgramme>(std::move(lists).value());
  }
  impl->plan = std::move(plan).value();
  return DevicePlan(std::move(impl));
}

Result<TensorView> NcclCommunicator::dispatch(const DevicePlan& plan, const TensorView& x,
                                              const TensorView& extra, TensorView* extra_recv) {
  const bool with_extra = extra_recv != nullptr;
  Status local = impl_->health();
  if (local.ok()) local = impl_->not_capturing("dispatch");
  if (local.ok()) local = impl_->check_plan(plan);
  const int64_t hidden = x.ndim == 2 ? x.shape[1] : 0;
  const int64_t row_bytes = hidden * static_cast<int64_t>(dtype_size(x.dtype));
  const int64_t cols = with_extra && extra.ndim == 2 ? extra.shape[1] : 0;
  const int64_t extra_bytes = cols * static_cast<int64_t>(dtype_size(extra.dtype));
  TensorView recv;
  TensorView extra_view;
  if (local.ok()) {
    const detail::PlanData& data = plan.impl().data();
    recv = window_view(impl_->recv_window, x.dtype, data.num_recv_rows, hidden);
    local = check_rank_dispatch(data, x, recv, hidden, x.dtype, "");
    if (local.ok()) local = impl_->check_window(plan, row_bytes, extra_bytes, "dispatch");
    if (local.ok() && with_extra) {
      extra_view =
          window_view(static_cast<char*>(impl_->recv_window) + Impl::extra_offset(plan, row_bytes),
                      extra.dtype, data.num_recv_rows, cols);
      local = check_rank_companion(data, extra, extra_view, cols, extra.dtype, "");
    }
    if (local.ok()) local = impl_->reserve(plan, row_bytes, extra_bytes, 0, 0);
  }
  // The same four fields on every rank, with or without a companion tensor.
  std::vector<transport::AgreedField> shape = {
      {"hidden size", hidden, nullptr},
      dtype_field("x dtype", x.dtype),
      {"extra columns", with_extra ? cols : -1,
       [](int64_t v) { return v < 0 ? std::string("none") : std::to_string(v); }},
      dtype_field("extra dtype", with_extra ? extra.dtype : DType::kFloat32)};
  FUSCO_RETURN_IF_ERROR(
      impl_->agree_on_call(local, std::move(shape), transport::CallKind::kDispatch));
  const detail::PlanData& data = plan.impl().data();
  if (!impl_->device_api) {
    const NcclLane lane = impl_->lane(data.options.timeout_ms);
    FUSCO_RETURN_IF_ERROR(send_recv_dispatch(plan.impl().programme.padding, *plan.impl().send_recv,
                                             impl_->scratch, x, recv.data, lane));
    if (with_extra) {
      FUSCO_RETURN_IF_ERROR(send_recv_dispatch(plan.impl().programme.padding,
                                               *plan.impl().send_recv, impl_->scratch, extra,
                                               extra_view.data, lane));
      *extra_recv = extra_view;
    }
    return recv;
  }
  const int64_t timeout_ms = data.options.timeout_ms;
  FUSCO_RETURN_IF_ERROR(impl_->barrier(timeout_ms, "dispatch (receive windows free)"));
  const Launch on{&impl_->ops(), impl_->stream, "dispatch"};
  FUSCO_RETURN_IF_ERROR(zero_unfilled_rows(plan.impl(), recv.data, row_bytes, on));
  FUSCO_RETURN_IF_ERROR(zero_unfilled_rows(plan.impl(), extra_view.data, extra_bytes, on));
  kernels::DirectDispatchArgs args;
  args.x = x.data;
  args.x_pitch = x.row_pitch_bytes();
  args.row_bytes = row_bytes;
  args.stores = plan.impl().programme.stores;
  args.num_stores = plan.impl().num_stores();
  args.recv = impl_->recv_peers;
  for (int p = 0; p < impl_->world; ++p) args.recv.pitch[p] = row_bytes;
  if (with_extra) {
    args.extra = extra.data;
    args.extra_pitch = extra.row_pitch_bytes();
    args.extra_row_bytes = extra_bytes;
    args.extra_recv = impl_->recv_peers;
    for (int p = 0; p < impl_->world; ++p) {  // ranks of other nodes have no address
      if (args.extra_recv.base[p] != nullptr) {
        args.extra_recv.base[p] += Impl::extra_offset(plan, row_bytes);
      }
      args.extra_recv.pitch[p] = extra_bytes;
    }
  }
  FUSCO_RETURN_IF_ERROR(impl_->ops().direct_dispatch(args, impl_->stream, "dispatch kernel"));
  if (plan.impl().staged != nullptr && impl_->gin != nullptr) {  // GIN between nodes
    const NcclStagedRank me = impl_->staged_rank(plan);
    GinTransfer& gin = *impl_->gin;
    const detail::PutDestinations& to = *plan.impl().put_destinations;
    const int64_t chunk = data.options.chunk_bytes;
    FUSCO_RETURN_IF_ERROR(gin.dispatch(me, *impl_->gin_dev_comm, to, *impl_->bounded, chunk, x.data,
                                       x.row_pitch_bytes(), row_bytes, args.recv, GinStep::kRows,
                                       kSendRows, kArriveRows));
    if (with_extra) {
      FUSCO_RETURN_IF_ERROR(gin.dispatch(
          me, *impl_->gin_dev_comm, to, *impl_->bounded, chunk, extra.data, extra.row_pitch_bytes(),
          extra_bytes, args.extra_recv, GinStep::kExtra, kSendExtra, kArriveExtra));
    }
  } else if (plan.impl().staged != nullptr) {  // rows between nodes, fanned out by relays
    const NcclStagedRank me = impl_->staged_rank(plan);
    FUSCO_RETURN_IF_ERROR(nccl_staged_dispatch(me, x.data, x.row_pitch_bytes(), row_bytes,
                                               args.recv, kSendRows, kArriveRows));
    if (with_extra) {
      FUSCO_RETURN_IF_ERROR(nccl_staged_dispatch(me, extra.data, extra.row_pitch_bytes(),
                                                 extra_bytes, args.extra_recv, kSendExtra,
                                                 kArriveExtra));
    }
  }
  FUSCO_RETURN_IF_ERROR(impl_->barrier(timeout_ms, "dispatch (every row landed)"));
  if (with_extra) *extra_recv = extra_view;
  return recv;
}

Result<TensorView> NcclCommunicator::expert_out_buffer(const DevicePlan& plan, int64_t hidden,
                                                       DType dtype) {
  FUSCO_RETURN_IF_ERROR(impl_->check_plan(plan));
  if (hidden < 0 || !dtype_is_valid(static_cast<int32_t>(dtype))) {
    return Status(StatusCode::kInvalidArgument,
                  "expert_out_buffer: hidden = " + std::to_string(hidden) + " and dtype code " +
                      std::to_string(static_cast<int32_t>(dtype)) + " do not describe rows");
  }
  FUSCO_RETURN_IF_ERROR(impl_->check_window(plan, hidden * static_cast<int64_t>(dtype_size(dtype)),
                                            0, "expert_out_buffer"));
  return window_view(impl_->expert_window, dtype, plan.num_recv_rows(), hidden);
}

Status NcclCommunicator::combine(const DevicePlan& plan, const TensorView& expert_out,
                                 const TensorView& topk_weights, const TensorView& out) {
  Status local = impl_->health();
  if (local.ok()) local = impl_->not_capturing("combine");
  if (local.ok()) local = impl_->check_plan(plan);
  const int64_t hidden = expert_out.ndim == 2 ? expert_out.shape[1] : 0;
  const int64_t row_bytes = hidden * static_cast<int64_t>(dtype_size(expert_out.dtype));
  if (local.ok()) {
    local = check_rank_combine(plan.impl().data(), expert_out, topk_weights, out, hidden,
                               expert_out.dtype, "");
  }
  if (local.ok()) local = impl_->check_window(plan, row_bytes, 0, "combine");
  if (local.ok() && impl_->device_api) {
    local = check_outside_window(expert_out, impl_->expert_window, impl_->window_bytes);
  }
  if (local.ok()) local = impl_->reserve(plan, 0, 0, row_bytes, plan.impl().data().topk);
  FUSCO_RETURN_IF_ERROR(impl_->agree_on_call(
      local, {{"hidden size", hidden, nullptr}, dtype_field("expert_out dtype", expert_out.dtype)},
      transport::CallKind::kCombine));
  const detail::PlanData& data = plan.impl().data();
  if (!impl_->device_api) {
    return send_recv_combine(data, plan.impl().programme, *plan.impl().send_recv, impl_->scratch,
                             expert_out, topk_weights, out, impl_->lane(data.options.timeout_ms));
  }
  if (expert_out.data != impl_->expert_window || expert_out.row_pitch_bytes() != row_bytes) {
    FUSCO_RETURN_IF_ERROR(impl_->ops().copy_rows(
        impl_->expert_window, row_bytes, expert_out.data, expert_out.row_pitch_bytes(), row_bytes,
        data.num_recv_rows, impl_->stream,
        "combine: copying expert_out into the expert-output window"));
  }
  const bool staged = plan.impl().staged != nullptr;
  GinTransfer* gin = staged ? impl_->gin.get() : nullptr;
  const int64_t timeout_ms = data.options.timeout_ms;
  const auto* weights = static_cast<const float*>(topk_weights.data);
  if (gin != nullptr) {  // the weight rows of the entries to their relays
    FUSCO_RETURN_IF_ERROR(gin->weights(impl_->staged_rank(plan), *impl_->gin_dev_comm,
                                       *plan.impl().put_destinations, *impl_->bounded, weights,
                                       data.topk));
  } else if (staged) {
    FUSCO_RETURN_IF_ERROR(nccl_staged_weights(impl_->staged_rank(plan), weights, data.topk));
  }
  FUSCO_RETURN_IF_ERROR(impl_->barrier(timeout_ms, "combine (expert outputs in their windows)"));
  kernels::DirectCombineArgs args;
  args.num_tokens = data.num_tokens;
  args.hidden = hidden;
  args.row_type = static_cast<int32_t>(expert_out.dtype);
  args.topk = data.topk;
  args.token_group_begin = plan.impl().programme.token_group_begin;
  args.group_term_begin = plan.impl().programme.group_term_begin;
  args.terms = plan.impl().programme.terms;
  args.topk_weights = static_cast<const float*>(topk_weights.data);
  args.expert_out = impl_->expert_peers;
  for (int p = 0; p < impl_->world; ++p) args.expert_out.pitch[p] = row_bytes;
  if (staged) {  // other nodes' sums come back; this rank's combine reads them as entry W
    Result<char*> returned =
        gin != nullptr ? gin->returns(impl_->staged_rank(plan), *impl_->gin_dev_comm,
                                      *plan.impl().put_destinations, *impl_->bounded,
                                      args.expert_out, data.topk, hidden, args.row_type, row_bytes)
                       : nccl_staged_return(impl_->staged_rank(plan), args.expert_out, data.topk,
                                            hidden, args.row_type, row_bytes);
    FUSCO_RETURN_IF_ERROR(returned.status());
    args.expert_out.base[impl_->world] = returned.value();
    args.expert_out.pitch[impl_->world] = row_bytes;
  }
  args.out = out.data;
  FUSCO_RETURN_IF_ERROR(impl_->ops().direct_combine(args, impl_->stream, "combine kernel"));
  if (gin != nullptr) {  // the returned rows are read: their senders may put again
    FUSCO_RETURN_IF_ERROR(
        gin->returned_read(impl_->staged_rank(plan), *impl_->gin_dev_comm, row_bytes));
  }
  // No rank overwrites its window while a peer still reads it.
  return impl_->barrier(timeout_ms, "combine (every window read)");
}

}  // namespace fusco::gpu
