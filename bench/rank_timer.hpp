#pragma once

// Times collective steps across in-process ranks, side by side: every iteration runs each
// step once, in order, each step starting at a common barrier; a step's time in an iteration
// is that of its slowest rank (nccl-tests' "max over ranks"). Interleaving the steps exposes
// them all to the same machine state, so their ratios are fair on a noisy machine.

#include <algorithm>
#include <barrier>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::bench {

using RankStep = std::function<Status(int rank)>;

/// Runs `steps` for warmup + iters iterations on `ranks` threads; returns for each step the
/// median over the timed iterations of the slowest rank's time, in seconds.
inline Result<std::vector<double>> time_steps(int ranks, int warmup, int iters,
                                              const std::vector<RankStep>& steps) {
  const int total = warmup + iters;
  const size_t n_steps = steps.size();
  // seconds[(it * steps + step) * ranks + rank]
  std::vector<double> seconds(static_cast<size_t>(total) * n_steps * static_cast<size_t>(ranks));
  std::vector<Status> statuses(static_cast<size_t>(ranks));
  std::barrier sync(ranks);
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      for (int it = 0; it < total; ++it) {
        for (size_t step = 0; step < n_steps; ++step) {
          sync.arrive_and_wait();
          const auto start = std::chrono::steady_clock::now();
          if (statuses[static_cast<size_t>(r)].ok()) {
            statuses[static_cast<size_t>(r)] = steps[step](r);
          }
          const auto stop = std::chrono::steady_clock::now();
          seconds[(static_cast<size_t>(it) * n_steps + step) * static_cast<size_t>(ranks) +
                  static_cast<size_t>(r)] = std::chrono::duration<double>(stop - start).count();
        }
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (const Status& s : statuses) {
    FUSCO_RETURN_IF_ERROR(s);
  }
  std::vector<double> medians;
  for (size_t step = 0; step < n_steps; ++step) {
    std::vector<double> slowest;
    for (int it = warmup; it < total; ++it) {
      const auto first =
          seconds.begin() + static_cast<std::ptrdiff_t>((static_cast<size_t>(it) * n_steps + step) *
                                                        static_cast<size_t>(ranks));
      slowest.push_back(*std::max_element(first, first + ranks));
    }
    std::sort(slowest.begin(), slowest.end());
    const size_t mid = slowest.size() / 2;
    medians.push_back(slowest.size() % 2 == 1 ? slowest[mid]
                                              : (slowest[mid - 1] + slowest[mid]) / 2);
  }
  return medians;
}

}  // namespace fusco::bench
