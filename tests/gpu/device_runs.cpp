#include "gpu/device_runs.hpp"

#include <cstring>
#include <utility>

#include "baseline/unfused_device.hpp"

namespace fusco::testing {

TensorView device_routing(const Case& c, int rank, DeviceMemory& memory) {
  const std::vector<int64_t> ids = routing_of(c, rank);
  const DType dtype = c.int32_ids ? DType::kInt32 : DType::kInt64;
  std::vector<std::byte> bytes;
  for (int64_t id : ids) {
    const auto narrow = static_cast<int32_t>(id);
    const auto* from = c.int32_ids ? reinterpret_cast<const std::byte*>(&narrow)
                                   : reinterpret_cast<const std::byte*>(&id);
    bytes.insert(bytes.end(), from, from + dtype_size(dtype));
  }
  return on_device(memory.copy_of(bytes), dtype, tokens_of(c, rank), c.topk);
}

RankResult counts_of_device_plan(const gpu::DevicePlan& plan) {
  if (!plan.on_device()) return counts_of(plan.host());
  RankResult result;
  const auto local = static_cast<size_t>(plan.num_local_experts());
  for (auto [into, from] :
       {std::pair{&result.tokens_per_expert, plan.device_tokens_per_expert()},
        std::pair{&result.dropped_per_expert, plan.device_dropped_per_expert()},
        std::pair{&result.padded_tokens_per_expert, plan.device_padded_tokens_per_expert()}}) {
    into->resize(local);
    if (local == 0) continue;
    const std::vector<std::byte> bytes = DeviceMemory::read(from, local * sizeof(int64_t));
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
      idx.push_back(device_routing(c, rank, memory));
      continue;
    }
    ids[r] = routing_of(c, rank);
    idx.push_back(TensorView::host(ids[r].data(), DType::kInt64, {tokens_of(c, rank), c.topk}));
  }
  if (planning == Planning::kHost) return group.plan(idx, c.experts, map_of(c), options_of(c));
  return group.plan_on_device(idx, c.experts, map_of(c), options_of(c));
}

}  // namespace

std::vector<RankResult> run_on_device(gpu::DeviceGroup& group, const Case& c, Engine engine,
                                      Planning planning) {
  const auto world = static_cast<size_t>(c.world);
  std::vector<RankResult> results(world);
  const gpu::DeviceOps& ops = ops_of(group);
  DeviceMemory memory(ops);
  Result<std::vector<gpu::DevicePlan>> plans = plans_of(group, c, planning, memory);
  if (!plans.ok()) {
    for (RankResult& result : results) result.status = plans.status();
    return results;
  }
  const int64_t pitch = c.stride_pad == 0 ? 0 : c.hidden + c.stride_pad;
  const size_t row_bytes = static_cast<size_t>(c.hidden) * dtype_size(c.dtype);
  std::vector<TensorView> x, recv, y, weights, out;
  for (size_t r = 0; r < world; ++r) {
    const int rank = static_cast<int>(r);
    const int64_t tokens = tokens_of(c, rank);
    const int64_t rows = plans.value()[r].num_recv_rows();
    // Inputs are written on the rank's stream, as its producer kernels would write them.
    cudaStream_t stream = group.stream(rank);
    x.push_back(on_device(memory.written_on(stream, strided(x_of(c, rank), c, tokens)), c.dtype,
                          tokens, c.hidden, pitch));
    recv.push_back(on_device(memory.copy_of(std::vector<std::byte>(
                                 static_cast<size_t>(rows) * row_bytes, std::byte{0x5a})),
                             c.dtype, rows, c.hidden));
    weights.push_back(
        on_device(memory.written_on(stream, weights_of(c, rank)), DType::kFloat32, tokens, c.topk));
    out.push_back(
        on_device(memory.copy_of(std::vector<std::byte>(static_cast<size_t>(tokens) * row_bytes)),
                  c.dtype, tokens, c.hidden));
  }
  std::vector<TensorView> extra, extra_recv;
  for (size_t r = 0; r < world && c.extra_cols > 0; ++r) {
    const int rank = static_cast<int>(r);
    const int64_t rows = plans.value()[r].num_recv_rows();
    extra.push_back(on_device(memory.written_on(group.stream(rank), extra_of(c, rank)),
                              DType::kInt32, tokens_of(c, rank), c.extra_cols));
    extra_recv.push_back(
        on_device(memory.copy_of(std::vector<std::byte>(
                      static_cast<size_t>(rows * c.extra_cols) * 4, std::byte{0x5a})),
                  DType::kInt32, rows, c.extra_cols));
  }
  // Expert outputs are written on each rank's stream after its dispatch (as its GEMM would
  // write them), and overwritten there after its combine (as the next layer reusing the
  // buffer would): only the calls' barriers keep peers from reading them too early or late.
  std::vector<size_t> y_bytes;
  const auto write_expert_outputs = [&] {
    for (size_t r = 0; r < world; ++r) {
      const int64_t rows = plans.value()[r].num_recv_rows();
      const std::vector<std::byte> bytes = strided(y_of(c, static_cast<int>(r), rows), c, rows);
      y.push_back(on_device(memory.written_on(group.stream(static_cast<int>(r)), bytes), c.dtype,
                            rows, c.hidden, pitch));
      y_bytes.push_back(bytes.size());
    }
  };
  const auto reuse_expert_outputs = [&] {
    for (size_t r = 0; r < world; ++r) {
      EXPECT_TRUE(ops.zero(y[r].data, y_bytes[r], group.stream(static_cast<int>(r)), "reuse").ok());
    }
  };
  Status status;
  if (engine == Engine::kFused) {
    status = group.dispatch(plans.value(), x, recv, extra, extra_recv);
    write_expert_outputs();
    if (status.ok() && dtype_supports_combine(c.dtype)) {
      status = group.combine(plans.value(), y, weights, out);
      reuse_expert_outputs();
    }
  } else {
    write_expert_outputs();
    auto baseline =
        baseline::UnfusedDevice::create(group, plans.value(), static_cast<int64_t>(row_bytes));
    status = baseline.status();
    if (status.ok()) status = baseline.value()->dispatch(x, recv);
    if (status.ok() && dtype_supports_combine(c.dtype)) {
      status = baseline.value()->combine(y, weights, out);
    }
    if (status.ok()) status = group.synchronize();  // before the baseline's buffers go
  }
  // Each rank's results as work queued on its own stream after the calls sees them: only
  // the calls' barriers order them after the peers' stores.
  for (size_t r = 0; r < world; ++r) {
    cudaStream_t stream = group.stream(static_cast<int>(r));
    const auto rows = static_cast<size_t>(plans.value()[r].num_recv_rows());
    results[r].recv = memory.read_on(stream, recv[r].data, rows * row_bytes);
    if (c.extra_cols > 0) {
      results[r].extra_recv =
          memory.read_on(stream, extra_recv[r].data, rows * static_cast<size_t>(c.extra_cols) * 4);
    }
    if (dtype_supports_combine(c.dtype)) {
      results[r].out = memory.read_on(stream, out[r].data, static_cast<size_t>(out[r].nbytes()));
    }
  }
  if (status.ok()) status = group.synchronize();
  for (size_t r = 0; r < world; ++r) {
    RankResult counts = counts_of_device_plan(plans.value()[r]);
    counts.status = status;
    // The rows in blocks: an expert-major buffer planned on the device has room past them.
    if (plans.value()[r].on_device()) {
      results[r].recv.resize(static_cast<size_t>(rows_in_blocks(counts)) * row_bytes);
      results[r].extra_recv.resize(
          std::min(results[r].extra_recv.size(),
                   static_cast<size_t>(rows_in_blocks(counts) * c.extra_cols) * 4));
    }
    counts.recv = std::move(results[r].recv);
    counts.extra_recv = std::move(results[r].extra_recv);
    counts.out = std::move(results[r].out);
    results[r] = std::move(counts);
  }
  return results;
}

::testing::AssertionResult device_matches_reference(gpu::DeviceGroup& group, const Case& c,
                                                    Engine engine, Planning planning) {
  const std::vector<RankResult> got = run_on_device(group, c, engine, planning);
  return every_rank_matches(c, got);
}

}  // namespace fusco::testing
