#include "gpu/nccl_rank.hpp"

#include <vector>

#include "gpu/device_runs.hpp"

namespace fusco::testing {

namespace {

// The backend of a communicator's device memory.
const gpu::DeviceOps& ops_of(const gpu::NcclCommunicator& comm) {
  return comm.on_host() ? gpu::host_ops() : gpu::cuda_ops();
}

// `bytes` at `p` as `stream`'s work sees them, read in `rank`'s turn (if any).
std::vector<std::byte> read_in_turn(DeviceMemory& memory, cudaStream_t stream, const void* p,
                                    size_t bytes, int rank, Turns* turns) {
  if (turns != nullptr) turns->take(rank);
  std::vector<std::byte> read = memory.read_on(stream, p, bytes);
  if (turns != nullptr) turns->pass();
  return read;
}

}  // namespace

void Turns::take(int rank) {
  std::unique_lock<std::mutex> lock(mutex_);
  auto mine = [&] {
    const int64_t round = passed_ / world_;
    const auto place = static_cast<int>(passed_ % world_);
    return (round % 2 == 0 ? place : world_ - 1 - place) == rank;
  };
  changed_.wait_for(lock, std::chrono::seconds(10), mine);
}

void Turns::pass() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++passed_;
  changed_.notify_all();
}

std::vector<Case> staged_cases(int world, int ranks_per_node) {
  std::vector<Case> cases;
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
      Case c;
      c.dedup = dedup;
      c.relay = relay;
      c.experts = 4 * world;
      c.topk = 4;
      c.hidden = 128;
      c.extra_cols = 2;  // the companion rows take the staged path too
      cases.push_back(c);
    }
  }
  Case hot;  // T = 0 on rank 0, every slot of the others on one expert of the last node
  hot.tokens.assign(static_cast<size_t>(world), 16);
  hot.tokens[0] = 0;
  hot.experts = world;
  for (int r = 0; r < world; ++r) {
    hot.ids.push_back(std::vector<int64_t>(r == 0 ? 0 : 16 * 4, world - 1));
  }
  hot.hidden = 7;
  hot.dtype = DType::kFloat32;
  cases.push_back(hot);
  for (Case& c : cases) {
    c.world = world;
    c.ranks_per_node = ranks_per_node;
  }
  return cases;
}

RankResult run_nccl_rank(const Case& c, gpu::NcclCommunicator& comm, bool copy_expert_out,
                         bool device_planning, Turns* turns) {
  const int rank = comm.rank();
  const gpu::DeviceOps& ops = ops_of(comm);
  cudaStream_t stream = comm.stream();
  const int64_t tokens = tokens_of(c, rank);
  std::vector<int64_t> ids = routing_of(c, rank);
  DeviceMemory routing(ops);
  RankResult result;
  Result<gpu::DevicePlan> plan =
      device_planning ? comm.plan_on_device(device_routing(c, rank, routing, stream), c.experts,
                                            map_of(c), options_of(c))
                      : comm.plan(TensorView::host(ids.data(), DType::kInt64, {tokens, c.topk}),
                                  c.experts, map_of(c), options_of(c));
  if (plan.ok()) result.status = comm.check_routing(plan.value());  // waits for the planning
  if (!plan.ok() || !result.status.ok()) {
    if (!plan.ok()) result.status = plan.status();
    return result;
  }
  result = counts_of_device_plan(plan.value(), ops);
  const int64_t rows = plan.value().num_recv_rows();
  const int64_t pitch = c.stride_pad == 0 ? 0 : c.hidden + c.stride_pad;
  // Inputs written on the rank's stream, as its producer kernels would write them.
  DeviceMemory memory(ops);
  void* x = memory.written_on(stream, strided(x_of(c, rank), c, tokens));
  void* extra =
      memory.written_on(stream, c.extra_cols > 0 ? extra_of(c, rank) : std::vector<std::byte>());
  TensorView extra_recv;
  Result<TensorView> recv =
      comm.dispatch(plan.value(), on_device(x, c.dtype, tokens, c.hidden, pitch),
                    on_device(extra, DType::kInt32, tokens, c.extra_cols),
                    c.extra_cols > 0 ? &extra_recv : nullptr);
  if (!recv.ok()) {
    result.status = recv.status();
    return result;
  }
  // The rows in blocks: an expert-major buffer planned on the device has room past them.
  const int64_t filled = plan.value().on_device() ? rows_in_blocks(result) : rows;
  result.recv =
      read_in_turn(memory, stream, recv.value().data,
                   static_cast<size_t>(filled * c.hidden) * dtype_size(c.dtype), rank, turns);
  if (c.extra_cols > 0) {
    result.extra_recv = read_in_turn(memory, stream, extra_recv.data,
                                     static_cast<size_t>(filled * c.extra_cols) * 4, rank, turns);
  }
  if (!dtype_supports_combine(c.dtype)) return result;
  const size_t out_bytes = static_cast<size_t>(tokens * c.hidden) * dtype_size(c.dtype);
  const TensorView out_view =
      on_device(memory.copy_of(std::vector<std::byte>(out_bytes)), c.dtype, tokens, c.hidden);
  const TensorView w_view =
      on_device(memory.written_on(stream, weights_of(c, rank)), DType::kFloat32, tokens, c.topk);
  const std::vector<std::byte> y = y_of(c, rank, rows);
  if (copy_expert_out) {
    void* y_device = memory.written_on(stream, strided(y, c, rows));
    result.status = comm.combine(plan.value(), on_device(y_device, c.dtype, rows, c.hidden, pitch),
                                 w_view, out_view);
  } else {
    Result<TensorView> window = comm.expert_out_buffer(plan.value(), c.hidden, c.dtype);
    if (!window.ok()) {
      result.status = window.status();
      return result;
    }
    // The experts write their outputs into the window on the rank's stream.
    EXPECT_TRUE(
        ops.copy(window.value().data, memory.copy_of(y), y.size(), stream, "expert outputs").ok());
    result.status = comm.combine(plan.value(), window.value(), w_view, out_view);
  }
  // The next layer reuses the expert-output window at once, on the rank's stream: a rank
  // whose combine reads a peer's window after that peer moved on reads zeros.
  Result<TensorView> window = comm.expert_out_buffer(plan.value(), c.hidden, c.dtype);
  if (result.status.ok() && window.ok()) {
    EXPECT_TRUE(ops.zero(window.value().data, y.size(), stream, "the next layer").ok());
  }
  if (result.status.ok()) {
    result.out = read_in_turn(memory, stream, out_view.data, out_bytes, rank, turns);
  }
  return result;
}

}  // namespace fusco::testing
