#include <cstdint>
#include <cub/device/device_scan.cuh>

#include "core/layout_steps.hpp"
#include "layout.hpp"
#include "scan_workspace.cuh"

namespace fusco::kernels {

namespace {

using core::kLayoutWarp;

__global__ void set_kernel(long long* value, long long to) { *value = to; }

// Per (expert, chunk): how many of the chunk's pairs go to the expert; the first bad id.
template <typename Id>
__global__ void count_kernel(const Id* ids, int64_t tokens, int topk, int64_t experts,
                             const int64_t* physical, int64_t chunks, unsigned long long* counts,
                             long long* first_bad) {
  const int64_t chunk = blockIdx.x;
  const int64_t end = core::layout_chunk_begin(chunk + 1, tokens, topk);
  for (int64_t flat = core::layout_chunk_begin(chunk, tokens, topk) + threadIdx.x; flat < end;
       flat += blockDim.x) {
    const int64_t p = core::layout_physical(ids, flat, experts, physical);
    if (p >= 0) {
      atomicAdd(&counts[core::layout_counter(p, chunk, chunks)], 1ULL);
    } else if (p == -2) {
      atomicMin(first_bad, static_cast<long long>(flat));
    }
  }
}

// expert_begin[p] = the scanned start of (p, chunk 0); expert_begin[P] = all rows.
__global__ void expert_begin_kernel(const int64_t* starts, const int64_t* counts,
                                    int64_t physical_count, int64_t chunks, int64_t* expert_begin) {
  const int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (p < physical_count) {  // no chunks (no tokens): every expert is empty
    expert_begin[p] = chunks == 0 ? 0 : starts[core::layout_counter(p, 0, chunks)];
  } else if (p == physical_count) {
    const int64_t last = physical_count * chunks - 1;
    expert_begin[p] = last < 0 ? 0 : starts[last] + counts[last];
  }
}

// One warp per chunk walks its pairs in (token, slot) order, 32 at a time: each pair takes
// its expert's cursor plus its rank among the earlier lanes of the same expert, then the
// group's last lane advances the cursor (each chunk owns its cursors: no atomics).
template <typename Id>
__global__ void place_kernel(const Id* ids, int64_t tokens, int topk, int64_t experts,
                             const int64_t* physical, int64_t chunks, int64_t* cursors,
                             int64_t* positions) {
  const int64_t chunk = blockIdx.x;
  const int lane = static_cast<int>(threadIdx.x);
  const int64_t end = core::layout_chunk_begin(chunk + 1, tokens, topk);
  for (int64_t first = core::layout_chunk_begin(chunk, tokens, topk); first < end;
       first += kLayoutWarp) {
    const int64_t flat = first + lane;
    const int64_t p = flat < end ? core::layout_physical(ids, flat, experts, physical) : -3;
    const uint32_t same = __match_any_sync(0xffffffffu, static_cast<unsigned long long>(p));
    int64_t position = -1;
    if (p >= 0) {
      position =
          cursors[core::layout_counter(p, chunk, chunks)] + core::layout_rank_in_group(same, lane);
    }
    __syncwarp();
    if (p >= 0 && core::layout_last_in_group(same, lane)) {
      cursors[core::layout_counter(p, chunk, chunks)] += __popc(same);
    }
    if (flat < end) {
      positions[flat] = p >= 0 ? position : -1;
    }
    __syncwarp();
  }
}

struct Workspace {
  unsigned long long* counts;
  int64_t* starts;
  void* scan_temp;
  size_t scan_bytes;
};

}  // namespace

size_t layout_workspace_bytes(int64_t num_tokens, int64_t num_physical) {
  const int64_t counters = num_physical * core::layout_chunks(num_tokens);
  const auto bytes = static_cast<size_t>(counters) * sizeof(int64_t);
  return 2 * align_up(bytes) + align_up(scan_temp_bytes(counters)) + 256;
}

cudaError_t launch_layout(const LayoutArgs& args, cudaStream_t stream) {
  const int64_t chunks = core::layout_chunks(args.num_tokens);
  const int64_t counters = args.num_physical * chunks;
  if (args.num_tokens < 0 || args.topk < 1 || args.num_physical < 0 || chunks > INT32_MAX ||
      counters > INT32_MAX || args.num_physical + 1 > INT32_MAX ||
      args.workspace_bytes < layout_workspace_bytes(args.num_tokens, args.num_physical)) {
    return cudaErrorInvalidValue;
  }
  const auto bytes = static_cast<size_t>(counters) * sizeof(int64_t);
  auto* base = static_cast<char*>(args.workspace);
  Workspace ws{reinterpret_cast<unsigned long long*>(base),
               reinterpret_cast<int64_t*>(base + align_up(bytes)), base + 2 * align_up(bytes),
               scan_temp_bytes(counters)};
  set_kernel<<<1, 1, 0, stream>>>(reinterpret_cast<long long*>(args.first_bad), INT64_MAX);
  if (counters > 0) {
    const cudaError_t zeroed = cudaMemsetAsync(ws.counts, 0, bytes, stream);
    if (zeroed != cudaSuccess) return zeroed;
  }
  if (chunks > 0) {
    if (args.ids_int64) {
      count_kernel<<<static_cast<unsigned>(chunks), 256, 0, stream>>>(
          static_cast<const int64_t*>(args.topk_idx), args.num_tokens, args.topk, args.num_experts,
          args.physical, chunks, ws.counts, reinterpret_cast<long long*>(args.first_bad));
    } else {
      count_kernel<<<static_cast<unsigned>(chunks), 256, 0, stream>>>(
          static_cast<const int32_t*>(args.topk_idx), args.num_tokens, args.topk, args.num_experts,
          args.physical, chunks, ws.counts, reinterpret_cast<long long*>(args.first_bad));
    }
  }
  const auto* counts = reinterpret_cast<const int64_t*>(ws.counts);
  if (counters > 0) {
    const cudaError_t scanned = cub::DeviceScan::ExclusiveSum(
        ws.scan_temp, ws.scan_bytes, counts, ws.starts, static_cast<int>(counters), stream);
    if (scanned != cudaSuccess) return scanned;
  }
  const int64_t begins = args.num_physical + 1;
  expert_begin_kernel<<<static_cast<unsigned>((begins + 255) / 256), 256, 0, stream>>>(
      ws.starts, counts, args.num_physical, chunks, args.expert_begin);
  if (chunks > 0) {
    if (args.ids_int64) {
      place_kernel<<<static_cast<unsigned>(chunks), core::kLayoutWarp, 0, stream>>>(
          static_cast<const int64_t*>(args.topk_idx), args.num_tokens, args.topk, args.num_experts,
          args.physical, chunks, ws.starts, args.positions);
    } else {
      place_kernel<<<static_cast<unsigned>(chunks), core::kLayoutWarp, 0, stream>>>(
          static_cast<const int32_t*>(args.topk_idx), args.num_tokens, args.topk, args.num_experts,
          args.physical, chunks, ws.starts, args.positions);
    }
  }
  return cudaGetLastError();
}

}  // namespace fusco::kernels
