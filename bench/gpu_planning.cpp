#include "gpu_planning.hpp"

#include <algorithm>
#include <utility>

#include "count_wrong.hpp"
#include "gpu_timing.hpp"

namespace fusco::bench {

namespace {

// recv and out buffers for every rank's plan.
Status allocate_results(DeviceBlocks& memory, const BenchArgs& args,
                        const std::vector<gpu::DevicePlan>& plans, const std::vector<TensorView>& x,
                        std::vector<TensorView>& recv, std::vector<TensorView>& out) {
  for (size_t r = 0; r < plans.size(); ++r) {
    Result<TensorView> rows = memory.matrix(args.dtype, plans[r].num_recv_rows(), args.hidden);
    Result<TensorView> sums = memory.matrix(args.dtype, x[r].shape[0], args.hidden);
    FUSCO_RETURN_IF_ERROR(rows.status());
    FUSCO_RETURN_IF_ERROR(sums.status());
    recv.push_back(rows.value());
    out.push_back(sums.value());
  }
  return Status();
}

}  // namespace

Result<GpuPlanning> measure_device_planning(gpu::DeviceGroup& group, const BenchArgs& args,
                                            const std::vector<TensorView>& idx, int64_t rows,
                                            const std::vector<TensorView>& x,
                                            const std::vector<TensorView>& w, bool combines) {
  GpuPlanning result;
  result.capacity = std::max<int64_t>(1, (rows * 5 / 4 + args.experts - 1) / args.experts);
  PlanOptions options;
  options.chunk_bytes = args.chunk_bytes;
  options.layout = RecvLayout::capacity_bounded(result.capacity);
  const int runs = std::max(3, std::min(args.iters, 10));
  // Every run's plans are kept until the clock has stopped: freeing device memory
  // synchronises the device, which neither way of planning should be charged for.
  std::vector<std::vector<gpu::DevicePlan>> host_runs, device_runs;
  Result<double> host_us = median_wall_us(runs, [&]() -> Status {
    Result<std::vector<gpu::DevicePlan>> made = group.plan(idx, args.experts, ExpertMap(), options);
    FUSCO_RETURN_IF_ERROR(made.status());
    host_runs.push_back(std::move(made).value());
    return Status();
  });
  FUSCO_RETURN_IF_ERROR(host_us.status());
  result.host_plan_us = host_us.value();
  Result<double> device_us = median_wall_us(runs, [&]() -> Status {
    Result<std::vector<gpu::DevicePlan>> made =
        group.plan_on_device(idx, args.experts, ExpertMap(), options);
    FUSCO_RETURN_IF_ERROR(made.status());
    device_runs.push_back(std::move(made).value());
    return group.synchronize();  // the plans are ready when their kernels are done
  });
  FUSCO_RETURN_IF_ERROR(device_us.status());
  result.device_plan_us = device_us.value();
  const std::vector<gpu::DevicePlan> host_plans = host_runs.back();
  const std::vector<gpu::DevicePlan> device_plans = device_runs.back();
  host_runs.clear();
  device_runs.clear();
  FUSCO_RETURN_IF_ERROR(group.check_routing(device_plans));
  for (const gpu::DevicePlan& plan : host_plans) {
    for (int64_t dropped : plan.host().dropped_per_expert()) result.dropped += dropped;
  }

  DeviceBlocks memory;
  std::vector<TensorView> recv, out, host_recv, host_out;
  FUSCO_RETURN_IF_ERROR(allocate_results(memory, args, device_plans, x, recv, out));
  FUSCO_RETURN_IF_ERROR(allocate_results(memory, args, host_plans, x, host_recv, host_out));
  const int warmup = std::max(1, args.warmup);
  cudaStream_t s0 = group.stream(0);
  Result<double> dispatch_us =
      median_us(warmup, args.iters, s0, [&] { return group.dispatch(device_plans, x, recv); });
  FUSCO_RETURN_IF_ERROR(dispatch_us.status());
  result.dispatch_us = dispatch_us.value();
  FUSCO_RETURN_IF_ERROR(group.dispatch(host_plans, x, host_recv));
  if (combines) {  // identity experts: the received rows are the expert outputs
    Result<double> combine_us = median_us(
        warmup, args.iters, s0, [&] { return group.combine(device_plans, recv, w, out); });
    FUSCO_RETURN_IF_ERROR(combine_us.status());
    result.combine_us = combine_us.value();
    FUSCO_RETURN_IF_ERROR(group.combine(host_plans, host_recv, w, host_out));
  }
  FUSCO_RETURN_IF_ERROR(group.synchronize());
  const size_t elem = dtype_size(args.dtype);
  for (size_t r = 0; r < x.size(); ++r) {
    result.wrong += count_wrong(download(recv[r]), download(host_recv[r]), elem);
    if (combines) result.wrong += count_wrong(download(out[r]), download(host_out[r]), elem);
  }
  return result;
}

}  // namespace fusco::bench
