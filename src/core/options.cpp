#include "fusco/options.hpp"

#include <string>

namespace fusco {

const char* dedup_name(Dedup dedup) {
  switch (dedup) {
    case Dedup::kNone:
      return "none";
    case Dedup::kRank:
      return "rank";
    case Dedup::kNode:
      return "node";
  }
  return "invalid";
}

Result<Dedup> dedup_from_name(std::string_view name) {
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    if (name == dedup_name(dedup)) {
      return dedup;
    }
  }
  return Status(StatusCode::kInvalidArgument,
                "dedup '" + std::string(name) + "' is not known; expected none, rank or node");
}

const char* relay_policy_name(RelayPolicy policy) {
  switch (policy) {
    case RelayPolicy::kRailAligned:
      return "rail";
    case RelayPolicy::kBalanced:
      return "balanced";
  }
  return "invalid";
}

Result<RelayPolicy> relay_policy_from_name(std::string_view name) {
  for (RelayPolicy policy : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
    if (name == relay_policy_name(policy)) {
      return policy;
    }
  }
  return Status(StatusCode::kInvalidArgument,
                "relay policy '" + std::string(name) + "' is not known; expected rail or balanced");
}

Status PlanOptions::validate() const {
  if (dedup != Dedup::kNone && dedup != Dedup::kRank && dedup != Dedup::kNode) {
    return Status(StatusCode::kInvalidArgument,
                  "options.dedup has invalid code " + std::to_string(static_cast<int>(dedup)));
  }
  if (relay != RelayPolicy::kRailAligned && relay != RelayPolicy::kBalanced) {
    return Status(StatusCode::kInvalidArgument,
                  "options.relay has invalid code " + std::to_string(static_cast<int>(relay)));
  }
  if (chunk_bytes < 1 || chunk_bytes > (int64_t{1} << 30)) {
    return Status(StatusCode::kInvalidArgument,
                  "options.chunk_bytes = " + std::to_string(chunk_bytes) + " is outside [1, 2^30]");
  }
  if (timeout_ms < 1 || timeout_ms > 86400000) {
    return Status(
        StatusCode::kInvalidArgument,
        "options.timeout_ms = " + std::to_string(timeout_ms) + " is outside [1, 86400000]");
  }
  return Status();
}

}  // namespace fusco
