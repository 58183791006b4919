#include "gpu_sizes.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "baseline/unfused_device.hpp"
#include "count_wrong.hpp"
#include "fusco/gpu.hpp"
#include "gpu_planning.hpp"
#include "gpu_timing.hpp"
#include "reference/reference.hpp"
#include "testing/data.hpp"
#include "testing/routing.hpp"

namespace fusco::bench {

Result<GpuSize> run_gpu_size(const BenchArgs& args, int64_t tokens) {
  cudaDeviceProp prop{};
  // With -p below -r the logical ranks form nodes: the fused engine runs the staged path
  // (dedup, relays) and the unfused baseline, which sends every row to its rank anyway, runs
  // on a one-node group of its own.
  const bool nodes = args.ranks_per_node < args.ranks;
  auto made = gpu::DeviceGroup::create(args.ranks, 0, nodes ? args.ranks_per_node : 0);
  FUSCO_RETURN_IF_ERROR(made.status());
  gpu::DeviceGroup& group = *made.value();
  auto one_node = nodes ? gpu::DeviceGroup::create(args.ranks)
                        : Result<std::unique_ptr<gpu::DeviceGroup>>(nullptr);
  FUSCO_RETURN_IF_ERROR(one_node.status());
  gpu::DeviceGroup& base_group = nodes ? *one_node.value() : group;
  cudaGetDeviceProperties(&prop, group.device());
  const auto world = static_cast<size_t>(args.ranks);
  const Topology topology = Topology::nodes_of(args.ranks, args.ranks_per_node);
  const size_t elem = dtype_size(args.dtype);
  const auto row_bytes = static_cast<int64_t>(args.hidden) * static_cast<int64_t>(elem);
  const bool combines = dtype_supports_combine(args.dtype) && args.dtype != DType::kFloat64;

  std::vector<std::vector<int64_t>> ids(world);
  std::vector<std::vector<std::byte>> x_host(world), w_host(world);
  std::vector<TensorView> idx, x_views;
  for (size_t r = 0; r < world; ++r) {
    const std::vector<int32_t> drawn = testing::generate_routing(
        args.routing, tokens, args.topk, args.experts, static_cast<int>(r), topology, args.seed);
    ids[r].assign(drawn.begin(), drawn.end());
    x_host[r] = testing::random_elements(args.dtype, tokens * args.hidden, args.seed * 31 + r);
    w_host[r] = testing::random_elements(DType::kFloat32, tokens * args.topk, args.seed * 41 + r);
  }
  for (size_t r = 0; r < world; ++r) {
    idx.push_back(TensorView::host(ids[r].data(), DType::kInt64, {tokens, args.topk}));
    x_views.push_back(TensorView::host(x_host[r].data(), args.dtype, {tokens, args.hidden}));
  }
  PlanOptions options;
  options.chunk_bytes = args.chunk_bytes;
  options.dedup = args.dedup;
  options.relay = args.relay;
  const auto plan_start = std::chrono::steady_clock::now();
  Result<std::vector<gpu::DevicePlan>> plans = group.plan(idx, args.experts, ExpertMap(), options);
  FUSCO_RETURN_IF_ERROR(plans.status());
  GpuSize result;
  result.device = prop.name;
  result.plan_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - plan_start)
          .count();

  DeviceBlocks memory;
  std::vector<TensorView> x, w, recv, out, base_recv, base_out;
  for (size_t r = 0; r < world; ++r) {
    const int64_t rows = plans.value()[r].host().num_recv_rows();
    result.recv_rows += static_cast<double>(rows) / static_cast<double>(world);
    result.delivered_bytes += static_cast<double>(rows * row_bytes);
    for (auto [list, dtype, count, cols] :
         {std::tuple{&x, args.dtype, tokens, args.hidden},
          std::tuple{&w, DType::kFloat32, tokens, static_cast<int64_t>(args.topk)},
          std::tuple{&recv, args.dtype, rows, args.hidden},
          std::tuple{&out, args.dtype, tokens, args.hidden},
          std::tuple{&base_recv, args.dtype, rows, args.hidden},
          std::tuple{&base_out, args.dtype, tokens, args.hidden}}) {
      Result<TensorView> view = memory.matrix(dtype, count, cols);
      FUSCO_RETURN_IF_ERROR(view.status());
      list->push_back(view.value());
    }
    cudaMemcpy(x[r].data, x_host[r].data(), x_host[r].size(), cudaMemcpyHostToDevice);
    cudaMemcpy(w[r].data, w_host[r].data(), w_host[r].size(), cudaMemcpyHostToDevice);
  }
  const auto bytes = static_cast<int64_t>(result.delivered_bytes);
  Result<TensorView> copy_src = memory.matrix(DType::kInt8, 1, std::max<int64_t>(bytes, 1));
  Result<TensorView> copy_dst = memory.matrix(DType::kInt8, 1, std::max<int64_t>(bytes, 1));
  FUSCO_RETURN_IF_ERROR(copy_src.status());
  FUSCO_RETURN_IF_ERROR(copy_dst.status());
  Result<std::vector<gpu::DevicePlan>> base_plans =
      nodes ? base_group.plan(idx, args.experts, ExpertMap(), options) : plans;
  FUSCO_RETURN_IF_ERROR(base_plans.status());
  auto baseline = baseline::UnfusedDevice::create(base_group, base_plans.value(), row_bytes);
  FUSCO_RETURN_IF_ERROR(baseline.status());

  cudaStream_t s0 = group.stream(0);
  const int warmup = std::max(1, args.warmup);
  auto timed = [&](double* into, cudaStream_t stream, const std::function<Status()>& step) {
    Result<double> us = median_us(warmup, args.iters, stream, step);
    if (us.ok()) *into = us.value();
    return us.status();
  };
  FUSCO_RETURN_IF_ERROR(timed(&result.copy_us, s0, [&] {
    return gpu::cuda_status(
        cudaMemcpyAsync(copy_dst.value().data, copy_src.value().data, static_cast<size_t>(bytes),
                        cudaMemcpyDeviceToDevice, s0),
        "copy");
  }));
  cudaStream_t base_s0 = base_group.stream(0);
  FUSCO_RETURN_IF_ERROR(
      timed(&result.dispatch_us, s0, [&] { return group.dispatch(plans.value(), x, recv); }));
  FUSCO_RETURN_IF_ERROR(timed(&result.base_dispatch_us, base_s0,
                              [&] { return baseline.value()->dispatch(x, base_recv); }));
  if (combines) {
    FUSCO_RETURN_IF_ERROR(
        timed(&result.combine_us, s0, [&] { return group.combine(plans.value(), recv, w, out); }));
    FUSCO_RETURN_IF_ERROR(timed(&result.base_combine_us, base_s0,
                                [&] { return baseline.value()->combine(base_recv, w, base_out); }));
  }
  FUSCO_RETURN_IF_ERROR(group.synchronize());
  FUSCO_RETURN_IF_ERROR(base_group.synchronize());

  // Planning from routing on the GPU, on the host and on the device.
  std::vector<TensorView> device_idx;
  for (size_t r = 0; r < world; ++r) {
    Result<TensorView> ids_view = memory.matrix(DType::kInt64, tokens, args.topk);
    FUSCO_RETURN_IF_ERROR(ids_view.status());
    cudaMemcpy(ids_view.value().data, ids[r].data(), ids[r].size() * sizeof(int64_t),
               cudaMemcpyHostToDevice);
    device_idx.push_back(ids_view.value());
  }
  int64_t rows_in_all = 0;
  for (const gpu::DevicePlan& plan : plans.value()) {
    for (int64_t rows : plan.host().tokens_per_expert()) rows_in_all += rows;
  }
  if (!nodes) {  // planning on the device is for one node
    Result<GpuPlanning> planning =
        measure_device_planning(group, args, device_idx, rows_in_all, x, w, combines);
    FUSCO_RETURN_IF_ERROR(planning.status());
    result.planning = planning.value();
    result.wrong += result.planning.wrong;
  }

  // Fused against unfused, and (with -c) against the reference.
  std::vector<TensorView> w_views;
  for (size_t r = 0; r < world; ++r) {
    w_views.push_back(TensorView::host(w_host[r].data(), DType::kFloat32, {tokens, args.topk}));
  }
  const reference::ReceiveLayout layout =
      args.check ? reference::receive_layout(idx, args.experts, ExpertMap(), topology)
                 : reference::ReceiveLayout();
  const reference::RowReader y_rows = [&](int rank, int64_t row) {
    const reference::RowSource& source =
        layout.rows[static_cast<size_t>(rank)][static_cast<size_t>(row)];
    return x_host[static_cast<size_t>(source.rank)].data() +
           static_cast<size_t>(source.token * row_bytes);
  };
  const bool partials = nodes && args.dedup == Dedup::kNode;
  for (size_t r = 0; r < world; ++r) {
    const std::vector<std::byte> got = download(recv[r]);
    result.wrong += count_wrong(got, download(base_recv[r]), elem);
    if (combines) {
      const std::vector<std::byte> got_out = download(out[r]);
      if (!partials) {  // node partials are rounded: the unfused sums differ in the last bits
        result.wrong += count_wrong(got_out, download(base_out[r]), elem);
      }
      if (args.check) {
        result.wrong += count_wrong(
            got_out,
            reference::combine_rank(layout, static_cast<int>(r), idx[r], w_views[r], y_rows,
                                    args.dtype, args.hidden, topology, args.dedup),
            elem);
      }
    }
    if (args.check) {
      result.wrong +=
          count_wrong(got, reference::dispatch_rank(layout, x_views, static_cast<int>(r)), elem);
    }
  }
  return result;
}

}  // namespace fusco::bench
