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

/// Whether node dedup uses relays between ranks that cannot store into each other's memory
/// (processes). A relay of another node then receives each token once, parks its node peers'
/// rows and forwards them in a second hop; combine ships it the weights and the peers' rows
/// back, and it returns one partial sum per entry (same bits either way).
enum class ProcessRelays : int32_t {
  /// Relays where the transport's nodes are separate machines (UCX across machines): there
  /// they cut network bytes; on one machine the second hop only adds copies.
  kAuto = 0,
  kOn = 1,   ///< Always (tests; machines split by a boundary the transport cannot see).
  kOff = 2,  ///< Never: rows for another node go to each destination rank.
};

/// "none", "rank" or "node".
const char* dedup_name(Dedup dedup);
/// Parses "none", "rank" or "node"; the error names the text and the accepted values.
Result<Dedup> dedup_from_name(std::string_view name);
/// "rail" or "balanced".
const char* relay_policy_name(RelayPolicy policy);
/// Parses "rail" or "balanced"; the error names the text and the accepted values.
Result<RelayPolicy> relay_policy_from_name(std::string_view name);
/// "auto", "on" or "off".
const char* process_relays_name(ProcessRelays mode);
/// Parses "auto", "on" or "off"; the error names the text and the accepted values.
Result<ProcessRelays> process_relays_from_name(std::string_view name);

/// How dispatch lays rows out in each rank's receive buffer; combine reads them back from the
/// same places. Every layout puts each delivered (token, slot) row in exactly one row.
struct RecvLayout {
  enum class Kind : int32_t {
    /// Rows sorted by (local expert, source rank, source token, slot), each expert's block
    /// padded with zero rows to a multiple of `alignment` rows (grouped-GEMM tiles).
    kExpertMajor = 0,
    /// Rows sorted by (source rank, source token, slot): what DeepEP returns. The plan gives
    /// each row's local expert (Plan::recv_local_experts()).
    kRankMajor = 1,
    /// [local experts, capacity] rows: each expert's block holds its first `capacity` rows in
    /// expert-major order, the rest of the block is zeroed; rows beyond the capacity are not
    /// delivered (counted per expert, Plan::dropped_per_expert()) and contribute nothing to
    /// combine, or, with Overflow::kError, the plan fails with kCapacityExceeded.
    kCapacity = 2,
  };
  enum class Overflow : int32_t {
    kDrop = 0,   ///< Rows beyond the capacity are dropped and counted.
    kError = 1,  ///< A plan that would drop a row fails on every rank, naming the expert.
  };

  Kind kind = Kind::kExpertMajor;
  int64_t alignment = 1;  ///< kExpertMajor: block rows are a multiple of this (1 .. 2^20).
  int64_t capacity = 0;   ///< kCapacity: rows per local expert (0 .. 2^40).
  Overflow overflow = Overflow::kDrop;

  /// Expert-major, each expert's block padded to a multiple of `alignment` rows.
  static RecvLayout expert_major(int64_t alignment = 1) {
    return RecvLayout{Kind::kExpertMajor, alignment, 0, Overflow::kDrop};
  }
  /// Source rank, then token, then slot.
  static RecvLayout rank_major() { return RecvLayout{Kind::kRankMajor, 1, 0, Overflow::kDrop}; }
  /// Static shapes: [local experts, capacity, H].
  static RecvLayout capacity_bounded(int64_t capacity, Overflow overflow = Overflow::kDrop) {
    return RecvLayout{Kind::kCapacity, 1, capacity, overflow};
  }
  /// Checks the fields against their ranges; the error names the field, value and limit.
  Status validate() const;
};

/// "expert-major", "rank-major" or "capacity".
const char* recv_layout_kind_name(RecvLayout::Kind kind);

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
  /// Relays between processes under node dedup. Default kAuto. Environment:
  /// FUSCO_PROCESS_RELAYS=auto|on|off.
  ProcessRelays process_relays = ProcessRelays::kAuto;
  /// Bound on the buffer combine receives rows coming back from other nodes into, in bytes;
  /// 0 = no bound (one round). When the rows of one combine need more, combine runs in
  /// rounds inside the one call, each over a range of this rank's tokens (a round holds at
  /// least one token; at most 64 rounds), with results identical to one round. Dispatch
  /// needs no rounds: it writes straight into recv and stages only chunk-sized slots.
  /// Default 0. Environment: FUSCO_COMBINE_BUFFER_BYTES (0, or 1 KiB .. 2^40).
  int64_t combine_buffer_bytes = 0;
  /// The receive layout. Default expert-major without padding (DESIGN.md's order). No
  /// environment variable: the layout is part of what the caller's experts expect.
  RecvLayout layout;
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
