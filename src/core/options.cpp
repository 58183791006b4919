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

const char* process_relays_name(ProcessRelays mode) {
  switch (mode) {
    case ProcessRelays::kOn:
      return "on";
    case ProcessRelays::kOff:
      return "off";
    default:
      return "auto";
  }
}

Result<ProcessRelays> process_relays_from_name(std::string_view name) {
  for (ProcessRelays mode : {ProcessRelays::kAuto, ProcessRelays::kOn, ProcessRelays::kOff}) {
    if (name == process_relays_name(mode)) {
      return mode;
    }
  }
  return Status(StatusCode::kInvalidArgument, "process relays '" + std::string(name) +
                                                  "' is not known; expected auto, on or off");
}

const char* recv_layout_kind_name(RecvLayout::Kind kind) {
  switch (kind) {
    case RecvLayout::Kind::kExpertMajor:
      return "expert-major";
    case RecvLayout::Kind::kRankMajor:
      return "rank-major";
    case RecvLayout::Kind::kCapacity:
      return "capacity";
  }
  return "invalid";
}

Status RecvLayout::validate() const {
  if (kind != Kind::kExpertMajor && kind != Kind::kRankMajor && kind != Kind::kCapacity) {
    return Status(StatusCode::kInvalidArgument,
                  "layout.kind has invalid code " + std::to_string(static_cast<int>(kind)));
  }
  if (alignment < 1 || alignment > (int64_t{1} << 20)) {
    return Status(StatusCode::kInvalidArgument,
                  "layout.alignment = " + std::to_string(alignment) + " is outside [1, 2^20]");
  }
  if (kind != Kind::kExpertMajor && alignment != 1) {
    return Status(StatusCode::kInvalidArgument,
                  "layout.alignment = " + std::to_string(alignment) + " applies to the " +
                      "expert-major layout only; this layout is " + recv_layout_kind_name(kind));
  }
  if (capacity < 0 || capacity > (int64_t{1} << 40)) {
    return Status(StatusCode::kInvalidArgument,
                  "layout.capacity = " + std::to_string(capacity) + " is outside [0, 2^40]");
  }
  if (overflow != Overflow::kDrop && overflow != Overflow::kError) {
    return Status(StatusCode::kInvalidArgument,
                  "layout.overflow has invalid code " + std::to_string(static_cast<int>(overflow)));
  }
  return Status();
}

Status PlanOptions::validate() const {
  FUSCO_RETURN_IF_ERROR(layout.validate());
  if (dedup != Dedup::kNone && dedup != Dedup::kRank && dedup != Dedup::kNode) {
    return Status(StatusCode::kInvalidArgument,
                  "options.dedup has invalid code " + std::to_string(static_cast<int>(dedup)));
  }
  if (static_cast<int32_t>(process_relays) < 0 || static_cast<int32_t>(process_relays) > 2) {
    return Status(StatusCode::kInvalidArgument,
                  "options.process_relays has invalid code " +
                      std::to_string(static_cast<int>(process_relays)));
  }
  if (relay != RelayPolicy::kRailAligned && relay != RelayPolicy::kBalanced) {
    return Status(StatusCode::kInvalidArgument,
                  "options.relay has invalid code " + std::to_string(static_cast<int>(relay)));
  }
  if (chunk_bytes < 1 || chunk_bytes > (int64_t{1} << 30)) {
    return Status(StatusCode::kInvalidArgument,
                  "options.chunk_bytes = " + std::to_string(chunk_bytes) + " is outside [1, 2^30]");
  }
  if (combine_buffer_bytes < 0 || combine_buffer_bytes > (int64_t{1} << 40)) {
    return Status(StatusCode::kInvalidArgument,
                  "options.combine_buffer_bytes = " + std::to_string(combine_buffer_bytes) +
                      " is outside [0, 2^40] (0: no bound)");
  }
  if (timeout_ms < 1 || timeout_ms > 86400000) {
    return Status(
        StatusCode::kInvalidArgument,
        "options.timeout_ms = " + std::to_string(timeout_ms) + " is outside [1, 86400000]");
  }
  return Status();
}

}  // namespace fusco
