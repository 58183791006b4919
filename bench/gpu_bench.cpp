// fusco_gpu_bench: what the GPU path of dispatch can reach on one device. Measures the
// device-to-device copy bandwidth (cudaMemcpyAsync) and the row gather kernel (the direct
// path of dispatch: each row copied from x straight to its expert-major place) on the same
// bytes, and prints their ratio. Issue 6's goal compares dispatch with the copy bandwidth.
// Without a CUDA device it says so and exits 0.

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "row_gather.hpp"

namespace {

bool check(cudaError_t error, const char* what) {
  if (error != cudaSuccess) {
    std::fprintf(stderr, "fusco_gpu_bench: %s: %s\n", what, cudaGetErrorString(error));
    return false;
  }
  return true;
}

// Median over `iters` of the time of `step`, in seconds.
template <typename Step>
double median_seconds(int iters, cudaStream_t stream, Step&& step) {
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  std::vector<double> times;
  for (int i = 0; i < iters; ++i) {
    cudaEventRecord(start, stream);
    step();
    cudaEventRecord(stop, stream);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    times.push_back(ms * 1e-3);
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  // DeepSeek-V3 shape on one GPU: 8 logical ranks x 4096 tokens, top-8, hidden 7168 bf16
  // (the argument overrides the 32768 tokens; rows = tokens x 8).
  const int64_t tokens = argc > 1 ? std::atoll(argv[1]) : 8 * 4096;
  const int64_t topk = 8;
  const int64_t row_bytes = 7168 * 2;
  const int iters = 20;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("fusco_gpu_bench: no CUDA device; nothing measured\n");
    return 0;
  }
  cudaDeviceProp prop{};
  cudaGetDeviceProperties(&prop, 0);
  const int64_t rows = tokens * topk;  // every (token, slot) row, all logical ranks together
  const auto bytes = static_cast<size_t>(rows * row_bytes);
  void* x = nullptr;
  void* recv = nullptr;
  fusco::kernels::GatherRow* list = nullptr;
  if (!check(cudaMalloc(&x, static_cast<size_t>(tokens * row_bytes)), "cudaMalloc x") ||
      !check(cudaMalloc(&recv, bytes), "cudaMalloc recv") ||
      !check(cudaMalloc(reinterpret_cast<void**>(&list),
                        static_cast<size_t>(rows) * sizeof(fusco::kernels::GatherRow)),
             "cudaMalloc rows")) {
    return 2;
  }
  // Each received row comes from a random token (a random routing), placed in order.
  std::vector<fusco::kernels::GatherRow> host(static_cast<size_t>(rows));
  std::mt19937_64 rng(1);
  for (int64_t r = 0; r < rows; ++r) {
    host[static_cast<size_t>(r)] = {
        static_cast<int32_t>(std::uniform_int_distribution<int64_t>(0, tokens - 1)(rng)), 0, r};
  }
  cudaStream_t stream = nullptr;
  cudaStreamCreate(&stream);
  if (!check(cudaMemcpy(list, host.data(), host.size() * sizeof(host[0]), cudaMemcpyHostToDevice),
             "copy row list") ||
      !check(cudaMemset(x, 1, static_cast<size_t>(tokens * row_bytes)), "cudaMemset")) {
    return 2;
  }
  const double copy_s = median_seconds(
      iters, stream, [&] { cudaMemcpyAsync(recv, x, bytes, cudaMemcpyDeviceToDevice, stream); });
  fusco::kernels::GatherRowsArgs args;
  args.src = x;
  args.dst = recv;
  args.rows = list;
  args.num_rows = rows;
  args.row_bytes = row_bytes;
  cudaError_t launched = cudaSuccess;
  const double gather_s = median_seconds(
      iters, stream, [&] { launched = fusco::kernels::launch_gather_rows(args, stream); });
  if (!check(launched, "launch_gather_rows") || !check(cudaDeviceSynchronize(), "sync")) {
    return 2;
  }
  const double gb = static_cast<double>(bytes) / 1e9;
  std::printf("# fusco_gpu_bench on %s: %lld rows of %lld bytes (%.3f GB), median of %d\n",
              prop.name, static_cast<long long>(rows), static_cast<long long>(row_bytes), gb,
              iters);
  std::printf("%-28s %10s %10s\n", "step", "ms", "GB/s");
  std::printf("%-28s %10.3f %10.1f\n", "cudaMemcpyAsync D2D", copy_s * 1e3, gb / copy_s);
  std::printf("%-28s %10.3f %10.1f\n", "row gather (dispatch path)", gather_s * 1e3, gb / gather_s);
  std::printf("gather / copy bandwidth: %.2f (issue 6 goal for dispatch: >= 0.80)\n",
              copy_s / gather_s);
  cudaFree(list);
  cudaFree(recv);
  cudaFree(x);
  cudaStreamDestroy(stream);
  return 0;
}
