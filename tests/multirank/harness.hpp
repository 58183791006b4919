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
  int64_t chunk_bytes = 256;    // small, so the staged path runs many chunks
  std::vector<int32_t> owners;  // explicit expert map when not empty
  double masked = 0.1;          // probability of an unused slot
  double masked_token = 0.05;   // probability of a token with no slot at all
  bool int32_ids = false;
  std::vector<std::vector<int64_t>> ids;  // explicit routing per rank (overrides the random one)
  uint64_t seed = 1;
  bool direct_access = true;  // false: ranks behave like processes (every other rank staged)

  std::string describe() const;
};

/// What one run produced on every rank.
struct Outcome {
  std::vector<std::vector<std::byte>> recv;  // dispatch result per rank
  std::vector<std::vector<std::byte>> out;   // combine result per rank (combine dtypes only)
  std::vector<std::vector<int64_t>> tokens_per_expert;
  std::vector<PlanStats> stats;
  // Inputs, kept for the reference check.
  std::vector<std::vector<int64_t>> ids_;
  std::vector<std::vector<std::byte>> x_, y_;
  std::vector<std::vector<std::byte>> weights_;  // fp32, or fp64 for fp64 cases
};

/// Runs `c`; fails the current test on any error status.
Outcome run_case(const Case& c);

/// Runs `c` and checks recv, tokens_per_expert and out against the reference.
::testing::AssertionResult matches_reference(const Case& c);

}  // namespace fusco::testing
