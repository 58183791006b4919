#pragma once

// Times collective steps across in-process ranks, side by side: every iteration runs each
// step once, in order, each step starting at a common barrier; a step's time in an iteration
// runs from the first rank starting it to the last rank finishing it. (Per-rank durations
// would miss the time a rank waits for a core: with more ranks than cores, independent work
// such as a memcpy runs rank after rank.) Interleaving the steps exposes them all to the same
// machine state, so their ratios are fair on a noisy machine.

#include <algorithm>
#include <barrier>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::bench {

using RankStep = std::function<Status(int rank)>;

/// The median of `values` (not empty); sorts them.
inline double median(std::vector<double>& values) {
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 == 1 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

/// Runs `steps` for warmup + iters iterations on `ranks` threads; returns for each step the
/// median over the timed iterations of its wall time (first start to last end), in seconds.
inline Result<std::vector<double>> time_steps(int ranks, int warmup, int iters,
                                              const std::vector<RankStep>& steps) {
  const int total = warmup + iters;
  const size_t n_steps = steps.size();
  // starts / ends[(it * steps + step) * ranks + rank], seconds since `origin`
  const auto origin = std::chrono::steady_clock::now();
  std::vector<double> starts(static_cast<size_t>(total) * n_steps * static_cast<size_t>(ranks));
  std::vector<double> ends(starts.size());
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
          const size_t at =
              (static_cast<size_t>(it) * n_steps + step) * static_cast<size_t>(ranks) +
              static_cast<size_t>(r);
          starts[at] = std::chrono::duration<double>(start - origin).count();
          ends[at] = std::chrono::duration<double>(stop - origin).count();
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
    std::vector<double> walls;
    for (int it = warmup; it < total; ++it) {
      const auto first = static_cast<std::ptrdiff_t>((static_cast<size_t>(it) * n_steps + step) *
                                                     static_cast<size_t>(ranks));
      walls.push_back(*std::max_element(ends.begin() + first, ends.begin() + first + ranks) -
                      *std::min_element(starts.begin() + first, starts.begin() + first + ranks));
    }
    medians.push_back(median(walls));
  }
  return medians;
}

}  // namespace fusco::bench
