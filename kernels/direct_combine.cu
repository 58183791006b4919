#include "core/reduce_steps.hpp"
#include "direct_combine.hpp"

namespace fusco::kernels {

namespace {

constexpr int kThreads = 128;
// Terms whose 16-byte words one thread loads before summing them (a top-k of 8 in one go).
constexpr int64_t kLoads = 8;

struct alignas(16) Word {
  uint32_t v[4];
};

// One block per token. With every row 16-byte aligned each thread sums 16-byte words
// (8 fp16/bf16 or 4 fp32 elements, one accumulator each); otherwise single elements. Both
// feed every element the same sequence of operations, so they give the same bits.
template <core::RowType kType>
__global__ void direct_combine_kernel(DirectCombineArgs args) {
  constexpr int kElement = kType == core::RowType::kFloat32 ? 4 : 2;
  constexpr int kPerWord = 16 / kElement;
  const int64_t t = blockIdx.x;
  const int64_t weights_row = args.weight_rows == nullptr ? t : args.weight_rows[t];
  const int64_t g0 = args.token_group_begin[t];
  const int64_t groups = args.token_group_begin[t + 1] - g0;
  const int64_t* group_begin = args.group_term_begin + g0;
  const int64_t row_bytes = args.hidden * kElement;
  char* out_row = static_cast<char*>(args.out) + t * row_bytes;
  uintptr_t ends = reinterpret_cast<uintptr_t>(out_row) | static_cast<uintptr_t>(row_bytes);
  for (int64_t i = groups == 0 ? 0 : group_begin[0]; groups > 0 && i < group_begin[groups]; ++i) {
    ends |= reinterpret_cast<uintptr_t>(core::term_source(args.expert_out, args.terms[i]));
  }
  if (ends % 16 == 0) {
    for (int64_t w = threadIdx.x; w < row_bytes / 16; w += kThreads) {
      core::CombineAccumulator sum[kPerWord];
      for (int64_t g = 0; g < groups; ++g) {
        // Up to kLoads terms' words are loaded before any is summed (their loads in flight
        // together), then summed in the plan's order.
        for (int64_t first = group_begin[g]; first < group_begin[g + 1]; first += kLoads) {
          const int64_t left = group_begin[g + 1] - first;
          const int64_t count = left < kLoads ? left : kLoads;
          Word words[kLoads];
          float weights[kLoads];
#pragma unroll
          for (int b = 0; b < kLoads; ++b) {  // predicated, not broken: words stay registers
            if (b < count) {
              const core::DirectTerm term = args.terms[first + b];
              words[b] = reinterpret_cast<const Word*>(core::term_source(args.expert_out, term))[w];
              weights[b] = core::term_weight(args.topk_weights, args.topk, weights_row, term);
            }
          }
#pragma unroll
          for (int b = 0; b < kLoads; ++b) {
            if (b < count) {
              for (int e = 0; e < kPerWord; ++e) {
                sum[e].add(weights[b], core::load_element(&words[b], e, kType),
                           first + b == group_begin[g]);
              }
            }
          }
        }
        for (int e = 0; e < kPerWord; ++e) sum[e].close_group(g, groups, kType);
      }
      Word result;
      for (int e = 0; e < kPerWord; ++e) core::store_element(&result, e, sum[e].total, kType);
      reinterpret_cast<Word*>(out_row)[w] = result;
    }
    return;
  }
  for (int64_t h = threadIdx.x; h < args.hidden; h += kThreads) {
    core::store_element(
        out_row, h,
        core::combine_token_element(args.expert_out, args.terms, group_begin, groups,
                                    args.topk_weights, args.topk, weights_row, h, kType),
        kType);
  }
}

}  // namespace

cudaError_t launch_direct_combine(const DirectCombineArgs& args, cudaStream_t stream) {
  if (args.num_tokens <= 0 || args.hidden <= 0) {
    return cudaSuccess;
  }
  if (args.num_tokens > INT32_MAX) {
    return cudaErrorInvalidValue;
  }
  const auto blocks = static_cast<unsigned>(args.num_tokens);
  switch (static_cast<core::RowType>(args.row_type)) {
    case core::RowType::kFloat32:
      direct_combine_kernel<core::RowType::kFloat32><<<blocks, kThreads, 0, stream>>>(args);
      break;
    case core::RowType::kFloat16:
      direct_combine_kernel<core::RowType::kFloat16><<<blocks, kThreads, 0, stream>>>(args);
      break;
    case core::RowType::kBFloat16:
      direct_combine_kernel<core::RowType::kBFloat16><<<blocks, kThreads, 0, stream>>>(args);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace fusco::kernels
