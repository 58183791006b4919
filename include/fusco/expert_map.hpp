#pragma once

#include <cstdint>
#include <vector>

#include "fusco/status.hpp"

namespace fusco {

/// Which rank holds each logical expert.
///
/// The default map is contiguous: with E experts and W ranks, rank r owns experts
/// [r*E/W, (r+1)*E/W) (E must be a multiple of W). An explicit owner list gives each expert
/// its rank and allows uneven counts (a rank may own no expert). A replica list gives each
/// expert one or more ranks holding a copy (redundant experts, as EPLB-style placement makes
/// them); the planner then picks one replica for every (token, slot). On every rank, a local
/// slot is one expert (or replica) the rank holds, in ascending logical expert id.
class ExpertMap {
 public:
  /// The most logical experts a plan takes (2^20, a "million experts" layer): per-expert
  /// counts are exchanged between ranks, so E drives allocations of O(world_size * E).
  static constexpr int64_t kMaxExperts = int64_t{1} << 20;

  /// The contiguous map, resolved against E and W when a plan is made.
  ExpertMap() = default;
  /// Same as the default constructor, spelled out.
  static ExpertMap contiguous() { return ExpertMap(); }
  /// An explicit map: `owners[e]` is the rank that owns expert e (owners.size() == E).
  static ExpertMap from_owners(std::vector<int32_t> owners);
  /// A map with redundant experts: `replicas[e]` lists the distinct ranks that hold a copy of
  /// expert e (replicas.size() == E, each list non-empty). The first rank of a list is the
  /// expert's primary, where all its rows would go without balancing. Every valid
  /// (token, slot) goes to exactly one replica, chosen by the planner: the sender's own rank
  /// if it holds one, else a replica on the sender's node, else the least loaded replica
  /// (see docs/design.md, "Replica choice"). Deterministic: equal inputs give equal plans.
  static ExpertMap with_replicas(std::vector<std::vector<int32_t>> replicas);

  /// True for a map made by with_replicas (even when every list has one rank).
  bool has_replicas() const { return !replicas_.empty(); }
  /// The replica lists (empty unless has_replicas()).
  const std::vector<std::vector<int32_t>>& replicas() const { return replicas_; }

  /// True for the contiguous map.
  bool is_contiguous() const { return contiguous_; }
  /// The explicit owner list: each expert's primary rank (empty for the contiguous map).
  const std::vector<int32_t>& owners() const { return owners_; }

  /// Checks the map against `num_experts` and `world_size`: E divisible by W for the
  /// contiguous map; one owner per expert, each in [0, W), for an explicit one; for replica
  /// lists, one non-empty list of distinct ranks in [0, W) per expert.
  Status validate(int64_t num_experts, int world_size) const;

  /// A 64-bit fingerprint of the map as resolved for `num_experts` and `world_size`; ranks
  /// compare fingerprints to catch maps that differ between them.
  uint64_t fingerprint(int64_t num_experts, int world_size) const;

 private:
  Status validate_replicas(int world_size) const;

  bool contiguous_ = true;
  std::vector<int32_t> owners_;
  std::vector<std::vector<int32_t>> replicas_;
};

}  // namespace fusco
