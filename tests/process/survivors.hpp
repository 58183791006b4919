#pragma once

// What the survivors of a dead or stopped peer process check, shared by the forked-process
// kill tests and the kill test under mpirun.

#include <cstdint>
#include <string>

#include "fusco/communicator.hpp"

namespace fusco::testing {

/// A group whose ranks loop over dispatch + combine until one fails; returns the failure.
Status loop_until_failure(Communicator& comm, int64_t timeout_ms, int64_t* iterations);

/// Survivors of a peer that dies (SIGKILL) or stops (SIGSTOP) mid-operation: each must fail
/// with an error naming `victim` (its exit, when `exited`, else a timeout) and report the group
/// unusable. Returns the process's exit code: 0, or kNamedAnother when the rank timed out
/// waiting for another survivor that was itself waiting for the victim (an honest, cascaded
/// message), or 1.
inline constexpr int kNamedAnother = 5;
int survivor_checks(Communicator& comm, int victim, int64_t timeout_ms, bool exited);

/// The ranks a timeout names as giving no sign of life ("rank(s) 1, 3 do not answer" gives
/// "1, 3"), or "" when it names none; prints the failure either way.
std::string silent_ranks(const Status& failed);

}  // namespace fusco::testing
