// The combine reduction kernel (kernels/combine_reduce.cu) against the CPU engine's
// reduce_row, bit for bit. Skipped where no GPU is present.

#include "combine_reduce.hpp"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/row_math.hpp"
#include "testing/data.hpp"

namespace fusco::testing {
namespace {

TEST(GpuCombineReduce, KernelEqualsTheCpuEngine) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) GTEST_SKIP() << "no CUDA device";
  std::mt19937_64 rng(8);
  const DType dtypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};
  for (int type = 0; type < 3; ++type) {
    const DType dtype = dtypes[type];
    const int64_t tokens = 37;
    const int64_t hidden = 1000;
    const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(dtype);
    // Token t: t % 4 groups of 1 + (t + g) % 3 terms, each a random row (0 groups: zeros).
    std::vector<int64_t> token_groups = {0};
    std::vector<int64_t> group_terms = {0};
    std::vector<int32_t> sizes;
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t g = 0; g < t % 4; ++g) {
        sizes.push_back(static_cast<int32_t>(1 + (t + g) % 3));
        group_terms.push_back(group_terms.back() + sizes.back());
      }
      token_groups.push_back(static_cast<int64_t>(sizes.size()));
    }
    const int64_t terms = group_terms.back();
    std::vector<std::byte> host_rows = random_elements(dtype, terms * hidden, rng());
    std::vector<float> weights(static_cast<size_t>(terms));
    for (float& w : weights) w = std::uniform_real_distribution<float>(-1, 1)(rng);
    void* rows = nullptr;
    ASSERT_EQ(cudaMalloc(&rows, host_rows.size()), cudaSuccess);
    cudaMemcpy(rows, host_rows.data(), host_rows.size(), cudaMemcpyHostToDevice);
    std::vector<const void*> pointers;
    for (int64_t i = 0; i < terms; ++i) {
      pointers.push_back(static_cast<const char*>(rows) + static_cast<size_t>(i) * row_bytes);
    }
    auto upload = [](const auto& host) {
      void* device = nullptr;
      const size_t bytes = host.size() * sizeof(host[0]);
      cudaMalloc(&device, bytes);
      cudaMemcpy(device, host.data(), bytes, cudaMemcpyHostToDevice);
      return device;
    };
    kernels::CombineReduceArgs args;
    args.num_tokens = tokens;
    args.hidden = hidden;
    args.row_type = type;
    args.token_group_begin = static_cast<const int64_t*>(upload(token_groups));
    args.group_term_begin = static_cast<const int64_t*>(upload(group_terms));
    args.term_rows = static_cast<const void* const*>(upload(pointers));
    args.term_weights = static_cast<const float*>(upload(weights));
    ASSERT_EQ(cudaMalloc(&args.out, static_cast<size_t>(tokens) * row_bytes), cudaSuccess);
    ASSERT_EQ(kernels::launch_combine_reduce(args, nullptr), cudaSuccess);
    std::vector<std::byte> got(static_cast<size_t>(tokens) * row_bytes);
    ASSERT_EQ(cudaMemcpy(got.data(), args.out, got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
    std::vector<std::byte> want(got.size(), std::byte{0});
    for (int64_t t = 0; t < tokens; ++t) {
      const int64_t g0 = token_groups[static_cast<size_t>(t)];
      const int64_t groups = token_groups[static_cast<size_t>(t) + 1] - g0;
      if (groups == 0) continue;
      std::vector<engine::ReduceTerm> list;
      for (int64_t i = group_terms[static_cast<size_t>(g0)];
           i < group_terms[static_cast<size_t>(g0 + groups)]; ++i) {
        list.push_back({host_rows.data() + static_cast<size_t>(i) * row_bytes,
                        weights[static_cast<size_t>(i)]});
      }
      engine::reduce_row(dtype, list.data(), sizes.data() + g0, static_cast<int32_t>(groups),
                         want.data() + static_cast<size_t>(t) * row_bytes, hidden);
    }
    EXPECT_EQ(got, want) << dtype_name(dtype);
    for (const void* p :
         {static_cast<const void*>(args.token_group_begin),
          static_cast<const void*>(args.group_term_begin), static_cast<const void*>(args.term_rows),
          static_cast<const void*>(args.term_weights), static_cast<const void*>(args.out),
          static_cast<const void*>(rows)}) {
      cudaFree(const_cast<void*>(p));
    }
  }
}

}  // namespace
}  // namespace fusco::testing
