#include "fusco/expert_map.hpp"

#include <string>

namespace fusco {

ExpertMap ExpertMap::from_owners(std::vector<int32_t> owners) {
  ExpertMap map;
  map.contiguous_ = false;
  map.owners_ = std::move(owners);
  return map;
}

ExpertMap ExpertMap::with_replicas(std::vector<std::vector<int32_t>> replicas) {
  ExpertMap map;
  map.contiguous_ = false;
  map.owners_.reserve(replicas.size());
  for (const std::vector<int32_t>& ranks : replicas) {
    map.owners_.push_back(ranks.empty() ? -1 : ranks.front());
  }
  map.replicas_ = std::move(replicas);
  return map;
}

Status ExpertMap::validate(int64_t num_experts, int world_size) const {
  if (num_experts < 1 || num_experts > kMaxExperts) {
    return Status(StatusCode::kInvalidArgument,
                  "num_experts = " + std::to_string(num_experts) +
                      " is outside [1, 2^20 = " + std::to_string(kMaxExperts) + "]");
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
    return Status(StatusCode::kInvalidArgument,
                  "expert_map has " + std::to_string(owners_.size()) +
                      (has_replicas() ? " replica lists" : " owners") + " but num_experts is " +
                      std::to_string(num_experts));
  }
  if (has_replicas()) {
    return validate_replicas(world_size);
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

Status ExpertMap::validate_replicas(int world_size) const {
  std::vector<uint8_t> seen(static_cast<size_t>(world_size), 0);
  for (size_t e = 0; e < replicas_.size(); ++e) {
    const std::vector<int32_t>& ranks = replicas_[e];
    const std::string name = "expert_map replicas[" + std::to_string(e) + "]";
    if (ranks.empty()) {
      return Status(StatusCode::kInvalidArgument,
                    name + " is empty; every expert needs at least one rank");
    }
    for (size_t i = 0; i < ranks.size(); ++i) {
      if (ranks[i] < 0 || ranks[i] >= world_size) {
        return Status(StatusCode::kInvalidArgument,
                      name + "[" + std::to_string(i) + "] = " + std::to_string(ranks[i]) +
                          " is outside [0, world_size=" + std::to_string(world_size) + ")");
      }
      if (seen[static_cast<size_t>(ranks[i])] != 0) {
        return Status(StatusCode::kInvalidArgument,
                      name + " names rank " + std::to_string(ranks[i]) +
                          " twice; a rank holds at most one copy of an expert");
      }
      seen[static_cast<size_t>(ranks[i])] = 1;
    }
    for (int32_t rank : ranks) {
      seen[static_cast<size_t>(rank)] = 0;
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
  } else if (has_replicas()) {
    mix(0x5E71CA5u);
    for (const std::vector<int32_t>& ranks : replicas_) {
      mix(ranks.size());
      for (int32_t rank : ranks) {
        mix(static_cast<uint64_t>(static_cast<uint32_t>(rank)));
      }
    }
  } else {
    for (int32_t owner : owners_) {
      mix(static_cast<uint64_t>(static_cast<uint32_t>(owner)));
    }
  }
  return hash;
}

}  // namespace fusco
