#include <cstdint>

#include "combine_reduce.hpp"
#include "core/reduce_steps.hpp"

namespace fusco::kernels {

namespace {

// One block per token, threads over its elements.
__global__ void combine_reduce_kernel(CombineReduceArgs args) {
  const int64_t t = blockIdx.x;
  const int64_t g0 = args.token_group_begin[t];
  const int64_t groups = args.token_group_begin[t + 1] - g0;
  const auto type = static_cast<core::RowType>(args.row_type);
  void* out_row =
      static_cast<char*>(args.out) + t * args.hidden * (type == core::RowType::kFloat32 ? 4 : 2);
  for (int64_t h = threadIdx.x; h < args.hidden; h += blockDim.x) {
    const float value = groups == 0
                            ? 0.0f
                            : core::combine_element(args.term_rows, args.term_weights,
                                                    args.group_term_begin + g0, groups, h, type);
    core::store_element(out_row, h, value, type);
  }
}

}  // namespace

cudaError_t launch_combine_reduce(const CombineReduceArgs& args, cudaStream_t stream) {
  if (args.num_tokens <= 0 || args.hidden <= 0) {
    return cudaSuccess;
  }
  if (args.num_tokens > INT32_MAX || args.row_type < 0 || args.row_type > 2) {
    return cudaErrorInvalidValue;
  }
  combine_reduce_kernel<<<static_cast<unsigned>(args.num_tokens), 256, 0, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
