#pragma once

// Runs one routing case through the in-process communicator (one thread per rank) and
// compares dispatch and combine with the reference oracle, bit for bit.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fusco/fusco.hpp"
#include "testing/data.hpp"

namespace fusco::testing {

struct Case {
  int world = 4;
  int ranks_per_node = 2;
  int topk = 4;
  int64_t experts = 8;
  int64_t hidden = 16;
  DType dtype = DType::kBFloat16;
  int64_t tokens_each = 24;     // used when `tokens` is empty
  std::vector<int64_t> tokens;  // per rank
  Dedup dedup = Dedup::kNode;
  int64_t chunk_bytes = 256;                   // small, so the staged path runs many chunks
  std::vector<int32_t> owners;                 // explicit expert map when not empty
  std::vector<std::vector<int32_t>> replicas;  // replicated expert map when not empty
  RelayPolicy relay = RelayPolicy::kRailAligned;
  RecvLayout layout;                 // receive layout (default expert-major)
  int64_t stride_pad = 0;            // x and expert_out rows strided by H + stride_pad elements
  int64_t extra_cols = 0;            // > 0: an int32 companion tensor [T, extra_cols] rides along
  int64_t combine_buffer_bytes = 0;  // > 0: combine runs in rounds
  double masked = 0.1;               // probability of an unused slot
  double masked_token = 0.05;        // probability of a token with no slot at all
  bool int32_ids = false;
  std::vector<std::vector<int64_t>> ids;  // explicit routing per rank (overrides the random one)
  uint64_t seed = 1;
  bool direct_access = true;  // false: ranks behave like processes (every other rank staged)
  // Dispatch into Communicator::recv_buffer and combine from it (the expert outputs written
  // into it, as experts computing in place would), instead of buffers of the test's own.
  bool library_recv = false;
  ProcessRelays process_relays = ProcessRelays::kAuto;  // relays between processes (node dedup)

  std::string describe() const;
};

/// A random case drawn from `seed`: world 1..9, any ranks per node, k 1..8, contiguous,
/// uneven explicit or replicated maps, both relay policies, every receive layout, strided rows,
/// companion tensors, combine in rounds, H
/// 1/7/128, every dtype and dedup mode, chunk sizes from one byte to 1 MiB, T = 0 on some ranks,
/// int32 or int64 ids, with or without direct access, every third seed into the library's
/// receive buffer.
Case random_case(uint64_t seed);

/// `c` for processes: `world` ranks, `ranks_per_node` per node, no direct access, tokens,
/// experts and expert owners (replicas too, still distinct) folded onto the world.
Case fitted_to(Case c, int world, int ranks_per_node);

/// One rank's part of a run: its plan's counts and stats, dispatch and combine results.
struct RankResult {
  Status status;
  std::vector<std::byte> recv;
  std::vector<std::byte> extra_recv;  // the companion tensor's rows, when the case has one
  std::vector<std::byte> out;         // combine dtypes only
  std::vector<int64_t> tokens_per_expert;
  std::vector<int64_t> padded_tokens_per_expert;
  std::vector<int64_t> dropped_per_expert;
  std::vector<int32_t> recv_local_experts;
  std::vector<int64_t> local_experts;
  PlanStats stats;
};

// The inputs of rank `rank` of a case, regenerated from its seed wherever they are needed.
int64_t tokens_of(const Case& c, int rank);
ExpertMap map_of(const Case& c);
PlanOptions options_of(const Case& c);
DType weight_dtype_of(const Case& c);
std::vector<int64_t> routing_of(const Case& c, int rank);            ///< topk_idx [T, k]
std::vector<std::byte> x_of(const Case& c, int rank);                ///< [T, H] contiguous
std::vector<std::byte> extra_of(const Case& c, int rank);            ///< [T, extra_cols] int32
std::vector<std::byte> y_of(const Case& c, int rank, int64_t rows);  ///< expert_out [rows, H]
std::vector<std::byte> weights_of(const Case& c, int rank);          ///< [T, k]
/// `rows` contiguous rows of `data` spread to the case's row stride (H + stride_pad
/// elements), the gaps filled with a pattern that must never be read.
std::vector<std::byte> strided(std::vector<std::byte> data, const Case& c, int64_t rows);
TensorView strided_view(std::byte* data, const Case& c, int64_t rows);

/// A rank's plan counts and stats (dispatch and combine results left empty).
RankResult counts_of(const Plan& plan);

/// Plans, dispatches and combines rank `rank`'s part of `c` through `comm`. Inputs come from
/// the case's seed, so every process of a run (and the reference) regenerates the same ones.
RankResult run_rank(const Case& c, Communicator& comm, int rank);

/// What the reference oracle gives every rank for `c`.
struct Expected {
  std::vector<std::vector<std::byte>> recv;
  std::vector<std::vector<std::byte>> extra_recv;
  std::vector<std::vector<std::byte>> out;
  std::vector<std::vector<int64_t>> tokens_per_expert;
  std::vector<std::vector<int64_t>> padded_tokens_per_expert;
  std::vector<std::vector<int64_t>> dropped_per_expert;
  std::vector<std::vector<int32_t>> recv_local_experts;
};
Expected expected_of(const Case& c);

/// Rank `rank`'s result against the reference, bit for bit.
::testing::AssertionResult matches_expected(const Case& c, const Expected& want, int rank,
                                            const RankResult& got);

/// Every rank's result (got[r] for rank r) against the reference of `c`, bit for bit.
::testing::AssertionResult every_rank_matches(const Case& c, const std::vector<RankResult>& got);

/// What one run produced on every rank.
struct Outcome {
  std::vector<std::vector<std::byte>> recv;  // dispatch result per rank
  std::vector<std::vector<std::byte>> out;   // combine result per rank (combine dtypes only)
  std::vector<std::vector<int64_t>> tokens_per_expert;
  std::vector<std::vector<int64_t>> dropped_per_expert;
  std::vector<std::vector<int64_t>> local_experts;
  std::vector<PlanStats> stats;
  std::vector<RankResult> results;  // everything each rank produced
  bool ok = false;
};

/// Runs `c` with in-process ranks; fails the current test on any error status.
Outcome run_case(const Case& c);

/// Runs `c` and checks recv, tokens_per_expert and out against the reference.
::testing::AssertionResult matches_reference(const Case& c);

/// matches_reference for `c` under every dedup mode, with and without direct access (ranks
/// as threads and ranks behaving like processes).
::testing::AssertionResult matches_reference_in_every_mode(Case c);

}  // namespace fusco::testing
