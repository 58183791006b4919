// Uses the installed GPU engine: two logical ranks on one GPU plan, dispatch and combine one
// token each; without a GPU, create() must say so (kUnsupported) and the program exits 0.

#include <cuda_runtime_api.h>

#include <cstdio>
#include <vector>

#include "fusco/gpu.hpp"
#ifdef HAVE_FUSCO_NCCL
#include "fusco/nccl.hpp"
#endif

int main() {
  auto group = fusco::gpu::DeviceGroup::create(2);
  if (!group.ok()) {
    std::printf("no GPU: %s\n", group.status().to_string().c_str());
    return group.status().code() == fusco::StatusCode::kUnsupported ? 0 : 1;
  }
  std::vector<int64_t> ids = {1, 0};  // rank r's token goes to expert 1 - r (rank 1 - r)
  std::vector<fusco::TensorView> idx;
  for (int r = 0; r < 2; ++r)
    idx.push_back(fusco::TensorView::host(&ids[r], fusco::DType::kInt64, {1, 1}));
  auto plans = group.value()->plan(idx, 2);
  if (!plans.ok()) return 1;
  std::vector<float> host = {1.5f, 2.5f};
  std::vector<fusco::TensorView> x, recv;
  for (int r = 0; r < 2; ++r) {
    void* data = nullptr;
    void* out = nullptr;
    cudaMalloc(&data, sizeof(float));
    cudaMalloc(&out, sizeof(float));
    cudaMemcpy(data, &host[r], sizeof(float), cudaMemcpyHostToDevice);
    fusco::TensorView in = fusco::TensorView::host(data, fusco::DType::kFloat32, {1, 1});
    in.device = fusco::Device::kCuda;
    fusco::TensorView got = fusco::TensorView::host(out, fusco::DType::kFloat32, {1, 1});
    got.device = fusco::Device::kCuda;
    x.push_back(in);
    recv.push_back(got);
  }
  if (!group.value()->dispatch(plans.value(), x, recv).ok() || !group.value()->synchronize().ok()) {
    return 1;
  }
  float received = 0;
  cudaMemcpy(&received, recv[0].data, sizeof(float), cudaMemcpyDeviceToHost);
  std::printf("rank 0 received %.1f (from rank 1)\n", received);
  return received == 2.5f ? 0 : 1;
}
