#pragma once

// Machines simulated on one box, for tests of groups that span machines: every machine is a
// network namespace with its own link ("fsim0", address 10.<net>.0.<m + 1>) into a bridge in
// a hub namespace, and the ranks that enter it take a fresh UTS namespace whose host name
// names the machine (fusco tells machines apart by host name and boot id). Traffic between
// them stays inside the namespaces. Creating namespaces takes root and iproute2; the tests
// skip without them unless FUSCO_REQUIRE_NAMESPACES=1 (CI), where that is a failure.

#include <memory>
#include <string>

#include "fusco/status.hpp"

namespace fusco::testing {

class SimulatedMachines {
 public:
  /// `machines` machines joined by a bridge; kUnsupported when this box cannot make them.
  static Result<std::unique_ptr<SimulatedMachines>> create(int machines);
  /// Removes the namespaces (and with them every link).
  ~SimulatedMachines();
  SimulatedMachines(const SimulatedMachines&) = delete;
  SimulatedMachines& operator=(const SimulatedMachines&) = delete;

  /// In a forked child, before it touches the network: moves it onto `machine` (its network
  /// namespace, a host name of its own) and points UCX at the machine's link over tcp.
  Status enter(int machine) const;
  /// Cuts (`up` false) or restores `machine`'s link to the others, keeping its carrier (a
  /// partition further away); its own ranks still reach each other.
  Status set_link(int machine, bool up) const;
  /// Limits every machine's outgoing link to `rate` (tc's syntax, e.g. "200mbit").
  Status limit_rate(const std::string& rate) const;

  int machines() const { return machines_; }

 private:
  SimulatedMachines(std::string prefix, int machines)
      : prefix_(std::move(prefix)), machines_(machines) {}
  std::string machine_ns(int machine) const;
  std::string hub_ns() const { return prefix_ + "-hub"; }

  std::string prefix_;
  int machines_;
};

/// SimulatedMachines::create, or why not; a test skips when this is not empty (and fails
/// instead under FUSCO_REQUIRE_NAMESPACES=1).
std::string simulated_machines_unavailable(const Result<std::unique_ptr<SimulatedMachines>>& made);

}  // namespace fusco::testing
