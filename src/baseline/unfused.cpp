#include "baseline/unfused.hpp"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/layout.hpp"
#include "engine/row_math.hpp"
#include "transport/inproc_transport.hpp"

namespace fusco::baseline {

namespace {

struct BlockHeader {
  const std::byte* buffer;
  const int64_t* offsets;  // per destination, rows
};

void copy_rows(std::byte* dst, const std::byte* src, int64_t rows, size_t row_bytes) {
  if (rows > 0 && row_bytes > 0) {
    std::memcpy(dst, src, static_cast<size_t>(rows) * row_bytes);
  }
}

}  // namespace

std::vector<UnfusedRank> UnfusedRank::create_group(int world_size) {
  auto group = std::make_shared<transport::InprocGroup>(world_size);
  std::vector<UnfusedRank> ranks;
  ranks.reserve(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    UnfusedRank rank(r, world_size);
    rank.transport_ = std::make_unique<transport::InprocTransport>(group, r);
    ranks.push_back(std::move(rank));
  }
  return ranks;
}

UnfusedRank UnfusedRank::with_exchange(int rank, int world_size, BlockAllToAll exchange) {
  UnfusedRank made(rank, world_size);
  made.exchange_ = std::move(exchange);
  return made;
}

std::byte* UnfusedRank::scratch(std::vector<std::byte>& buffer, int64_t rows, size_t row_bytes) {
  const size_t bytes = std::max<size_t>(1, static_cast<size_t>(rows) * row_bytes);
  if (buffer.size() < bytes) {
    buffer.resize(bytes);
  }
  return buffer.data();
}

Status UnfusedRank::prepare(const TensorView& topk_idx, int64_t num_experts,
                            const ExpertMap& expert_map, int64_t timeout_ms) {
  const int world = world_;
  const int me = rank_;
  timeout_ms_ = timeout_ms;
  FUSCO_RETURN_IF_ERROR(core::check_topk_idx(topk_idx));
  Result<core::ResolvedExpertMap> map = core::resolve_expert_map(expert_map, num_experts, world);
  FUSCO_RETURN_IF_ERROR(map.status());
  const core::ResolvedExpertMap& m = map.value();
  num_tokens_ = topk_idx.shape[0];
  topk_ = static_cast<int>(topk_idx.shape[1]);

  // Argsort of the valid pairs by physical expert (rank-major), stable in (token, slot).
  std::vector<int64_t> key(static_cast<size_t>(num_tokens_ * topk_));
  permuted_pair_.clear();
  for (int64_t flat = 0; flat < num_tokens_ * topk_; ++flat) {
    const int64_t e = core::read_expert(topk_idx, flat);
    if (e < -1 || e >= num_experts) {
      return Status(StatusCode::kInvalidArgument, "topk_idx holds expert " + std::to_string(e) +
                                                      " outside [-1, " +
                                                      std::to_string(num_experts) + ")");
    }
    key[static_cast<size_t>(flat)] = e < 0 ? -1 : m.physical[static_cast<size_t>(e)];
    if (e >= 0) {
      permuted_pair_.push_back(flat);
    }
  }
  std::stable_sort(permuted_pair_.begin(), permuted_pair_.end(), [&](int64_t a, int64_t b) {
    return key[static_cast<size_t>(a)] < key[static_cast<size_t>(b)];
  });
  position_of_pair_.assign(key.size(), -1);
  for (size_t i = 0; i < permuted_pair_.size(); ++i) {
    position_of_pair_[static_cast<size_t>(permuted_pair_[i])] = static_cast<int64_t>(i);
  }

  // Split sizes per (destination, local expert), exchanged: per_physical is rank-major, so
  // destination d's counts are the contiguous block of its local experts.
  std::vector<int64_t> per_physical(static_cast<size_t>(m.rank_begin.back()), 0);
  for (int64_t pair : permuted_pair_) {
    ++per_physical[static_cast<size_t>(key[static_cast<size_t>(pair)])];
  }
  send_counts_.assign(static_cast<size_t>(world), 0);
  send_offsets_.assign(static_cast<size_t>(world), 0);
  std::vector<int64_t> count_sizes(static_cast<size_t>(world));
  std::vector<int64_t> count_offsets(static_cast<size_t>(world));
  for (int d = 0; d < world; ++d) {
    const auto dd = static_cast<size_t>(d);
    count_offsets[dd] = m.rank_begin[dd];
    count_sizes[dd] = m.rank_begin[dd + 1] - m.rank_begin[dd];
    for (int64_t p = m.rank_begin[dd]; p < m.rank_begin[dd + 1]; ++p) {
      send_counts_[dd] += per_physical[static_cast<size_t>(p)];
    }
    if (d > 0) {
      send_offsets_[dd] = send_offsets_[dd - 1] + send_counts_[dd - 1];
    }
  }
  local_experts_ = m.num_local(me);
  const auto experts = static_cast<size_t>(local_experts_);
  chunk_rows_.assign(static_cast<size_t>(world) * experts, 0);
  std::vector<int64_t> expect_sizes(static_cast<size_t>(world), local_experts_);
  std::vector<int64_t> expect_offsets(static_cast<size_t>(world));
  for (int s = 0; s < world; ++s) {
    expect_offsets[static_cast<size_t>(s)] = s * local_experts_;
  }
  FUSCO_RETURN_IF_ERROR(all_to_all(reinterpret_cast<const std::byte*>(per_physical.data()),
                                   count_sizes, count_offsets,
                                   reinterpret_cast<std::byte*>(chunk_rows_.data()), expect_sizes,
                                   expect_offsets, sizeof(int64_t), "unfused prepare"));
  recv_counts_.assign(static_cast<size_t>(world), 0);
  recv_offsets_.assign(static_cast<size_t>(world), 0);
  tokens_per_expert_.assign(experts, 0);
  for (int s = 0; s < world; ++s) {
    for (size_t e = 0; e < experts; ++e) {
      recv_counts_[static_cast<size_t>(s)] += chunk_rows_[static_cast<size_t>(s) * experts + e];
      tokens_per_expert_[e] += chunk_rows_[static_cast<size_t>(s) * experts + e];
    }
    if (s > 0) {
      recv_offsets_[static_cast<size_t>(s)] =
          recv_offsets_[static_cast<size_t>(s) - 1] + recv_counts_[static_cast<size_t>(s) - 1];
    }
  }
  num_recv_rows_ = std::accumulate(recv_counts_.begin(), recv_counts_.end(), int64_t{0});
  chunk_source_major_.assign(chunk_rows_.size(), 0);
  chunk_expert_major_.assign(chunk_rows_.size(), 0);
  int64_t at = 0;
  for (size_t i = 0; i < chunk_rows_.size(); ++i) {  // (source, expert) order
    chunk_source_major_[i] = at;
    at += chunk_rows_[i];
  }
  at = 0;
  for (size_t e = 0; e < experts; ++e) {  // (expert, source) order
    for (int s = 0; s < world; ++s) {
      const size_t i = static_cast<size_t>(s) * experts + e;
      chunk_expert_major_[i] = at;
      at += chunk_rows_[i];
    }
  }
  return Status();
}

Status UnfusedRank::all_to_all(const std::byte* send, const std::vector<int64_t>& send_counts,
                               const std::vector<int64_t>& send_offsets, std::byte* recv,
                               const std::vector<int64_t>& recv_counts,
                               const std::vector<int64_t>& recv_offsets, size_t row_bytes,
                               const char* what) {
  if (exchange_) {
    return exchange_(send, send_counts, send_offsets, recv, recv_counts, recv_offsets, row_bytes);
  }
  const auto deadline = transport::Deadline::after_ms(timeout_ms_);
  const BlockHeader mine{send, send_offsets.data()};
  std::vector<const void*> all;
  FUSCO_RETURN_IF_ERROR(transport_->sync(&mine, &all, deadline, what));
  const auto me = static_cast<size_t>(rank_);
  for (size_t s = 0; s < all.size(); ++s) {
    const auto* peer = static_cast<const BlockHeader*>(all[s]);
    // The peer's block for this rank has as many rows as this rank expects from it.
    copy_rows(recv + static_cast<size_t>(recv_offsets[s]) * row_bytes,
              peer->buffer + static_cast<size_t>(peer->offsets[me]) * row_bytes, recv_counts[s],
              row_bytes);
  }
  return transport_->barrier(deadline, what);
}

Status UnfusedRank::dispatch(const TensorView& x, const TensorView& recv) {
  const size_t row_bytes = static_cast<size_t>(x.shape[1]) * dtype_size(x.dtype);
  // 1. Permute: every (token, slot) row into expert order.
  std::byte* permuted = scratch(permuted_, static_cast<int64_t>(permuted_pair_.size()), row_bytes);
  const auto* rows = static_cast<const std::byte*>(x.data);
  for (size_t i = 0; i < permuted_pair_.size(); ++i) {
    copy_rows(permuted + i * row_bytes,
              rows + static_cast<size_t>(permuted_pair_[i] / topk_) * row_bytes, 1, row_bytes);
  }
  // 2. All-to-all of contiguous per-rank blocks into source-major order.
  std::byte* source_major = scratch(source_major_, num_recv_rows_, row_bytes);
  FUSCO_RETURN_IF_ERROR(all_to_all(permuted, send_counts_, send_offsets_, source_major,
                                   recv_counts_, recv_offsets_, row_bytes, "unfused dispatch"));
  // 3. Re-sort (source, expert) chunks into expert-major order.
  auto* out = static_cast<std::byte*>(recv.data);
  for (size_t i = 0; i < chunk_rows_.size(); ++i) {
    copy_rows(out + static_cast<size_t>(chunk_expert_major_[i]) * row_bytes,
              source_major + static_cast<size_t>(chunk_source_major_[i]) * row_bytes,
              chunk_rows_[i], row_bytes);
  }
  return Status();
}

Status UnfusedRank::combine(const TensorView& expert_out, const TensorView& weights,
                            const TensorView& out) {
  const int64_t hidden = expert_out.shape[1];
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(expert_out.dtype);
  // 1. Un-sort expert-major chunks back into source-major order.
  std::byte* source_major = scratch(source_major_, num_recv_rows_, row_bytes);
  const auto* y = static_cast<const std::byte*>(expert_out.data);
  for (size_t i = 0; i < chunk_rows_.size(); ++i) {
    copy_rows(source_major + static_cast<size_t>(chunk_source_major_[i]) * row_bytes,
              y + static_cast<size_t>(chunk_expert_major_[i]) * row_bytes, chunk_rows_[i],
              row_bytes);
  }
  // 2. All-to-all back into this rank's permuted order.
  std::byte* permuted = scratch(permuted_, static_cast<int64_t>(permuted_pair_.size()), row_bytes);
  FUSCO_RETURN_IF_ERROR(all_to_all(source_major, recv_counts_, recv_offsets_, permuted,
                                   send_counts_, send_offsets_, row_bytes, "unfused combine"));
  // 3. Unpermute with the weighted sum, slots in order, fp32.
  const auto* w = static_cast<const float*>(weights.data);
  auto* dst = static_cast<std::byte*>(out.data);
  // The same kernel as fusco, with the same prefetch of the next token's rows.
  auto collect = [&](int64_t t, std::vector<engine::ReduceTerm>& terms) {
    terms.clear();
    for (int j = 0; j < topk_; ++j) {
      const int64_t pos = position_of_pair_[static_cast<size_t>(t * topk_ + j)];
      if (pos >= 0) {
        terms.push_back({permuted + static_cast<size_t>(pos) * row_bytes, w[t * topk_ + j]});
      }
    }
  };
  std::vector<engine::ReduceTerm> current;
  std::vector<engine::ReduceTerm> next;
  if (num_tokens_ > 0) {
    collect(0, current);
  }
  for (int64_t t = 0; t < num_tokens_; ++t) {
    if (t + 1 < num_tokens_) {
      collect(t + 1, next);
      engine::prefetch_rows(expert_out.dtype, next.data(), next.size(), hidden);
    }
    std::byte* out_row = dst + static_cast<size_t>(t) * row_bytes;
    if (current.empty()) {
      if (row_bytes > 0) {
        std::memset(out_row, 0, row_bytes);
      }
    } else {
      const auto size = static_cast<int32_t>(current.size());
      engine::reduce_row(expert_out.dtype, current.data(), &size, 1, out_row, hidden);
    }
    std::swap(current, next);
  }
  return Status();
}

}  // namespace fusco::baseline
