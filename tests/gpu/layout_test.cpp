// The layout kernel (kernels/layout.cu) against core::build_layout: the same rows per expert
// and the same position for every (token, slot). Skipped where no GPU is present.

#include "layout.hpp"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <vector>

#include "core/layout.hpp"
#include "gpu/gpu_presence.hpp"

namespace fusco::testing {
namespace {

template <typename T>
T* to_device(const std::vector<T>& host) {
  void* memory = nullptr;
  EXPECT_EQ(cudaMalloc(&memory, std::max<size_t>(1, host.size() * sizeof(T))), cudaSuccess);
  if (!host.empty()) {
    EXPECT_EQ(cudaMemcpy(memory, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice),
              cudaSuccess);
  }
  return static_cast<T*>(memory);
}

template <typename T>
std::vector<T> to_host(const T* device, size_t count) {
  std::vector<T> host(count);
  if (count > 0) {
    EXPECT_EQ(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost),
              cudaSuccess);
  }
  return host;
}

struct GpuLayout {
  std::vector<int64_t> positions;
  std::vector<int64_t> expert_begin;
  int64_t first_bad = 0;
};

GpuLayout run_kernel(const std::vector<int32_t>& ids, int64_t tokens, int topk, int64_t experts,
                     const std::vector<int64_t>& physical, int64_t num_physical) {
  kernels::LayoutArgs args;
  args.topk_idx = to_device(ids);
  args.num_tokens = tokens;
  args.topk = topk;
  args.num_experts = experts;
  args.physical = to_device(physical);
  args.num_physical = num_physical;
  args.positions = to_device(std::vector<int64_t>(ids.size(), -7));
  args.expert_begin = to_device(std::vector<int64_t>(static_cast<size_t>(num_physical) + 1));
  args.first_bad = to_device(std::vector<int64_t>(1));
  args.workspace_bytes = kernels::layout_workspace_bytes(tokens, num_physical);
  EXPECT_EQ(cudaMalloc(&args.workspace, args.workspace_bytes), cudaSuccess);
  EXPECT_EQ(kernels::launch_layout(args, nullptr), cudaSuccess);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  GpuLayout got{to_host(args.positions, ids.size()),
                to_host(args.expert_begin, static_cast<size_t>(num_physical) + 1),
                to_host(args.first_bad, 1)[0]};
  for (const void* p :
       {args.topk_idx, static_cast<const void*>(args.physical),
        static_cast<const void*>(args.positions), static_cast<const void*>(args.expert_begin),
        static_cast<const void*>(args.first_bad), static_cast<const void*>(args.workspace)}) {
    cudaFree(const_cast<void*>(p));
  }
  return got;
}

TEST(GpuLayout, KernelEqualsTheHostCountingSort) {
  FUSCO_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(9);
  for (const int64_t tokens : {0, 1, 257, 4096, 16384}) {
    for (const int topk : {1, 8}) {
      const int64_t experts = 256;
      const int world = 8;
      Result<core::ResolvedExpertMap> map = core::resolve_expert_map(ExpertMap(), experts, world);
      ASSERT_TRUE(map.ok());
      std::vector<int32_t> ids(static_cast<size_t>(tokens * topk));
      for (int32_t& id : ids) {
        const uint64_t draw = rng() % 10;
        id = draw == 0 ? -1 : draw < 3 ? 7 : static_cast<int32_t>(rng() % experts);
      }
      const GpuLayout got =
          run_kernel(ids, tokens, topk, experts, map.value().physical, map.value().num_physical());
      Result<core::Layout> want = core::build_layout(
          TensorView::host(ids.data(), DType::kInt32, {tokens, topk}), map.value());
      ASSERT_TRUE(want.ok());
      EXPECT_EQ(got.expert_begin, want.value().expert_begin);
      std::vector<int64_t> expected(ids.size(), -1);
      for (size_t row = 0; row < want.value().pairs.size(); ++row) {
        expected[static_cast<size_t>(want.value().pairs[row])] = static_cast<int64_t>(row);
      }
      EXPECT_EQ(got.positions, expected) << tokens << " tokens, k " << topk;
      EXPECT_EQ(got.first_bad, std::numeric_limits<int64_t>::max());
    }
  }
}

TEST(GpuLayout, ReportsTheFirstBadId) {
  FUSCO_SKIP_WITHOUT_GPU();
  const GpuLayout got = run_kernel({0, 1, -1, 9, 2, -5}, 3, 2, 4, {0, 1, 2, 3}, 4);
  EXPECT_EQ(got.first_bad, 3);
}

}  // namespace
}  // namespace fusco::testing
