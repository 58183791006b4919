#pragma once

// Times a collective step across in-process ranks: every iteration starts at a common barrier
// and lasts until the slowest rank is done (nccl-tests' "max over ranks").

#include <barrier>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::bench {

/// Runs fn(rank) on `ranks` threads for warmup + iters iterations; returns the mean of the
/// per-iteration maximum duration over ranks, in seconds, over the timed iterations.
inline Result<double> time_ranks(int ranks, int warmup, int iters,
                                 const std::function<Status(int rank)>& fn) {
  const int total = warmup + iters;
  std::vector<double> seconds(static_cast<size_t>(ranks) * static_cast<size_t>(total), 0.0);
  std::vector<Status> statuses(static_cast<size_t>(ranks));
  std::barrier sync(ranks);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      for (int it = 0; it < total; ++it) {
        sync.arrive_and_wait();
        const auto start = std::chrono::steady_clock::now();
        Status status = statuses[static_cast<size_t>(r)].ok() ? fn(r) : Status();
        const auto stop = std::chrono::steady_clock::now();
        if (!status.ok()) {
          statuses[static_cast<size_t>(r)] = status;
        }
        seconds[static_cast<size_t>(it) * static_cast<size_t>(ranks) + static_cast<size_t>(r)] =
            std::chrono::duration<double>(stop - start).count();
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (const Status& s : statuses) {
    FUSCO_RETURN_IF_ERROR(s);
  }
  double sum = 0;
  for (int it = warmup; it < total; ++it) {
    double slowest = 0;
    for (int r = 0; r < ranks; ++r) {
      slowest = std::max(
          slowest,
          seconds[static_cast<size_t>(it) * static_cast<size_t>(ranks) + static_cast<size_t>(r)]);
    }
    sum += slowest;
  }
  return sum / iters;
}

}  // namespace fusco::bench
