#pragma once

// The layout (counting sort of (token, slot) pairs by physical expert) as the GPU runs it, in
// steps small enough for one thread: tokens are cut into chunks; each chunk's pairs are
// counted per expert; an exclusive scan over (expert, chunk) gives every chunk the first row
// of its pairs in each expert's block; then one warp walks the chunk in (token, slot) order
// and places each pair at its expert's next row. The result equals core::build_layout's order
// (expert, token, slot) by construction. These functions compile for host and device
// (FUSCO_HOST_DEVICE), so the CPU tests run the same arithmetic on an emulated warp.

#include <cstdint>

#include "fusco/host_device.hpp"

namespace fusco::core {

/// Tokens per chunk of the device layout.
inline constexpr int64_t kLayoutChunkTokens = 256;
/// Lanes of a warp: the pairs placed together.
inline constexpr int kLayoutWarp = 32;

/// Number of chunks for `tokens` tokens.
FUSCO_HOST_DEVICE inline int64_t layout_chunks(int64_t tokens) {
  return (tokens + kLayoutChunkTokens - 1) / kLayoutChunkTokens;
}

/// First pair (flat index token * k + slot) of chunk `chunk`.
FUSCO_HOST_DEVICE inline int64_t layout_chunk_begin(int64_t chunk, int64_t tokens, int topk) {
  const int64_t token = chunk * kLayoutChunkTokens;
  return (token < tokens ? token : tokens) * topk;
}

/// The physical expert of pair `flat`: physical[id] for a valid id, -1 for an unused slot,
/// -2 for an id outside [-1, E) (an argument error the launcher reports).
template <typename Id>
FUSCO_HOST_DEVICE inline int64_t layout_physical(const Id* ids, int64_t flat, int64_t num_experts,
                                                 const int64_t* physical) {
  const auto id = static_cast<int64_t>(ids[flat]);
  if (id == -1) return -1;
  return id >= 0 && id < num_experts ? physical[id] : -2;
}

/// Index of the (expert, chunk) counter in the workspace: expert-major, so an exclusive scan
/// over the whole array gives each chunk its first row in each expert's block.
FUSCO_HOST_DEVICE inline int64_t layout_counter(int64_t physical, int64_t chunk, int64_t chunks) {
  return physical * chunks + chunk;
}

/// Rank of a lane among the lanes before it whose pairs go to the same expert, from the mask
/// of lanes sharing its expert (bit i = lane i).
FUSCO_HOST_DEVICE inline int layout_rank_in_group(uint32_t same_expert, int lane) {
  const uint32_t before = same_expert & ((uint32_t{1} << lane) - 1u);
#if defined(__CUDA_ARCH__)
  return __popc(before);
#else
  return __builtin_popcount(before);
#endif
}

/// True for the last lane of its group: it advances the expert's cursor for the group.
FUSCO_HOST_DEVICE inline bool layout_last_in_group(uint32_t same_expert, int lane) {
  return (same_expert >> lane) == 1u;
}

}  // namespace fusco::core
