#include "model/redundant_placement.hpp"

#include <algorithm>
#include <string>

namespace fusco::plan {

Result<std::vector<std::vector<int32_t>>> place_redundant_experts(const std::vector<int64_t>& loads,
                                                                  int world_size,
                                                                  int64_t extra_copies) {
  const auto experts = static_cast<int64_t>(loads.size());
  if (world_size < 1 || experts < 1 || experts % world_size != 0) {
    return Status(StatusCode::kInvalidArgument,
                  "redundant placement needs E (" + std::to_string(experts) +
                      ") to be a positive multiple of the world size (" +
                      std::to_string(world_size) + ")");
  }
  if (extra_copies < 0 || extra_copies > experts * (world_size - 1)) {
    return Status(StatusCode::kInvalidArgument,
                  "redundant copies = " + std::to_string(extra_copies) + " is outside [0, " +
                      std::to_string(experts * (world_size - 1)) + "] (E * (W - 1))");
  }
  if (std::any_of(loads.begin(), loads.end(), [](int64_t load) { return load < 0; })) {
    return Status(StatusCode::kInvalidArgument, "expert loads must not be negative");
  }
  const int64_t per_rank = experts / world_size;
  std::vector<std::vector<int32_t>> replicas(static_cast<size_t>(experts));
  for (int64_t e = 0; e < experts; ++e) {
    replicas[static_cast<size_t>(e)].push_back(static_cast<int32_t>(e / per_rank));
  }
  auto per_copy = [&](int64_t e) {
    return static_cast<double>(loads[static_cast<size_t>(e)]) /
           static_cast<double>(replicas[static_cast<size_t>(e)].size());
  };
  std::vector<double> rank_load(static_cast<size_t>(world_size), 0.0);
  for (int64_t e = 0; e < experts; ++e) {
    rank_load[static_cast<size_t>(e / per_rank)] += per_copy(e);
  }
  for (int64_t copy = 0; copy < extra_copies; ++copy) {
    int64_t hottest = -1;
    for (int64_t e = 0; e < experts; ++e) {
      if (static_cast<int>(replicas[static_cast<size_t>(e)].size()) == world_size) continue;
      if (hottest < 0 || per_copy(e) > per_copy(hottest)) hottest = e;
    }
    std::vector<int32_t>& ranks = replicas[static_cast<size_t>(hottest)];
    int target = -1;
    for (int r = 0; r < world_size; ++r) {
      if (std::find(ranks.begin(), ranks.end(), r) != ranks.end()) continue;
      if (target < 0 ||
          rank_load[static_cast<size_t>(r)] < rank_load[static_cast<size_t>(target)]) {
        target = r;
      }
    }
    const double before = per_copy(hottest);
    ranks.push_back(target);
    const double after = per_copy(hottest);
    for (int32_t r : ranks) {
      rank_load[static_cast<size_t>(r)] += after - (r == target ? 0.0 : before);
    }
  }
  return replicas;
}

}  // namespace fusco::plan
