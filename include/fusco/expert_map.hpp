#pragma once

#include <cstdint>
#include <vector>

#include "fusco/status.hpp"

namespace fusco {

/// Which rank owns each logical expert.
///
/// The default map is contiguous: with E experts and W ranks, rank r owns experts
/// [r*E/W, (r+1)*E/W) (E must be a multiple of W). An explicit owner list gives each expert
/// its rank and allows uneven counts (a rank may own no expert). On every rank, an expert's
/// local slot is its position among the experts that rank owns, in ascending expert id.
class ExpertMap {
 public:
  /// The contiguous map, resolved against E and W when a plan is made.
  ExpertMap() = default;
  /// Same as the default constructor, spelled out.
  static ExpertMap contiguous() { return ExpertMap(); }
  /// An explicit map: `owners[e]` is the rank that owns expert e (owners.size() == E).
  static ExpertMap from_owners(std::vector<int32_t> owners);

  /// True for the contiguous map.
  bool is_contiguous() const { return contiguous_; }
  /// The explicit owner list (empty for the contiguous map).
  const std::vector<int32_t>& owners() const { return owners_; }

  /// Checks the map against `num_experts` and `world_size`: E divisible by W for the
  /// contiguous map; one owner per expert, each in [0, W), for an explicit one.
  Status validate(int64_t num_experts, int world_size) const;

  /// A 64-bit fingerprint of the map as resolved for `num_experts` and `world_size`; ranks
  /// compare fingerprints to catch maps that differ between them.
  uint64_t fingerprint(int64_t num_experts, int world_size) const;

 private:
  bool contiguous_ = true;
  std::vector<int32_t> owners_;
};

}  // namespace fusco
