// fusco_gpu_bench: the GPU engine on one device against the unfused pipeline and the copy
// engine, side by side in one run. W logical ranks share the GPU (fusco::gpu::DeviceGroup);
// each rank's x is routed by the chosen scenario, dispatched, fed back as the expert output
// (identity experts) and combined. Measured, median of --iters runs:
//   - cudaMemcpyAsync device-to-device of the bytes dispatch delivers (the ceiling);
//   - fused dispatch and combine (rows stored straight into / read straight from the peers'
//     buffers);
//   - the unfused pipeline (permute, block all-to-all, re-sort; and back).
// Results of both are compared byte for byte. Without a CUDA device it says so and exits 0.

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "baseline/unfused_device.hpp"
#include "flags.hpp"
#include "fusco/gpu.hpp"
#include "testing/data.hpp"
#include "testing/routing.hpp"

namespace {

using fusco::Result;
using fusco::Status;
using fusco::StatusCode;
using fusco::TensorView;

struct Args {
  int ranks = 8;
  int64_t tokens = 4096;  // per rank
  int64_t hidden = 7168;
  int topk = 8;
  int64_t experts = 256;
  int iters = 20;
  bool help = false;
  fusco::testing::RoutingSpec routing;
};

constexpr const char* kUsage =
    "usage: fusco_gpu_bench [--ranks W] [--tokens T] [--hidden H] [--topk k] [--experts E]\n"
    "                       [--routing uniform|zipf:<s>|hot:<f>] [--iters N]\n"
    "Defaults: DeepSeek-V3 on one GPU: 8 logical ranks x 4096 tokens, top-8 of 256 experts,\n"
    "hidden 7168 bf16, uniform routing, median of 20.\n";

Result<Args> parse(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      args.help = true;
      return args;
    }
    if (i + 1 >= argc) return fusco::bench::bad_flag(flag, "", "needs a value");
    const std::string value = argv[++i];
    auto integer = [&](int64_t min, int64_t max) {
      return fusco::bench::flag_integer(flag, value, min, max);
    };
    Result<int64_t> parsed = int64_t{0};
    if (flag == "--ranks") {
      parsed = integer(1, 72);
      if (parsed.ok()) args.ranks = static_cast<int>(parsed.value());
    } else if (flag == "--tokens") {
      parsed = integer(0, 1 << 20);
      if (parsed.ok()) args.tokens = parsed.value();
    } else if (flag == "--hidden") {
      parsed = integer(1, 1 << 16);
      if (parsed.ok()) args.hidden = parsed.value();
    } else if (flag == "--topk") {
      parsed = integer(1, 64);
      if (parsed.ok()) args.topk = static_cast<int>(parsed.value());
    } else if (flag == "--experts") {
      parsed = integer(1, 1 << 16);
      if (parsed.ok()) args.experts = parsed.value();
    } else if (flag == "--iters") {
      parsed = integer(1, 10000);
      if (parsed.ok()) args.iters = static_cast<int>(parsed.value());
    } else if (flag == "--routing") {
      Result<fusco::testing::RoutingSpec> spec = fusco::testing::parse_routing(value);
      if (!spec.ok()) return spec.status();
      args.routing = spec.value();
    } else {
      return fusco::bench::bad_flag(flag, value, "unknown flag");
    }
    if (!parsed.ok()) return parsed.status();
  }
  if (args.experts % args.ranks != 0 || args.topk > args.experts) {
    return Status(StatusCode::kInvalidArgument,
                  "--experts " + std::to_string(args.experts) + " must be a multiple of --ranks " +
                      std::to_string(args.ranks) + " and at least --topk");
  }
  return args;
}

bool ok(const Status& status, const char* what) {
  if (!status.ok())
    std::fprintf(stderr, "fusco_gpu_bench: %s: %s\n", what, status.to_string().c_str());
  return status.ok();
}

bool ok(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    std::fprintf(stderr, "fusco_gpu_bench: %s: %s\n", what, cudaGetErrorString(error));
  }
  return error == cudaSuccess;
}

// Median over `iters` runs of `step` (plus one warm-up), timed on `stream`: every rank's
// stream joins it through the step's own barriers.
double median_ms(int iters, cudaStream_t stream, const std::function<Status()>& step,
                 Status& failed) {
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  failed = step();
  for (int i = 0; i < iters && failed.ok(); ++i) {
    cudaEventRecord(start, stream);
    failed = step();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  if (times.empty()) return 0;
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

struct DeviceBlocks {
  std::vector<void*> blocks;
  ~DeviceBlocks() {
    for (void* p : blocks) cudaFree(p);
  }
  void* alloc(size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, std::max<size_t>(bytes, 16)) != cudaSuccess) return nullptr;
    blocks.push_back(p);
    return p;
  }
};

TensorView device_view(void* data, fusco::DType dtype, int64_t rows, int64_t cols) {
  TensorView view = TensorView::host(data, dtype, {rows, cols});
  view.device = fusco::Device::kCuda;
  return view;
}

size_t differing_bytes(const std::vector<TensorView>& a, const std::vector<TensorView>& b) {
  size_t wrong = 0;
  for (size_t r = 0; r < a.size(); ++r) {
    const auto bytes = static_cast<size_t>(a[r].nbytes());
    std::vector<char> ha(bytes), hb(bytes);
    cudaMemcpy(ha.data(), a[r].data, bytes, cudaMemcpyDeviceToHost);
    cudaMemcpy(hb.data(), b[r].data, bytes, cudaMemcpyDeviceToHost);
    for (size_t i = 0; i < bytes; ++i) wrong += ha[i] != hb[i] ? 1 : 0;
  }
  return wrong;
}

}  // namespace

static int run(int argc, char** argv) {
  Result<Args> parsed = parse(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "fusco_gpu_bench: %s\n", parsed.status().message().c_str());
    return 2;
  }
  const Args& a = parsed.value();
  if (a.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("fusco_gpu_bench: no CUDA device; nothing measured\n");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  auto made = fusco::gpu::DeviceGroup::create(a.ranks);
  if (!ok(made.status(), "DeviceGroup::create")) return 2;
  fusco::gpu::DeviceGroup& group = *made.value();
  const auto world = static_cast<size_t>(a.ranks);
  const fusco::DType dtype = fusco::DType::kBFloat16;
  const int64_t row_bytes = a.hidden * 2;

  std::vector<std::vector<int32_t>> ids(world);
  std::vector<TensorView> idx;
  for (size_t r = 0; r < world; ++r) {
    ids[r] = fusco::testing::generate_routing(a.routing, a.tokens, a.topk, a.experts,
                                              static_cast<int>(r),
                                              fusco::Topology::single_node(a.ranks), 1);
    idx.push_back(TensorView::host(ids[r].data(), fusco::DType::kInt32, {a.tokens, a.topk}));
  }
  const auto plan_start = std::chrono::steady_clock::now();
  auto plans = group.plan(idx, a.experts);
  const double plan_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - plan_start)
          .count();
  if (!ok(plans.status(), "plan")) return 2;

  DeviceBlocks memory;
  std::vector<TensorView> x, recv, weights, out, base_recv, base_out;
  int64_t total_rows = 0;
  for (size_t r = 0; r < world; ++r) {
    const int64_t rows = plans.value()[r].host().num_recv_rows();
    total_rows += rows;
    const std::vector<std::byte> host_x =
        fusco::testing::random_elements(dtype, a.tokens * a.hidden, 100 + r);
    const std::vector<std::byte> host_w =
        fusco::testing::random_elements(fusco::DType::kFloat32, a.tokens * a.topk, 200 + r);
    void* px = memory.alloc(host_x.size());
    void* pw = memory.alloc(host_w.size());
    const auto recv_bytes = static_cast<size_t>(rows * row_bytes);
    const auto out_bytes = static_cast<size_t>(a.tokens * row_bytes);
    void* pr = memory.alloc(recv_bytes);
    void* po = memory.alloc(out_bytes);
    void* pbr = memory.alloc(recv_bytes);
    void* pbo = memory.alloc(out_bytes);
    if (!px || !pw || !pr || !po || !pbr || !pbo)
      return ok(cudaErrorMemoryAllocation, "buffers") ? 0 : 2;
    cudaMemcpy(px, host_x.data(), host_x.size(), cudaMemcpyHostToDevice);
    cudaMemcpy(pw, host_w.data(), host_w.size(), cudaMemcpyHostToDevice);
    x.push_back(device_view(px, dtype, a.tokens, a.hidden));
    weights.push_back(device_view(pw, fusco::DType::kFloat32, a.tokens, a.topk));
    recv.push_back(device_view(pr, dtype, rows, a.hidden));
    out.push_back(device_view(po, dtype, a.tokens, a.hidden));
    base_recv.push_back(device_view(pbr, dtype, rows, a.hidden));
    base_out.push_back(device_view(pbo, dtype, a.tokens, a.hidden));
  }
  const auto bytes = static_cast<size_t>(total_rows * row_bytes);
  void* copy_src = memory.alloc(bytes);
  void* copy_dst = memory.alloc(bytes);
  if (!copy_src || !copy_dst) return ok(cudaErrorMemoryAllocation, "copy buffers") ? 0 : 2;
  cudaMemset(copy_src, 1, bytes);
  auto baseline = fusco::baseline::UnfusedDevice::create(group, plans.value(), row_bytes);
  if (!ok(baseline.status(), "baseline")) return 2;

  cudaStream_t s0 = group.stream(0);
  Status failed;
  const double copy_ms = median_ms(
      a.iters, s0,
      [&] {
        return fusco::gpu::cuda_status(
            cudaMemcpyAsync(copy_dst, copy_src, bytes, cudaMemcpyDeviceToDevice, s0), "copy");
      },
      failed);
  if (!ok(failed, "copy")) return 2;
  const double dispatch_ms = median_ms(
      a.iters, s0, [&] { return group.dispatch(plans.value(), x, recv); }, failed);
  if (!ok(failed, "dispatch")) return 2;
  const double combine_ms = median_ms(
      a.iters, s0, [&] { return group.combine(plans.value(), recv, weights, out); }, failed);
  if (!ok(failed, "combine")) return 2;
  const double base_dispatch_ms = median_ms(
      a.iters, s0, [&] { return baseline.value()->dispatch(x, base_recv); }, failed);
  if (!ok(failed, "unfused dispatch")) return 2;
  const double base_combine_ms = median_ms(
      a.iters, s0, [&] { return baseline.value()->combine(base_recv, weights, base_out); }, failed);
  if (!ok(failed, "unfused combine") || !ok(group.synchronize(), "synchronize")) return 2;
  const size_t wrong_recv = differing_bytes(recv, base_recv);
  const size_t wrong_out = differing_bytes(out, base_out);

  const double gb = static_cast<double>(bytes) / 1e9;
  auto line = [&](const char* step, double ms) {
    std::printf("%-44s %9.3f %9.1f\n", step, ms, gb / (ms * 1e-3));
  };
  std::printf(
      "# fusco_gpu_bench on %s: %d logical ranks x %lld tokens, top-%d of %lld experts, "
      "hidden %lld bf16, %s routing; %lld rows (%.3f GB) delivered; median of %d\n",
      prop.name, a.ranks, static_cast<long long>(a.tokens), a.topk,
      static_cast<long long>(a.experts), static_cast<long long>(a.hidden),
      a.routing.to_string().c_str(), static_cast<long long>(total_rows), gb, a.iters);
  std::printf("%-44s %9s %9s\n", "step", "ms", "GB/s");
  line("cudaMemcpyAsync D2D (the same bytes)", copy_ms);
  line("fused dispatch", dispatch_ms);
  line("fused combine", combine_ms);
  line("unfused dispatch (permute, all-to-all, re-sort)", base_dispatch_ms);
  line("unfused combine (un-sort, all-to-all, unpermute)", base_combine_ms);
  std::printf("planning on the host (all ranks, with upload): %.1f ms\n", plan_ms);
  std::printf("fused vs unfused results: %zu recv bytes and %zu out bytes differ\n", wrong_recv,
              wrong_out);
  std::printf("dispatch bandwidth / copy bandwidth: %.2f (goal >= 0.80)\n", copy_ms / dispatch_ms);
  std::printf("unfused / fused time, dispatch + combine: %.2fx (goal >= 1.8x)\n",
              (base_dispatch_ms + base_combine_ms) / (dispatch_ms + combine_ms));
  return wrong_recv + wrong_out == 0 ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& error) {  // allocation failure of a too-large size
    std::fprintf(stderr, "fusco_gpu_bench: %s\n", error.what());
    return 2;
  }
}
