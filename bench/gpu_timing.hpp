#pragma once

// What fusco_bench -t gpu times with: CUDA-event medians of a step, wall-clock medians of a
// host call, device memory that frees itself, device buffers read back.

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#include "fusco/tensor.hpp"
#include "gpu/cuda_status.hpp"

namespace fusco::bench {

// Median over `iters` runs of `step` after `warmup` runs, timed on `stream`: every rank's
// stream joins it through the step's own barriers.
inline Result<double> median_us(int warmup, int iters, cudaStream_t stream,
                                const std::function<Status()>& step) {
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  Status status;
  for (int i = 0; i < warmup + iters && status.ok(); ++i) {
    cudaEventRecord(start, stream);
    status = step();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (i >= warmup) times.push_back(ms * 1e3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  FUSCO_RETURN_IF_ERROR(status);
  std::sort(times.begin(), times.end());
  return times.empty() ? 0.0 : times[times.size() / 2];
}

// Device memory of one run, freed at the end.
class DeviceBlocks {
 public:
  ~DeviceBlocks() {
    for (void* p : blocks_) cudaFree(p);
  }
  Result<TensorView> matrix(DType dtype, int64_t rows, int64_t cols) {
    void* p = nullptr;
    const size_t bytes = std::max<size_t>(16, static_cast<size_t>(rows * cols) * dtype_size(dtype));
    FUSCO_RETURN_IF_ERROR(gpu::cuda_status(cudaMalloc(&p, bytes), "fusco_bench -t gpu buffers"));
    blocks_.push_back(p);
    TensorView view = TensorView::host(p, dtype, {rows, cols});
    view.device = Device::kCuda;
    return view;
  }

 private:
  std::vector<void*> blocks_;
};

/// Median wall-clock time over `runs` calls of `step` (host calls that end with their GPU work).
inline Result<double> median_wall_us(int runs, const std::function<Status()>& step) {
  std::vector<double> times;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    FUSCO_RETURN_IF_ERROR(step());
    times.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count());
  }
  std::sort(times.begin(), times.end());
  return times.empty() ? 0.0 : times[times.size() / 2];
}

inline std::vector<std::byte> download(const TensorView& view) {
  std::vector<std::byte> host(static_cast<size_t>(view.nbytes()));
  if (!host.empty()) cudaMemcpy(host.data(), view.data, host.size(), cudaMemcpyDeviceToHost);
  return host;
}

}  // namespace fusco::bench
