#pragma once

#include <cstdint>
#include <string_view>

#include "fusco/status.hpp"

namespace fusco {

/// How redundant traffic is removed.
enum class Dedup : int32_t {
  kNone = 0,  ///< Every (token, slot) row travels on its own.
  kRank = 1,  ///< A token crosses to a remote rank once, however many of its experts live there.
  kNode = 2,  ///< A token crosses to a remote node once, to a relay that fans it out.
};

/// Which rank of a destination node relays node-dedup traffic.
enum class RelayPolicy : int32_t {
  kRailAligned = 0,  ///< The rank with the sender's local index (one NIC rail per index).
  /// Per token, the rank of the destination node with the fewest rows this sender has
  /// relayed to it so far (ties: a rank the token goes to anyway, then the rail-aligned rank
  /// and its successors): spreads a sender's inter-node rows over every rank (and NIC) of
  /// the node. Still one inter-node copy per (token, node); deterministic.
  kBalanced = 1,
};

/// "none", "rank" or "node".
const char* dedup_name(Dedup dedup);
/// Parses "none", "rank" or "node"; the error names the text and the accepted values.
Result<Dedup> dedup_from_name(std::string_view name);
/// "rail" or "balanced".
const char* relay_policy_name(RelayPolicy policy);
/// Parses "rail" or "balanced"; the error names the text and the accepted values.
Result<RelayPolicy> relay_policy_from_name(std::string_view name);

/// Options of a plan; they apply to the planning call and to every dispatch and combine that
/// uses the plan. All ranks must pass equal options (checked while planning).
///
/// Each field has a documented default and one environment variable, applied by from_env().
struct PlanOptions {
  /// Redundancy removal. Default kNode. Environment: FUSCO_DEDUP=none|rank|node.
  Dedup dedup = Dedup::kNode;
  /// Size of one chunk on the staged (inter-node) path, in bytes; a chunk holds at least one
  /// row. Default 1 MiB. Environment: FUSCO_CHUNK_BYTES (bytes, 1 KiB .. 1 GiB).
  int64_t chunk_bytes = int64_t{1} << 20;
  /// Relay choice for node dedup. Default kRailAligned. Environment:
  /// FUSCO_RELAY=rail|balanced.
  RelayPolicy relay = RelayPolicy::kRailAligned;
  /// Bound on every wait inside plan, dispatch and combine, in milliseconds. Default 60000.
  /// Environment: FUSCO_TIMEOUT_MS (1 .. 86400000).
  int64_t timeout_ms = 60000;

  /// The defaults above with each set FUSCO_* environment variable applied. A malformed or
  /// out-of-range value is an error naming the variable, its value and the accepted range.
  static Result<PlanOptions> from_env();
  /// Checks every field against its range; the error names the field, value and limit.
  Status validate() const;
};

}  // namespace fusco
