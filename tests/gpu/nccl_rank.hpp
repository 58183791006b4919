#pragma once

// One rank's part of a routing case through fusco::gpu::NcclCommunicator: plan (on the host,
// or with `device_planning` from device routing by plan_on_device), dispatch into the receive
// window, expert outputs written into the expert-output window (or, with `copy_expert_out`,
// passed from separate device memory), combine; results read back.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "fusco/nccl.hpp"
#include "gpu/gpu_presence.hpp"
#include "multirank/harness.hpp"

namespace fusco::testing {

/// Ranks as threads of one process taking turns to read their results: while one rank reads
/// (which runs its lazy host stream, and its peers' streams only as far as its barriers and
/// exchanges wait for them), the others' threads wait, so a result that depends on work no
/// barrier of the reader waits for is read stale in every run, whatever the scheduling. The
/// order alternates between ascending and descending ranks, turn round after turn round. A
/// turn not come within 10 s is taken anyway (a rank that returned early on an error).
class Turns {
 public:
  explicit Turns(int world) : world_(world) {}
  /// Waits for `rank`'s next turn.
  void take(int rank);
  /// Ends the turn taken.
  void pass();

 private:
  int world_;
  int64_t passed_ = 0;  ///< Turns ended so far.
  std::mutex mutex_;
  std::condition_variable changed_;
};

/// Cases of `world` ranks in nodes of `ranks_per_node` with rows staged between them: every
/// dedup mode and relay policy with companion rows, and a hot expert of the last node taking
/// every slot while rank 0 has no tokens.
std::vector<Case> staged_cases(int world, int ranks_per_node);

/// With `turns`, the rank reads each result in its turn.
RankResult run_nccl_rank(const Case& c, gpu::NcclCommunicator& comm, bool copy_expert_out,
                         bool device_planning = false, Turns* turns = nullptr);

}  // namespace fusco::testing
