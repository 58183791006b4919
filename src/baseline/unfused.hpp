#pragma once

// The unfused baseline, done the Megatron + NCCL way inside one process: permute rows by
// expert (argsort + index copy of every (token, slot) row), all-to-all of contiguous per-rank
// blocks, then re-sort the received (source, expert) chunks into expert-major order; combine
// is the reverse (un-sort, all-to-all back, unpermute with the weighted fp32 sum). Results
// equal the reference with dedup = none. It exists to be measured against. The all-to-all is
// the in-process group's (peers' blocks read in place) or one the caller plugs in
// (fusco_bench's process mode: MPI_Alltoallv).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "fusco/expert_map.hpp"
#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "transport/transport.hpp"

namespace fusco::baseline {

/// Moves contiguous per-rank blocks: rows send[send_offsets[d] ..] (send_counts[d] of them) go
/// to rank d; rank s's block for this rank lands at recv + recv_offsets[s] (recv_counts[s]
/// rows). Collective.
using BlockAllToAll =
    std::function<Status(const std::byte* send, const std::vector<int64_t>& send_counts,
                         const std::vector<int64_t>& send_offsets, std::byte* recv,
                         const std::vector<int64_t>& recv_counts,
                         const std::vector<int64_t>& recv_offsets, size_t row_bytes)>;

class UnfusedRank {
 public:
  /// `world_size` ranks of a new in-process group; each rank is driven by its own thread.
  static std::vector<UnfusedRank> create_group(int world_size);
  /// Rank `rank` of `world_size` whose blocks move through `exchange`.
  static UnfusedRank with_exchange(int rank, int world_size, BlockAllToAll exchange);

  /// Collective: argsort of the routing and the split-size exchange (what Megatron's token
  /// dispatcher does before each all-to-all).
  Status prepare(const TensorView& topk_idx, int64_t num_experts, const ExpertMap& expert_map,
                 int64_t timeout_ms);

  int64_t num_recv_rows() const { return num_recv_rows_; }
  const std::vector<int64_t>& tokens_per_expert() const { return tokens_per_expert_; }

  /// Collective: x [T, H] -> recv [num_recv_rows, H] expert-major.
  Status dispatch(const TensorView& x, const TensorView& recv);
  /// Collective: expert_out [num_recv_rows, H] fp32/fp16/bf16, weights [T, k] fp32 ->
  /// out [T, H].
  Status combine(const TensorView& expert_out, const TensorView& weights, const TensorView& out);

 private:
  UnfusedRank(int rank, int world_size) : rank_(rank), world_(world_size) {}

  // BlockAllToAll through exchange_, or through the in-process group (transport_).
  Status all_to_all(const std::byte* send, const std::vector<int64_t>& send_counts,
                    const std::vector<int64_t>& send_offsets, std::byte* recv,
                    const std::vector<int64_t>& recv_counts,
                    const std::vector<int64_t>& recv_offsets, size_t row_bytes, const char* what);
  std::byte* scratch(std::vector<std::byte>& buffer, int64_t rows, size_t row_bytes);

  int rank_;
  int world_;
  BlockAllToAll exchange_;
  std::unique_ptr<transport::Transport> transport_;
  int64_t timeout_ms_ = 60000;
  int64_t num_tokens_ = 0;
  int topk_ = 0;
  std::vector<int64_t> permuted_pair_;               // permuted row i holds pair (token * k + slot)
  std::vector<int64_t> position_of_pair_;            // inverse; -1 for unused slots
  std::vector<int64_t> send_counts_, send_offsets_;  // per destination rank, in rows
  std::vector<int64_t> recv_counts_, recv_offsets_;  // per source rank, source-major
  // Chunk (source s, local expert e): rows in source-major and expert-major order.
  std::vector<int64_t> chunk_rows_, chunk_source_major_, chunk_expert_major_;
  int64_t local_experts_ = 0;
  int64_t num_recv_rows_ = 0;
  std::vector<int64_t> tokens_per_expert_;
  std::vector<std::byte> permuted_, source_major_;
};

}  // namespace fusco::baseline
