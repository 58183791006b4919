#pragma once

// The direct path of the GPU engine, per row: where dispatch stores a row in a peer's receive
// buffer and where combine reads a term's expert output, through a table of the node's
// buffers (device pointers of logical ranks on one GPU, or NCCL LSA pointers of NVLink
// peers). The kernels call these functions; the CPU tests run them over host memory against
// the reference, so the index arithmetic the GPU runs is covered where no GPU is present.

#include <cstdint>
#include <cstring>

#include "core/reduce_steps.hpp"
#include "fusco/host_device.hpp"

namespace fusco::core {

/// Most ranks one table reaches (an NVL72 rack): the table travels by value in kernel
/// arguments, so no upload precedes a launch.
inline constexpr int kMaxDirectPeers = 72;

/// One buffer per rank of the node: its first byte and the bytes from one row to the next.
struct PeerTable {
  char* base[kMaxDirectPeers];
  int64_t pitch[kMaxDirectPeers];
};

/// A row dispatch stores: x[token] -> row `row` of rank `rank`'s receive buffer. The layout
/// of detail::DirectRow (plans upload theirs as they are). Plans made on the device keep one
/// store per (token, slot); rank kNothing marks a slot that delivers no row.
struct DirectStore {
  int32_t token;
  int32_t rank;
  int64_t row;

  static constexpr int32_t kNothing = -1;
};

/// One term of a combine sum: weight of top-k slot `slot` (or 1 for kUnitWeight) times row
/// `row` of rank `rank`'s expert output. The layout of detail::CombineTerm.
struct DirectTerm {
  int32_t rank;
  int32_t slot;
  int64_t row;

  static constexpr int32_t kUnitWeight = -1;
};

/// Where dispatch stores `store`'s row.
FUSCO_HOST_DEVICE inline char* store_destination(const PeerTable& peers, const DirectStore& store) {
  return peers.base[store.rank] + store.row * peers.pitch[store.rank];
}

/// The expert output row a combine term reads.
FUSCO_HOST_DEVICE inline const char* term_source(const PeerTable& peers, const DirectTerm& term) {
  return peers.base[term.rank] + term.row * peers.pitch[term.rank];
}

/// The weight a combine term multiplies by: topk_weights[token, slot], or 1.
FUSCO_HOST_DEVICE inline float term_weight(const float* topk_weights, int64_t topk, int64_t token,
                                           const DirectTerm& term) {
  return term.slot == DirectTerm::kUnitWeight ? 1.0f : topk_weights[token * topk + term.slot];
}

/// Element `h` of a combine output row before the final rounding (its weights: topk_weights
/// row `t`, the token itself or a relayed entry's token): groups [0, groups),
/// group g holding terms [group_begin[g], group_begin[g + 1]) (0 without groups).
FUSCO_HOST_DEVICE inline float combine_token_element(const PeerTable& expert_out,
                                                     const DirectTerm* terms,
                                                     const int64_t* group_begin, int64_t groups,
                                                     const float* topk_weights, int64_t topk,
                                                     int64_t t, int64_t h, RowType type) {
  CombineAccumulator sum;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = group_begin[g]; i < group_begin[g + 1]; ++i) {
      sum.add(term_weight(topk_weights, topk, t, terms[i]),
              load_element(term_source(expert_out, terms[i]), h, type), i == group_begin[g]);
    }
    sum.close_group(g, groups, type);
  }
  return sum.total;
}

/// Copies words i, i + stride, ... (kCount of them, each kSize bytes, a power of two) from
/// `src` to `dst`: on the device all loads are issued before the stores; on the host (where
/// the buffers are byte arrays) memcpy.
template <int kSize, int kCount>
FUSCO_HOST_DEVICE inline void copy_words(char* dst, const char* src, int64_t i, int64_t stride) {
#if defined(__CUDA_ARCH__)
  struct alignas(kSize) Word {
    char b[kSize];
  };
  Word words[kCount];
#pragma unroll
  for (int n = 0; n < kCount; ++n) {
    words[n] = reinterpret_cast<const Word*>(src)[i + n * stride];
  }
#pragma unroll
  for (int n = 0; n < kCount; ++n) {
    reinterpret_cast<Word*>(dst)[i + n * stride] = words[n];
  }
#else
  for (int n = 0; n < kCount; ++n) {
    std::memcpy(dst + (i + n * stride) * kSize, src + (i + n * stride) * kSize, kSize);
  }
#endif
}

/// Copies `bytes` from `src` to `dst` as lane `lane` of `lanes` cooperating threads: 16-byte
/// words when both ends and the length allow (four in flight per lane), else 4-byte words,
/// else bytes.
FUSCO_HOST_DEVICE inline void copy_row_part(char* dst, const char* src, int64_t bytes, int lane,
                                            int lanes) {
  const auto ends = reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(src) |
                    static_cast<uintptr_t>(bytes);
  if (ends % 16 == 0) {
    const int64_t words = bytes / 16;
    int64_t i = lane;
    for (; i + 3 * lanes < words; i += 4 * lanes) {
      copy_words<16, 4>(dst, src, i, lanes);
    }
    for (; i < words; i += lanes) {
      copy_words<16, 1>(dst, src, i, lanes);
    }
  } else if (ends % 4 == 0) {
    for (int64_t i = lane; i < bytes / 4; i += lanes) {
      copy_words<4, 1>(dst, src, i, lanes);
    }
  } else {
    for (int64_t i = lane; i < bytes; i += lanes) {
      copy_words<1, 1>(dst, src, i, lanes);
    }
  }
}

}  // namespace fusco::core
