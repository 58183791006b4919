#pragma once

// A byte allgather among threads of one process (ranks as threads), in the shape of
// Communicator::BootstrapAllgather: for tests of what groups agree on through a launcher's
// exchange (group setup, the NCCL engine's host side) without MPI or torch.

#include <barrier>
#include <string>
#include <vector>

#include "fusco/communicator.hpp"

namespace fusco::testing {

class MemoryAllgather {
 public:
  explicit MemoryAllgather(int world) : slots_(static_cast<size_t>(world)), sync_(world) {}

  /// Rank `rank`'s allgather: every rank's bytes, in rank order, once all `world` called it.
  /// The object must outlive every call.
  Communicator::BootstrapAllgather of(int rank) {
    return [this, rank](const std::string& mine) -> Result<std::vector<std::string>> {
      slots_[static_cast<size_t>(rank)] = mine;
      sync_.arrive_and_wait();
      std::vector<std::string> all = slots_;
      sync_.arrive_and_wait();
      return all;
    };
  }

 private:
  std::vector<std::string> slots_;
  std::barrier<> sync_;
};

}  // namespace fusco::testing
