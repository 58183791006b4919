#include "nccl_sizes.hpp"

#include <cuda_runtime_api.h>
#include <mpi.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <vector>

#include "fusco/mpi.hpp"
#include "fusco/nccl.hpp"
#include "gpu_timing.hpp"
#include "testing/data.hpp"
#include "testing/routing.hpp"

namespace fusco::bench {

namespace {

// The fused and the unfused communicator of this process, made at the first size.
struct NcclGroup {
  std::unique_ptr<gpu::NcclCommunicator> fused;
  std::unique_ptr<gpu::NcclCommunicator> unfused;
  std::string device;
};

std::unique_ptr<NcclGroup>& group_slot() {
  static std::unique_ptr<NcclGroup> group;
  return group;
}

// This process's GPU: its index among the processes of its machine.
Status pick_device(std::string& name) {
  MPI_Comm machine = MPI_COMM_NULL;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &machine);
  int local = 0;
  int on_machine = 0;
  MPI_Comm_rank(machine, &local);
  MPI_Comm_size(machine, &on_machine);
  MPI_Comm_free(&machine);
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    return Status(StatusCode::kUnsupported, "-t nccl: no usable CUDA device");
  }
  if (local >= count) {
    return Status(StatusCode::kUnsupported,
                  "-t nccl: " + std::to_string(count) + " GPU(s) for the " +
                      std::to_string(on_machine) +
                      " processes of this machine (NCCL takes one GPU per rank)");
  }
  FUSCO_RETURN_IF_ERROR(gpu::cuda_status(cudaSetDevice(local), "cudaSetDevice"));
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, local);
  name = prop.name;
  return Status();
}

// A communicator over every process, grouped into nodes of `ranks_per_node` (0: one node).
Result<std::unique_ptr<gpu::NcclCommunicator>> make_comm(int ranks_per_node, gpu::NcclPath path) {
  Result<Communicator> host = create_from_mpi(MPI_COMM_WORLD, ranks_per_node);
  FUSCO_RETURN_IF_ERROR(host.status());
  Result<gpu::NcclOptions> options = gpu::NcclOptions::from_env();
  FUSCO_RETURN_IF_ERROR(options.status());
  options.value().path = path;
  return gpu::NcclCommunicator::create(std::move(host).value(), mpi_bootstrap(MPI_COMM_WORLD),
                                       options.value());
}

Result<NcclGroup*> group_of(const BenchArgs& args, Ranks& ranks) {
  std::unique_ptr<NcclGroup>& slot = group_slot();
  if (slot != nullptr) return slot.get();
  auto group = std::make_unique<NcclGroup>();
  Status picked = pick_device(group->device);
  FUSCO_RETURN_IF_ERROR(ranks.run([&picked](int) { return picked; }));
  const int nodes_of = args.ranks_per_node < args.ranks ? args.ranks_per_node : 0;
  Result<std::unique_ptr<gpu::NcclCommunicator>> fused =
      make_comm(nodes_of, gpu::NcclPath::kDeviceApi);
  FUSCO_RETURN_IF_ERROR(fused.status());
  Result<std::unique_ptr<gpu::NcclCommunicator>> unfused = make_comm(0, gpu::NcclPath::kSendRecv);
  FUSCO_RETURN_IF_ERROR(unfused.status());
  group->fused = std::move(fused).value();
  group->unfused = std::move(unfused).value();
  slot = std::move(group);
  return slot.get();
}

Result<TensorView> uploaded(DeviceBlocks& memory, const std::vector<std::byte>& host, DType dtype,
                            int64_t rows, int64_t cols) {
  Result<TensorView> view = memory.matrix(dtype, rows, cols);
  FUSCO_RETURN_IF_ERROR(view.status());
  if (!host.empty()) {
    FUSCO_RETURN_IF_ERROR(gpu::cuda_status(
        cudaMemcpy(view.value().data, host.data(), host.size(), cudaMemcpyHostToDevice),
        "-t nccl inputs"));
  }
  return view;
}

// Elements of `dtype` that differ between two byte buffers of the same shape.
int64_t differing(const std::vector<std::byte>& a, const std::vector<std::byte>& b,
                  size_t element) {
  if (a.size() != b.size()) return static_cast<int64_t>(std::max(a.size(), b.size()) / element);
  int64_t count = 0;
  for (size_t at = 0; at + element <= a.size(); at += element) {
    count += std::memcmp(a.data() + at, b.data() + at, element) != 0 ? 1 : 0;
  }
  return count;
}

// One engine's plan, dispatch and combine of this rank's rows: the rows fed back as expert
// outputs (identity experts, written into the expert-output window once).
struct EngineRun {
  gpu::NcclCommunicator* comm = nullptr;
  gpu::DevicePlan plan;
  TensorView recv, out;
};

Status prepare(EngineRun& run, const TensorView& idx, const BenchArgs& args,
               const PlanOptions& options, const TensorView& x, DeviceBlocks& memory,
               int64_t tokens, double& plan_us) {
  const auto plan_start = std::chrono::steady_clock::now();
  Result<gpu::DevicePlan> plan = run.comm->plan(idx, args.experts, ExpertMap(), options);
  plan_us +=
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - plan_start)
          .count();
  FUSCO_RETURN_IF_ERROR(plan.status());
  run.plan = std::move(plan).value();
  Result<TensorView> recv = run.comm->dispatch(run.plan, x);
  FUSCO_RETURN_IF_ERROR(recv.status());
  run.recv = recv.value();
  Result<TensorView> y = run.comm->expert_out_buffer(run.plan, args.hidden, args.dtype);
  FUSCO_RETURN_IF_ERROR(y.status());
  if (run.recv.nbytes() > 0) {
    FUSCO_RETURN_IF_ERROR(gpu::cuda_status(
        cudaMemcpyAsync(y.value().data, run.recv.data, static_cast<size_t>(run.recv.nbytes()),
                        cudaMemcpyDeviceToDevice, run.comm->stream()),
        "-t nccl expert outputs"));
  }
  Result<TensorView> out = memory.matrix(args.dtype, tokens, args.hidden);
  FUSCO_RETURN_IF_ERROR(out.status());
  run.out = out.value();
  return run.comm->synchronize();  // bounded: a peer that is gone is named, not waited for
}

}  // namespace

Result<NcclSize> run_nccl_size(const BenchArgs& args, int64_t tokens, Ranks& ranks) {
  Result<NcclGroup*> made = group_of(args, ranks);
  FUSCO_RETURN_IF_ERROR(made.status());
  NcclGroup& group = *made.value();
  const int rank = ranks.first();
  const Topology topology = Topology::nodes_of(args.ranks, args.ranks_per_node);
  const std::vector<int32_t> drawn = testing::generate_routing(
      args.routing, tokens, args.topk, args.experts, rank, topology, args.seed);
  std::vector<int64_t> ids(drawn.begin(), drawn.end());
  const TensorView idx = TensorView::host(ids.data(), DType::kInt64, {tokens, args.topk});
  DeviceBlocks memory;
  Result<TensorView> x = uploaded(
      memory, testing::random_elements(args.dtype, tokens * args.hidden, args.seed * 31 + rank),
      args.dtype, tokens, args.hidden);
  Result<TensorView> w = uploaded(
      memory, testing::random_elements(DType::kFloat32, tokens * args.topk, args.seed * 41 + rank),
      DType::kFloat32, tokens, args.topk);
  FUSCO_RETURN_IF_ERROR(ranks.run([&](int) { return x.ok() ? w.status() : x.status(); }));
  PlanOptions options;
  options.chunk_bytes = args.chunk_bytes;
  options.dedup = args.dedup;
  options.relay = args.relay;

  EngineRun fused{group.fused.get(), {}, {}, {}};
  EngineRun unfused{group.unfused.get(), {}, {}, {}};
  double plan_us = 0;  // the fused plan only
  Status ready = prepare(fused, idx, args, options, x.value(), memory, tokens, plan_us);
  double base_plan_us = 0;
  if (ready.ok()) {
    ready = prepare(unfused, idx, args, options, x.value(), memory, tokens, base_plan_us);
  }
  FUSCO_RETURN_IF_ERROR(ranks.run([&ready](int) { return ready; }));

  const bool combines = dtype_supports_combine(args.dtype) && args.dtype != DType::kFloat64;
  const auto dispatch = [&x](EngineRun& run) -> RankStep {
    return [&run, &x](int) {
      Result<TensorView> recv = run.comm->dispatch(run.plan, x.value());
      FUSCO_RETURN_IF_ERROR(recv.status());
      return run.comm->synchronize();
    };
  };
  const auto combine = [&w, &args](EngineRun& run) -> RankStep {
    return [&run, &w, &args](int) {
      Result<TensorView> y = run.comm->expert_out_buffer(run.plan, args.hidden, args.dtype);
      FUSCO_RETURN_IF_ERROR(y.status());
      FUSCO_RETURN_IF_ERROR(run.comm->combine(run.plan, y.value(), w.value(), run.out));
      return run.comm->synchronize();
    };
  };
  std::vector<RankStep> steps = {dispatch(fused), dispatch(unfused)};
  if (combines) {
    steps.push_back(combine(fused));
    steps.push_back(combine(unfused));
  }
  Result<std::vector<double>> times = ranks.time(args.warmup, args.iters, steps);
  FUSCO_RETURN_IF_ERROR(times.status());

  // The two engines' results, compared (the combined sums only where no node partial rounds).
  const size_t element = dtype_size(args.dtype);
  int64_t wrong = differing(download(fused.recv), download(unfused.recv), element);
  const bool partials = args.dedup == Dedup::kNode && args.ranks_per_node < args.ranks;
  if (combines && !partials)
    wrong += differing(download(fused.out), download(unfused.out), element);

  NcclSize result;
  result.device = group.device;
  result.path = args.ranks_per_node < args.ranks ? "staged between nodes" : "one node";
  result.recv_rows = ranks.sum(static_cast<double>(fused.plan.num_recv_rows())) / args.ranks;
  result.plan_us = plan_us;
  result.dispatch_us = times.value()[0] * 1e6;
  result.base_dispatch_us = times.value()[1] * 1e6;
  if (combines) {
    result.combine_us = times.value()[2] * 1e6;
    result.base_combine_us = times.value()[3] * 1e6;
  }
  result.wrong = static_cast<int64_t>(ranks.sum(static_cast<double>(wrong)));
  return result;
}

void finish_nccl() { group_slot().reset(); }

}  // namespace fusco::bench
