#include "bootstrap/machine_topology.hpp"

#include <map>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace fusco::bootstrap {

namespace {

// Ranks per machine when every machine holds one run of consecutive ranks, all runs as long
// as rank 0's (the last may be shorter); otherwise the error naming the first rank out of place.
Result<int> machine_width(const std::vector<std::string>& machines) {
  const int world = static_cast<int>(machines.size());
  int width = 1;
  while (width < world && machines[static_cast<size_t>(width)] == machines[0]) ++width;
  std::map<std::string, int> first_rank;  // machine -> the first rank of its run
  for (int r = 0; r < world; ++r) {
    const std::string& machine = machines[static_cast<size_t>(r)];
    const int run = r - r % width;
    const bool in_run = machine == machines[static_cast<size_t>(run)];
    const bool new_machine = r != run || first_rank.emplace(machine, r).second;
    if (in_run && new_machine) continue;
    return Status(StatusCode::kUnsupported,
                  "topology: nodes are taken from the machines (Topology::kByMachine), but rank " +
                      std::to_string(r) + " on " + transport::Transport::machine_name(machine) +
                      " breaks the pattern rank 0's machine sets: every machine must hold one "
                      "run of " +
                      std::to_string(width) +
                      " consecutive rank(s) (the last may hold fewer), since fusco's nodes are "
                      "runs of consecutive ranks; launch each machine's ranks consecutively "
                      "(mpirun --map-by slot, torchrun's default), as many on every machine, or "
                      "pass ranks_per_node");
  }
  return width;
}

}  // namespace

Result<Topology> topology_for_machines(const Topology& requested,
                                       const std::vector<std::string>& machines) {
  FUSCO_RETURN_IF_ERROR(requested.validate());
  if (machines.size() != static_cast<size_t>(requested.world_size)) {
    return Status(StatusCode::kInternal, "topology: " + std::to_string(machines.size()) +
                                             " machines for a world of " +
                                             std::to_string(requested.world_size));
  }
  if (requested.ranks_per_node == Topology::kByMachine) {
    const Result<int> width = machine_width(machines);
    FUSCO_RETURN_IF_ERROR(width.status());
    return Topology::nodes_of(requested.world_size, width.value());
  }
  for (int r = 1; r < requested.world_size; ++r) {
    const int first = requested.node_first_rank(requested.node_of(r));
    if (machines[static_cast<size_t>(r)] == machines[static_cast<size_t>(first)]) continue;
    const int node = requested.node_of(r);
    return Status(
        StatusCode::kInvalidArgument,
        "topology.ranks_per_node = " + std::to_string(requested.ranks_per_node) + " puts ranks " +
            std::to_string(first) + ".." + std::to_string(first + requested.node_size(node) - 1) +
            " on logical node " + std::to_string(node) + ", but rank " + std::to_string(first) +
            " runs on " + transport::Transport::machine_name(machines[static_cast<size_t>(first)]) +
            " and rank " + std::to_string(r) + " on " +
            transport::Transport::machine_name(machines[static_cast<size_t>(r)]) +
            "; a logical node must lie on one machine (rows inside a node take the direct "
            "path): pass Topology::kByMachine (Python: ranks_per_node=None) or a "
            "ranks_per_node that divides each machine's ranks");
  }
  return requested;
}

}  // namespace fusco::bootstrap
