#pragma once

// An alpha-beta model of the time a group's dispatch takes on a GPU cluster: every link's
// bytes from the group's traffic (model/group_plan.hpp), the most loaded link's bytes over its
// bandwidth, plus one latency per kind of hop used.
//
// Links: each GPU's NVLink port, out and in (direct stores and relay forwards between ranks of
// a node), and each NIC, out and in (rows crossing nodes). GPU i of a node sends and receives
// its inter-node rows through NIC i * nics_per_node / ranks_per_node (its rail).

#include <cstdint>
#include <string>
#include <string_view>

#include "fusco/status.hpp"
#include "fusco/topology.hpp"
#include "model/group_plan.hpp"

namespace fusco::plan {

/// A cluster as the cost model sees it.
struct ClusterSpec {
  int nodes = 1;
  int ranks_per_node = 8;
  double nvlink_gbytes_per_s = 450;  ///< Per GPU and direction, GB/s (1e9 bytes).
  int nics_per_node = 8;
  double nic_gbits_per_s = 400;  ///< Per NIC and direction, Gb/s (1e9 bits).
  double nvlink_latency_us = 3;
  double network_latency_us = 10;

  /// The FUSCO paper's testbed: 8 nodes x 8 GPUs, ~480 GB/s NVLink, ten 400 Gb/s NICs per node.
  static ClusterSpec fusco_testbed();
  /// The group this cluster runs: nodes * ranks_per_node ranks.
  Topology topology() const;
  /// The spec in the form parse_cluster_spec reads.
  std::string to_string() const;
};

/// Parses `key=value` pairs separated by commas, spaces or new lines (`#` starts a comment up
/// to the end of the line) on top of `base`. Keys: nodes, ranks_per_node, nvlink_gbytes_per_s,
/// nics_per_node, nic_gbits_per_s, nvlink_latency_us, network_latency_us. An unknown key, a
/// malformed number or a value out of range is an error naming the key, the value and the
/// range; a group of more than 65536 ranks is refused.
Result<ClusterSpec> parse_cluster_spec(std::string_view text, const ClusterSpec& base);

/// One link's load.
struct LinkLoad {
  std::string link;  ///< "nvlink out 3", "nic in 1.2" (node 1, NIC 2), ...
  int64_t bytes = 0;
  double seconds = 0;  ///< bytes over the link's bandwidth
};

/// The modelled cost of a group's dispatch.
struct PlanCost {
  int64_t local_bytes = 0;    ///< Rows a rank keeps (HBM copies, no link).
  int64_t nvlink_bytes = 0;   ///< Summed over NVLink hops (each counted once, at the sender).
  int64_t network_bytes = 0;  ///< Summed over inter-node hops.
  LinkLoad busiest_nvlink;
  LinkLoad busiest_nic;
  LinkLoad busiest;            ///< The slower of the two.
  double latency_seconds = 0;  ///< One latency per hop kind used.
  double seconds = 0;          ///< busiest.seconds + latency_seconds.
};

/// Costs `traffic` on `cluster` (whose topology must be the traffic's) for rows of `row_bytes`.
Result<PlanCost> estimate_cost(const GroupTraffic& traffic, const ClusterSpec& cluster,
                               int64_t row_bytes);

}  // namespace fusco::plan
