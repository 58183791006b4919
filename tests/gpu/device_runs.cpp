#include "gpu/device_runs.hpp"

#include <cstring>
#include <functional>
#include <string>
#include <utility>

#include "baseline/unfused_device.hpp"

namespace fusco::testing {

TensorView device_routing(const Case& c, int rank, DeviceMemory& memory, cudaStream_t stream) {
  const std::vector<int64_t> ids = routing_of(c, rank);
  const DType dtype = c.int32_ids ? DType::kInt32 : DType::kInt64;
  std::vector<std::byte> bytes;
  for (int64_t id : ids) {
    const auto narrow = static_cast<int32_t>(id);
    const auto* from = c.int32_ids ? reinterpret_cast<const std::byte*>(&narrow)
                                   : reinterpret_cast<const std::byte*>(&id);
    bytes.insert(bytes.end(), from, from + dtype_size(dtype));
  }
  // As the router kernel would write it: on the rank's stream (a null stream: synchronously).
  void* data = stream == nullptr ? memory.copy_of(bytes) : memory.written_on(stream, bytes);
  return on_device(data, dtype, tokens_of(c, rank), c.topk);
}

RankResult counts_of_device_plan(const gpu::DevicePlan& plan, const gpu::DeviceOps& ops) {
  if (!plan.on_device()) return counts_of(plan.host());
  RankResult result;
  const auto local = static_cast<size_t>(plan.num_local_experts());
  for (auto [into, from] :
       {std::pair{&result.tokens_per_expert, plan.device_tokens_per_expert()},
        std::pair{&result.dropped_per_expert, plan.device_dropped_per_expert()},
        std::pair{&result.padded_tokens_per_expert, plan.device_padded_tokens_per_expert()}}) {
    into->resize(local);
    if (local == 0) continue;
    const std::vector<std::byte> bytes = DeviceMemory::read(from, local * sizeof(int64_t), ops);
    std::memcpy(into->data(), bytes.data(), bytes.size());
  }
  return result;
}

int64_t rows_in_blocks(const RankResult& counts) {
  int64_t rows = 0;
  for (int64_t block : counts.padded_tokens_per_expert) rows += block;
  return rows;
}

namespace {

// Every rank's plan of `c`: from host routing, or from routing in device memory planned by
// the kernels.
Result<std::vector<gpu::DevicePlan>> plans_of(gpu::DeviceGroup& group, const Case& c,
                                              Planning planning, DeviceMemory& memory) {
  const auto world = static_cast<size_t>(c.world);
  std::vector<std::vector<int64_t>> ids(world);
  std::vector<TensorView> idx;
  for (size_t r = 0; r < world; ++r) {
    const int rank = static_cast<int>(r);
    if (planning == Planning::kDevice) {
      idx.push_back(device_routing(c, rank, memory, group.stream(rank)));
      continue;
    }
    ids[r] = routing_of(c, rank);
    idx.push_back(TensorView::host(ids[r].data(), DType::kInt64, {tokens_of(c, rank), c.topk}));
  }
  if (planning == Planning::kHost) return group.plan(idx, c.experts, map_of(c), options_of(c));
  return group.plan_on_device(idx, c.experts, map_of(c), options_of(c));
}

// One run's device buffers, every rank's.
struct RunBuffers {
  std::vector<TensorView> x, recv, y, weights, out, extra, extra_recv;
  std::vector<size_t> y_bytes;
};

// `rows` bytes of 0x5a (rows nothing should write stay so).
std::vector<std::byte> filled(size_t bytes) {
  return std::vector<std::byte>(bytes, std::byte{0x5a});
}

// Every rank's x, weights (and companion rows), written on its stream as its producer kernels
// would write them, and its receive and output buffers.
RunBuffers inputs_of(gpu::DeviceGroup& group, const Case& c,
                     const std::vector<gpu::DevicePlan>& plans, DeviceMemory& memory) {
  RunBuffers b;
  const int64_t pitch = c.stride_pad == 0 ? 0 : c.hidden + c.stride_pad;
  const size_t row_bytes = static_cast<size_t>(c.hidden) * dtype_size(c.dtype);
  for (int rank = 0; rank < c.world; ++rank) {
    const int64_t tokens = tokens_of(c, rank);
    const auto rows = static_cast<size_t>(plans[static_cast<size_t>(rank)].num_recv_rows());
    cudaStream_t stream = group.stream(rank);
    b.x.push_back(on_device(memory.written_on(stream, strided(x_of(c, rank), c, tokens)), c.dtype,
                            tokens, c.hidden, pitch));
    b.recv.push_back(on_device(memory.copy_of(filled(rows * row_bytes)), c.dtype,
                               static_cast<int64_t>(rows), c.hidden));
    b.weights.push_back(
        on_device(memory.written_on(stream, weights_of(c, rank)), DType::kFloat32, tokens, c.topk));
    b.out.push_back(on_device(memory.copy_of(filled(static_cast<size_t>(tokens) * row_bytes)),
                              c.dtype, tokens, c.hidden));
    if (c.extra_cols == 0) continue;
    b.extra.push_back(on_device(memory.written_on(stream, extra_of(c, rank)), DType::kInt32, tokens,
                                c.extra_cols));
    b.extra_recv.push_back(
        on_device(memory.copy_of(filled(rows * static_cast<size_t>(c.extra_cols) * 4)),
                  DType::kInt32, static_cast<int64_t>(rows), c.extra_cols));
  }
  return b;
}

// Expert outputs are written on each rank's stream after its dispatch (as its GEMM would
// write them)...
void write_expert_outputs(gpu::DeviceGroup& group, const Case& c,
                          const std::vector<gpu::DevicePlan>& plans, DeviceMemory& memory,
                          RunBuffers& b) {
  const int64_t pitch = c.stride_pad == 0 ? 0 : c.hidden + c.stride_pad;
  for (int rank = 0; rank < c.world; ++rank) {
    const int64_t rows = plans[static_cast<size_t>(rank)].num_recv_rows();
    const std::vector<std::byte> bytes = strided(y_of(c, rank, rows), c, rows);
    b.y.push_back(
        on_device(memory.written_on(group.stream(rank), bytes), c.dtype, rows, c.hidden, pitch));
    b.y_bytes.push_back(bytes.size());
  }
}

// ...and overwritten there after its combine (as the next layer reusing the buffer would):
// only the calls' barriers keep peers from reading them too early or too late.
void reuse_expert_outputs(gpu::DeviceGroup& group, const RunBuffers& b) {
  for (size_t r = 0; r < b.y.size(); ++r) {
    EXPECT_TRUE(ops_of(group)
                    .zero(b.y[r].data, b.y_bytes[r], group.stream(static_cast<int>(r)), "reuse")
                    .ok());
  }
}

Status run_engine(gpu::DeviceGroup& group, const Case& c, const std::vector<gpu::DevicePlan>& plans,
                  Engine engine, DeviceMemory& memory, RunBuffers& b) {
  const bool combine = dtype_supports_combine(c.dtype);
  if (engine == Engine::kFused) {
    Status status = group.dispatch(plans, b.x, b.recv, b.extra, b.extra_recv);
    write_expert_outputs(group, c, plans, memory, b);
    if (status.ok() && combine) status = group.combine(plans, b.y, b.weights, b.out);
    if (combine) reuse_expert_outputs(group, b);
    return status;
  }
  write_expert_outputs(group, c, plans, memory, b);
  const auto row_bytes = static_cast<int64_t>(static_cast<size_t>(c.hidden) * dtype_size(c.dtype));
  auto baseline = baseline::UnfusedDevice::create(group, plans, row_bytes);
  Status status = baseline.status();
  if (status.ok()) status = baseline.value()->dispatch(b.x, b.recv);
  if (status.ok() && combine) status = baseline.value()->combine(b.y, b.weights, b.out);
  if (status.ok()) status = group.synchronize();  // before the baseline's buffers go
  return status;
}

// Each rank's results as work queued on its own stream after the calls sees them (only the
// calls' barriers order that work after the peers' stores), ranks read in `order`.
std::vector<RankResult> results_of(gpu::DeviceGroup& group, const Case& c, const RunBuffers& b,
                                   DeviceMemory& memory, ReadOrder order) {
  std::vector<RankResult> results(static_cast<size_t>(c.world));
  for (int i = 0; i < c.world; ++i) {
    const int rank = order == ReadOrder::kAscending ? i : c.world - 1 - i;
    const auto r = static_cast<size_t>(rank);
    cudaStream_t stream = group.stream(rank);
    results[r].recv =
        memory.read_on(stream, b.recv[r].data, static_cast<size_t>(b.recv[r].nbytes()));
    if (c.extra_cols > 0) {
      results[r].extra_recv = memory.read_on(stream, b.extra_recv[r].data,
                                             static_cast<size_t>(b.extra_recv[r].nbytes()));
    }
    if (dtype_supports_combine(c.dtype)) {
      results[r].out =
          memory.read_on(stream, b.out[r].data, static_cast<size_t>(b.out[r].nbytes()));
    }
  }
  return results;
}

// `read` with each rank's counts (once its planning has ended) and the run's status; a plan
// made on the device keeps the rows in its blocks (its buffer has room past them).
std::vector<RankResult> with_counts(const gpu::DeviceGroup& group, const Case& c,
                                    const std::vector<gpu::DevicePlan>& plans,
                                    std::vector<RankResult> read, const Status& status) {
  const size_t row_bytes = static_cast<size_t>(c.hidden) * dtype_size(c.dtype);
  for (size_t r = 0; r < read.size(); ++r) {
    RankResult counts = counts_of_device_plan(plans[r], ops_of(group));
    counts.status = status;
    if (plans[r].on_device()) {
      const auto rows = static_cast<size_t>(rows_in_blocks(counts));
      read[r].recv.resize(std::min(read[r].recv.size(), rows * row_bytes));
      read[r].extra_recv.resize(
          std::min(read[r].extra_recv.size(), rows * static_cast<size_t>(c.extra_cols) * 4));
    }
    counts.recv = std::move(read[r].recv);
    counts.extra_recv = std::move(read[r].extra_recv);
    counts.out = std::move(read[r].out);
    read[r] = std::move(counts);
  }
  return read;
}

}  // namespace

std::vector<RankResult> run_on_device(gpu::DeviceGroup& group, const Case& c, Engine engine,
                                      Planning planning, ReadOrder order) {
  DeviceMemory memory(ops_of(group));
  Result<std::vector<gpu::DevicePlan>> plans = plans_of(group, c, planning, memory);
  if (!plans.ok()) {
    std::vector<RankResult> results(static_cast<size_t>(c.world));
    for (RankResult& result : results) result.status = plans.status();
    return results;
  }
  RunBuffers buffers = inputs_of(group, c, plans.value(), memory);
  Status status = run_engine(group, c, plans.value(), engine, memory, buffers);
  std::vector<RankResult> read = results_of(group, c, buffers, memory, order);
  if (status.ok()) status = group.synchronize();
  return with_counts(group, c, plans.value(), std::move(read), status);
}

::testing::AssertionResult device_matches_reference(gpu::DeviceGroup& group, const Case& c,
                                                    Engine engine, Planning planning) {
  // On the host backend a rank's results are read only after the work its stream waits for
  // has run: the order, ascending or descending by a hash of the case (the same case, the
  // same order, whichever tests ran before), catches a missed wait on either side of a rank
  // pair across a suite's cases without running every case twice.
  const ReadOrder order = std::hash<std::string>{}(c.describe()) % 2 == 0 ? ReadOrder::kAscending
                                                                          : ReadOrder::kDescending;
  ::testing::AssertionResult matched =
      every_rank_matches(c, run_on_device(group, c, engine, planning, order));
  if (!matched) {
    matched << " (results read in " << (order == ReadOrder::kAscending ? "ascending" : "descending")
            << " rank order)";
  }
  return matched;
}

}  // namespace fusco::testing
