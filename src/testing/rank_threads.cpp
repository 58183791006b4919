#include "testing/rank_threads.hpp"

#include <thread>

namespace fusco::testing {

std::vector<Status> run_ranks(int world_size, const std::function<Status(int rank)>& fn) {
  std::vector<Status> statuses(static_cast<size_t>(world_size));
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    threads.emplace_back([&, r] { statuses[static_cast<size_t>(r)] = fn(r); });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  return statuses;
}

Status first_error(const std::vector<Status>& statuses) {
  for (const Status& status : statuses) {
    if (!status.ok()) {
      return status;
    }
  }
  return Status();
}

}  // namespace fusco::testing
