#pragma once

// Routing generators for tests and fusco_bench: top-k expert ids per token as a router would
// produce them, under named scenarios.

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "fusco/status.hpp"
#include "fusco/topology.hpp"

namespace fusco::testing {

enum class RoutingKind { kUniform, kZipf, kNodeConfined, kHot };

/// A routing scenario: uniform; zipf:<s> (expert popularity ~ 1/rank^s); node-confined (every
/// expert on the sender's own node, contiguous map); hot:<f> (a fraction f of tokens send
/// their first slot to expert 0).
struct RoutingSpec {
  RoutingKind kind = RoutingKind::kUniform;
  double param = 0.0;
  std::string to_string() const;
};

/// Parses "uniform", "zipf:<s>" (s > 0), "node-confined" or "hot:<f>" (0 <= f <= 1).
Result<RoutingSpec> parse_routing(std::string_view text);

/// [T, k] int32 expert ids for `rank`, k distinct experts per token (k <= E) drawn by the
/// scenario, contiguous expert map. Deterministic in `seed` and `rank`.
std::vector<int32_t> generate_routing(const RoutingSpec& spec, int64_t tokens, int topk,
                                      int64_t num_experts, int rank, const Topology& topology,
                                      uint64_t seed);

/// [T, k] ids uniform in [0, E) with duplicates allowed; each slot is -1 with probability
/// `masked`, and a token is fully masked with probability `masked_token`.
std::vector<int64_t> random_topk(int64_t tokens, int topk, int64_t num_experts, double masked,
                                 double masked_token, std::mt19937_64& rng);

}  // namespace fusco::testing
