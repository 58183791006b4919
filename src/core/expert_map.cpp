#include "fusco/expert_map.hpp"

#include <string>

namespace fusco {

ExpertMap ExpertMap::from_owners(std::vector<int32_t> owners) {
  ExpertMap map;
  map.contiguous_ = false;
  map.owners_ = std::move(owners);
  return map;
}

Status ExpertMap::validate(int64_t num_experts, int world_size) const {
  if (num_experts < 1) {
    return Status(StatusCode::kInvalidArgument,
                  "num_experts must be >= 1, got " + std::to_string(num_experts));
  }
  if (contiguous_) {
    if (num_experts % world_size != 0) {
      return Status(StatusCode::kInvalidArgument,
                    "num_experts " + std::to_string(num_experts) +
                        " is not a multiple of world_size " + std::to_string(world_size) +
                        " (the contiguous expert map needs it; pass an explicit owner list)");
    }
    return Status();
  }
  if (static_cast<int64_t>(owners_.size()) != num_experts) {
    return Status(StatusCode::kInvalidArgument, "expert_map has " + std::to_string(owners_.size()) +
                                                    " owners but num_experts is " +
                                                    std::to_string(num_experts));
  }
  for (size_t e = 0; e < owners_.size(); ++e) {
    if (owners_[e] < 0 || owners_[e] >= world_size) {
      return Status(StatusCode::kInvalidArgument,
                    "expert_map[" + std::to_string(e) + "] = " + std::to_string(owners_[e]) +
                        " is outside [0, world_size=" + std::to_string(world_size) + ")");
    }
  }
  return Status();
}

uint64_t ExpertMap::fingerprint(int64_t num_experts, int world_size) const {
  // FNV-1a over the resolved owner of every expert.
  uint64_t hash = 1469598103934665603ull;
  auto mix = [&hash](uint64_t value) {
    for (int byte = 0; byte < 8; ++byte) {
      hash ^= (value >> (8 * byte)) & 0xffu;
      hash *= 1099511628211ull;
    }
  };
  mix(static_cast<uint64_t>(num_experts));
  mix(static_cast<uint64_t>(world_size));
  if (contiguous_) {
    mix(0xC0471600u);
  } else {
    for (int32_t owner : owners_) {
      mix(static_cast<uint64_t>(static_cast<uint32_t>(owner)));
    }
  }
  return hash;
}

}  // namespace fusco
