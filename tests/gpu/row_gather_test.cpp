// The row gather kernel on a real GPU; skipped where no GPU is present.

#include "row_gather.hpp"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "gpu/gpu_presence.hpp"

namespace fusco::kernels {
namespace {

void expect_gather(int64_t row_bytes) {
  const int64_t tokens = 37;
  std::vector<GatherRow> rows;
  for (int32_t t = 0; t < tokens; ++t) {
    rows.push_back({t, 0, (t * 7) % tokens});
  }
  std::vector<unsigned char> src(static_cast<size_t>(tokens * row_bytes));
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<unsigned char>(i * 31 + 7);
  void *d_src = nullptr, *d_dst = nullptr, *d_rows = nullptr;
  ASSERT_EQ(cudaMalloc(&d_src, src.size()), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_dst, src.size()), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&d_rows, rows.size() * sizeof(GatherRow)), cudaSuccess);
  cudaMemcpy(d_src, src.data(), src.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(d_rows, rows.data(), rows.size() * sizeof(GatherRow), cudaMemcpyHostToDevice);
  GatherRowsArgs args;
  args.src = d_src;
  args.dst = d_dst;
  args.rows = static_cast<const GatherRow*>(d_rows);
  args.num_rows = tokens;
  args.row_bytes = row_bytes;
  ASSERT_EQ(launch_gather_rows(args, nullptr), cudaSuccess);
  std::vector<unsigned char> dst(src.size());
  ASSERT_EQ(cudaMemcpy(dst.data(), d_dst, dst.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  for (const GatherRow& r : rows) {
    ASSERT_EQ(std::memcmp(dst.data() + r.row * row_bytes, src.data() + r.token * row_bytes,
                          static_cast<size_t>(row_bytes)),
              0);
  }
  cudaFree(d_src);
  cudaFree(d_dst);
  cudaFree(d_rows);
}

TEST(GpuRowGather, CopiesEveryRowToItsPlace_AlignedAndUnaligned) {
  FUSCO_SKIP_WITHOUT_GPU();
  expect_gather(14336);  // bf16 x 7168: 16-byte vector path
  expect_gather(14);     // 7 bf16: byte path
}

}  // namespace
}  // namespace fusco::kernels
