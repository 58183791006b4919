#include "gpu/nccl_rank.hpp"

#include <cuda_runtime_api.h>

#include <vector>

#include "gpu/device_runs.hpp"

namespace fusco::testing {

namespace {

// `view`'s bytes once `stream`'s work is done.
std::vector<std::byte> read(const TensorView& view, cudaStream_t stream) {
  cudaStreamSynchronize(stream);
  return DeviceMemory::read(view.data, static_cast<size_t>(view.nbytes()));
}

}  // namespace

RankResult run_nccl_rank(const Case& c, gpu::NcclCommunicator& comm, bool copy_expert_out,
                         bool device_planning) {
  const int rank = comm.rank();
  const int64_t tokens = tokens_of(c, rank);
  std::vector<int64_t> ids = routing_of(c, rank);
  DeviceMemory routing;
  RankResult result;
  Result<gpu::DevicePlan> plan =
      device_planning ? comm.plan_on_device(device_routing(c, rank, routing), c.experts, map_of(c),
                                            options_of(c))
                      : comm.plan(TensorView::host(ids.data(), DType::kInt64, {tokens, c.topk}),
                                  c.experts, map_of(c), options_of(c));
  if (plan.ok()) result.status = comm.check_routing(plan.value());  // waits for the planning
  if (!plan.ok() || !result.status.ok()) {
    if (!plan.ok()) result.status = plan.status();
    return result;
  }
  result = counts_of_device_plan(plan.value(), gpu::cuda_ops());
  const int64_t rows = plan.value().num_recv_rows();
  const int64_t pitch = c.stride_pad == 0 ? 0 : c.hidden + c.stride_pad;
  DeviceMemory memory;
  void* x = memory.copy_of(strided(x_of(c, rank), c, tokens));
  void* extra = memory.copy_of(c.extra_cols > 0 ? extra_of(c, rank) : std::vector<std::byte>());
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
  result.recv = read(recv.value(), comm.stream());
  result.recv.resize(static_cast<size_t>(filled * c.hidden) * dtype_size(c.dtype));
  if (c.extra_cols > 0) {
    result.extra_recv = read(extra_recv, comm.stream());
    result.extra_recv.resize(static_cast<size_t>(filled * c.extra_cols) * 4);
  }
  if (!dtype_supports_combine(c.dtype)) return result;
  const TensorView out_view =
      on_device(memory.copy_of(std::vector<std::byte>(static_cast<size_t>(tokens * c.hidden) *
                                                      dtype_size(c.dtype))),
                c.dtype, tokens, c.hidden);
  const TensorView w_view =
      on_device(memory.copy_of(weights_of(c, rank)), DType::kFloat32, tokens, c.topk);
  const std::vector<std::byte> y = y_of(c, rank, rows);
  if (copy_expert_out) {
    void* y_device = memory.copy_of(strided(y, c, rows));
    result.status = comm.combine(plan.value(), on_device(y_device, c.dtype, rows, c.hidden, pitch),
                                 w_view, out_view);
    cudaStreamSynchronize(comm.stream());
  } else {
    Result<TensorView> window = comm.expert_out_buffer(plan.value(), c.hidden, c.dtype);
    if (!window.ok()) {
      result.status = window.status();
      return result;
    }
    cudaMemcpyAsync(window.value().data, y.data(), y.size(), cudaMemcpyHostToDevice, comm.stream());
    result.status = comm.combine(plan.value(), window.value(), w_view, out_view);
  }
  if (result.status.ok()) result.out = read(out_view, comm.stream());
  return result;
}

}  // namespace fusco::testing
