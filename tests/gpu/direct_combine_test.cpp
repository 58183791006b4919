// The direct combine kernel (kernels/direct_combine.cu) against the CPU engine's reduce_row,
// bit for bit: rows whose size is a multiple of 16 bytes take the word path, others the
// element path; terms come from two "ranks" of the peer table and take their weights from
// topk_weights by slot. Skipped where no GPU is present.

#include "direct_combine.hpp"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "engine/row_math.hpp"
#include "gpu/gpu_presence.hpp"
#include "testing/data.hpp"

namespace fusco::testing {
namespace {

template <typename T>
void* upload(const std::vector<T>& host) {
  void* device = nullptr;
  const size_t bytes = std::max<size_t>(1, host.size() * sizeof(T));
  EXPECT_EQ(cudaMalloc(&device, bytes), cudaSuccess);
  if (!host.empty()) cudaMemcpy(device, host.data(), bytes, cudaMemcpyHostToDevice);
  return device;
}

TEST(GpuDirectCombine, KernelEqualsTheCpuEngine) {
  FUSCO_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(8);
  const DType dtypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};
  for (int type = 0; type < 3; ++type) {
    for (int64_t hidden : {int64_t{1}, int64_t{999}, int64_t{1000}, int64_t{7168}}) {
      const DType dtype = dtypes[type];
      const int64_t tokens = 37;
      const int64_t topk = 8;
      const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(dtype);
      // Token t: t % 4 groups of 1 + (t + g) % 2 terms (0 groups: zeros); term i reads row
      // i / 2 of rank i % 2 and the weight of slot (its place in the token).
      std::vector<int64_t> token_groups = {0};
      std::vector<int64_t> group_terms = {0};
      std::vector<int32_t> sizes;
      std::vector<core::DirectTerm> terms;
      for (int64_t t = 0; t < tokens; ++t) {
        int32_t slot = 0;
        for (int64_t g = 0; g < t % 4; ++g) {
          sizes.push_back(static_cast<int32_t>(1 + (t + g) % 2));
          for (int32_t s = 0; s < sizes.back(); ++s) {
            const auto i = static_cast<int64_t>(terms.size());
            terms.push_back({static_cast<int32_t>(i % 2), slot++, i / 2});
          }
          group_terms.push_back(group_terms.back() + sizes.back());
        }
        token_groups.push_back(static_cast<int64_t>(sizes.size()));
      }
      const auto per_rank = static_cast<int64_t>(terms.size() + 1) / 2;
      std::vector<std::byte> rank_rows[2] = {random_elements(dtype, per_rank * hidden, rng()),
                                             random_elements(dtype, per_rank * hidden, rng())};
      std::vector<float> weights(static_cast<size_t>(tokens * topk));
      for (float& w : weights) w = std::uniform_real_distribution<float>(-1, 1)(rng);
      kernels::DirectCombineArgs args;
      args.num_tokens = tokens;
      args.hidden = hidden;
      args.row_type = type;
      args.topk = topk;
      args.token_group_begin = static_cast<const int64_t*>(upload(token_groups));
      args.group_term_begin = static_cast<const int64_t*>(upload(group_terms));
      args.terms = static_cast<const core::DirectTerm*>(upload(terms));
      args.topk_weights = static_cast<const float*>(upload(weights));
      for (int r = 0; r < 2; ++r) {
        args.expert_out.base[r] = static_cast<char*>(upload(rank_rows[r]));
        args.expert_out.pitch[r] = static_cast<int64_t>(row_bytes);
      }
      ASSERT_EQ(cudaMalloc(&args.out, static_cast<size_t>(tokens) * row_bytes), cudaSuccess);
      ASSERT_EQ(kernels::launch_direct_combine(args, nullptr), cudaSuccess);
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
          const core::DirectTerm& term = terms[static_cast<size_t>(i)];
          list.push_back({rank_rows[term.rank].data() + static_cast<size_t>(term.row) * row_bytes,
                          weights[static_cast<size_t>(t * topk + term.slot)]});
        }
        engine::reduce_row(dtype, list.data(), sizes.data() + g0, static_cast<int32_t>(groups),
                           want.data() + static_cast<size_t>(t) * row_bytes, hidden);
      }
      EXPECT_EQ(got, want) << dtype_name(dtype) << " H " << hidden;
      for (const void* p :
           {static_cast<const void*>(args.token_group_begin),
            static_cast<const void*>(args.group_term_begin), static_cast<const void*>(args.terms),
            static_cast<const void*>(args.topk_weights),
            static_cast<const void*>(args.expert_out.base[0]),
            static_cast<const void*>(args.expert_out.base[1]),
            static_cast<const void*>(args.out)}) {
        cudaFree(const_cast<void*>(p));
      }
    }
  }
}

}  // namespace
}  // namespace fusco::testing
