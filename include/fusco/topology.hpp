#pragma once

#include <algorithm>
#include <cstdint>

#include "fusco/host_device.hpp"
#include "fusco/status.hpp"

namespace fusco {

/// How ranks are grouped into nodes. Ranks [n*R, (n+1)*R) form node n, where R is
/// ranks_per_node; when R does not divide the world size the last node is smaller. Traffic
/// between ranks of one node is intra-node (direct stores); traffic between nodes takes the
/// staged path (chunks through a peer's staging window), which node dedup minimises.
///
/// A group of processes may also take its nodes from the machines its ranks run on
/// (kByMachine): a UCX group reads every rank's machine at creation, and its topology() then
/// holds the machines' ranks per node. Groups of one machine (in-process, shared memory) have
/// one node. Either way a process group checks that no logical node spans two machines;
/// several logical nodes on one machine are allowed (that is how one machine emulates many).
struct Topology {
  /// ranks_per_node value asking a process group for one node per machine.
  static constexpr int kByMachine = -1;

  int world_size = 1;      ///< Number of ranks, >= 1.
  int ranks_per_node = 0;  ///< Ranks per node, >= 1; 0: all ranks on one node; kByMachine.

  /// All `world_size` ranks on one node.
  static Topology single_node(int world_size) { return Topology{world_size, world_size}; }
  /// `world_size` ranks, `ranks_per_node` per node.
  static Topology nodes_of(int world_size, int ranks_per_node) {
    return Topology{world_size, ranks_per_node};
  }
  /// `world_size` ranks, one node per machine (resolved when a group is created; until then
  /// node_width() counts it as one node).
  static Topology by_machine(int world_size) { return Topology{world_size, kByMachine}; }

  /// Checks world_size >= 1 and ranks_per_node >= 0 or kByMachine.
  Status validate() const;

  /// Ranks per node with 0 (and an unresolved kByMachine) resolved to the world size.
  FUSCO_HOST_DEVICE int node_width() const {
    return ranks_per_node <= 0 || ranks_per_node > world_size ? world_size : ranks_per_node;
  }
  /// Number of nodes.
  FUSCO_HOST_DEVICE int num_nodes() const { return (world_size + node_width() - 1) / node_width(); }
  /// Node of `rank`.
  FUSCO_HOST_DEVICE int node_of(int rank) const { return rank / node_width(); }
  /// Position of `rank` inside its node.
  FUSCO_HOST_DEVICE int local_index(int rank) const { return rank % node_width(); }
  /// First rank of `node`.
  FUSCO_HOST_DEVICE int node_first_rank(int node) const { return node * node_width(); }
  /// Number of ranks on `node` (the last node may be smaller).
  FUSCO_HOST_DEVICE int node_size(int node) const {
    const int rest = world_size - node_first_rank(node);
    return rest < node_width() ? rest : node_width();
  }
  /// True when `a` and `b` are on the same node.
  FUSCO_HOST_DEVICE bool same_node(int a, int b) const { return node_of(a) == node_of(b); }
  /// The rail-aligned relay of `node` for traffic from `source`: the rank of `node` with the
  /// source's local index, or (on a smaller last node) that index modulo the node's size.
  FUSCO_HOST_DEVICE int rail_relay(int node, int source) const {
    return node_first_rank(node) + local_index(source) % node_size(node);
  }
};

}  // namespace fusco
