#include <cstdint>
#include <cub/device/device_scan.cuh>

#include "device_plan.hpp"
#include "scan_workspace.cuh"

namespace fusco::kernels {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(int64_t items) {
  return static_cast<unsigned>((items + kThreads - 1) / kThreads);
}

// Per physical expert (core::plan_expert).
__global__ void expert_kernel(DevicePlanningArgs args) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (p < args.group.physical) core::plan_expert(args, p);
}

// Per token: its stores and how many rows it delivers (counts[T] = 0 ends the scan input);
// token t is combine group t.
template <typename Id>
__global__ void token_kernel(core::GroupCounts group, core::TokenPlanning<Id> planning,
                             int64_t tokens, core::DirectStore* stores, int64_t* counts,
                             int64_t* token_group_begin) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t > tokens) return;
  token_group_begin[t] = t;
  counts[t] = t < tokens ? core::place_token(group, planning, t, stores) : 0;
}

__global__ void terms_kernel(const core::DirectStore* stores, int64_t topk, int64_t tokens,
                             const int64_t* group_term_begin, core::DirectTerm* terms) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= tokens) return;
  core::token_terms(stores, topk, t, group_term_begin[t], terms);
}

__global__ void zero_unfilled_kernel(char* rows, int64_t row_bytes, const int64_t* unfilled) {
  const int64_t expert = blockIdx.y;
  const int64_t begin = unfilled[2 * expert] * row_bytes;
  const int64_t end = unfilled[2 * expert + 1] * row_bytes;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (begin % 16 == 0 && end % 16 == 0 && reinterpret_cast<uintptr_t>(rows) % 16 == 0) {
    for (int64_t i = begin / 16 + first; i < end / 16; i += stride) {
      reinterpret_cast<uint4*>(rows)[i] = make_uint4(0, 0, 0, 0);
    }
  } else {
    for (int64_t i = begin + first; i < end; i += stride) rows[i] = 0;
  }
}

// One block per destination rank; the stores into peers are fenced at system scope before
// the kernel ends (as the dispatch kernel's: the barrier that follows publishes them).
__global__ void publish_kernel(const int64_t* row, int64_t count, core::PeerTable peers,
                               int64_t offset_bytes) {
  auto* to = reinterpret_cast<int64_t*>(peers.base[blockIdx.x] + offset_bytes);
  if (to == row) return;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) to[i] = row[i];
  __threadfence_system();
}

__global__ void record_bad_kernel(const void* ids, bool ids_int64, const int64_t* first_bad,
                                  int64_t* bad) {
  const int64_t flat = *first_bad;
  if (flat == INT64_MAX) {
    bad[0] = -1;
    bad[1] = 0;
    return;
  }
  bad[0] = flat;
  bad[1] =
      ids_int64 ? static_cast<const int64_t*>(ids)[flat] : static_cast<const int32_t*>(ids)[flat];
}

template <typename Id>
void launch_tokens(const DevicePlanningArgs& args, int64_t* counts, cudaStream_t stream) {
  token_kernel<<<blocks_for(args.num_tokens + 1), kThreads, 0, stream>>>(
      args.group, core::token_planning<Id>(args), args.num_tokens, args.stores, counts,
      args.token_group_begin);
}

}  // namespace

size_t device_planning_workspace_bytes(int64_t num_tokens) {
  return align_up(static_cast<size_t>(num_tokens + 1) * sizeof(int64_t)) +
         align_up(scan_temp_bytes(num_tokens + 1));
}

cudaError_t launch_device_planning(const DevicePlanningArgs& args, cudaStream_t stream) {
  const core::GroupCounts& group = args.group;
  if (args.num_tokens < 0 || args.num_tokens >= INT32_MAX || args.topk < 1 || group.physical < 0 ||
      group.world < 1 || args.rank < 0 || args.rank >= group.world ||
      args.workspace_bytes < device_planning_workspace_bytes(args.num_tokens)) {
    return cudaErrorInvalidValue;
  }
  auto* counts = static_cast<int64_t*>(args.workspace);
  char* scan_temp = static_cast<char*>(args.workspace) +
                    align_up(static_cast<size_t>(args.num_tokens + 1) * sizeof(int64_t));
  if (group.physical > 0) {
    expert_kernel<<<blocks_for(group.physical), kThreads, 0, stream>>>(args);
  }
  if (args.ids_int64) {
    launch_tokens<int64_t>(args, counts, stream);
  } else {
    launch_tokens<int32_t>(args, counts, stream);
  }
  size_t scan_bytes = scan_temp_bytes(args.num_tokens + 1);
  const cudaError_t scanned =
      cub::DeviceScan::ExclusiveSum(scan_temp, scan_bytes, counts, args.group_term_begin,
                                    static_cast<int>(args.num_tokens + 1), stream);
  if (scanned != cudaSuccess) return scanned;
  if (args.num_tokens > 0) {
    terms_kernel<<<blocks_for(args.num_tokens), kThreads, 0, stream>>>(
        args.stores, args.topk, args.num_tokens, args.group_term_begin, args.terms);
  }
  return cudaGetLastError();
}

cudaError_t launch_zero_unfilled_rows(void* rows, int64_t row_bytes, const int64_t* unfilled,
                                      int64_t local_experts, int64_t max_rows,
                                      cudaStream_t stream) {
  if (local_experts <= 0 || max_rows <= 0 || row_bytes <= 0) return cudaSuccess;
  if (local_experts > 65535) return cudaErrorInvalidValue;
  const int64_t words = (max_rows * row_bytes + 15) / 16;
  const int64_t blocks = (words + kThreads * 4 - 1) / (kThreads * 4);
  const dim3 grid(static_cast<unsigned>(blocks < 1024 ? blocks : 1024),
                  static_cast<unsigned>(local_experts));
  zero_unfilled_kernel<<<grid, kThreads, 0, stream>>>(static_cast<char*>(rows), row_bytes,
                                                      unfilled);
  return cudaGetLastError();
}

cudaError_t launch_publish_row(const int64_t* row, int64_t count, const core::PeerTable& peers,
                               int world, int64_t offset_bytes, cudaStream_t stream) {
  if (world < 1 || world > core::kMaxDirectPeers) return cudaErrorInvalidValue;
  if (count <= 0) return cudaSuccess;
  publish_kernel<<<static_cast<unsigned>(world), kThreads, 0, stream>>>(row, count, peers,
                                                                        offset_bytes);
  return cudaGetLastError();
}

cudaError_t launch_record_bad_id(const void* topk_idx, bool ids_int64, const int64_t* first_bad,
                                 int64_t* bad, cudaStream_t stream) {
  record_bad_kernel<<<1, 1, 0, stream>>>(topk_idx, ids_int64, first_bad, bad);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
