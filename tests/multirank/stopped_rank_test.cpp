// A rank (thread) that stops at a random point of a dispatch/combine loop: every other rank
// returns an error naming it within the timeout (no hang), and the group reports that it must
// be recreated. FUSCO_KILL_TRIALS sets the number of trials (default 6; docs/errors.md
// records a 50-trial run).

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <random>
#include <vector>

#include "fusco/fusco.hpp"
#include "testing/rank_threads.hpp"

namespace fusco::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int trials() {
  const char* text = std::getenv("FUSCO_KILL_TRIALS");  // NOLINT(concurrency-mt-unsafe)
  return text != nullptr ? std::atoi(text) : 6;
}

TEST(StoppedRank, AtRandomPoints_SurvivorsFailNamingItWithinTheTimeout) {
  constexpr int kWorld = 4;
  constexpr int64_t kTimeoutMs = 300;
  constexpr int64_t kHidden = 64;
  std::mt19937 rng(7);
  for (int trial = 0; trial < trials(); ++trial) {
    const int victim = std::uniform_int_distribution<int>(0, kWorld - 1)(rng);
    const int stop_at = std::uniform_int_distribution<int>(0, 12)(rng);  // 0: before planning
    auto comms = Communicator::create_local(kWorld, Topology::nodes_of(kWorld, 2)).value();
    PlanOptions options;
    options.timeout_ms = kTimeoutMs;
    options.chunk_bytes = 1024;
    std::mutex mutex;
    std::condition_variable released_cv;
    bool released = false;
    std::vector<Clock::duration> took(kWorld);
    const std::vector<Status> statuses = run_ranks(kWorld, [&](int r) -> Status {
      auto stop_here = [&](int call) {
        if (r != victim || call != stop_at) {
          return false;
        }
        std::unique_lock<std::mutex> lock(mutex);  // stopped until the survivors are done
        released_cv.wait(lock, [&] { return released; });
        return true;
      };
      Communicator& comm = comms[static_cast<size_t>(r)];
      std::vector<int32_t> ids = {0, 7, 1, 6, 2, 5, 3, 4, 4, 0, 6, 2};
      if (stop_here(0)) {
        return Status();
      }
      auto call_start = Clock::now();
      Result<Plan> plan =
          comm.plan(TensorView::host(ids.data(), DType::kInt32, {6, 2}), 8, ExpertMap(), options);
      Status status = plan.status();
      std::vector<float> x(6 * kHidden, 1.0F), w(12, 0.5F), out(6 * kHidden);
      std::vector<float> recv(
          plan.ok() ? static_cast<size_t>(plan.value().num_recv_rows()) * kHidden : 0);
      for (int call = 1; status.ok(); ++call) {
        if (stop_here(call)) {
          return Status();
        }
        const int64_t rows = plan.value().num_recv_rows();
        call_start = Clock::now();
        status = call % 2 == 1
                     ? comm.dispatch(
                           plan.value(), TensorView::host(x.data(), DType::kFloat32, {6, kHidden}),
                           TensorView::host(recv.data(), DType::kFloat32, {rows, kHidden}))
                     : comm.combine(plan.value(),
                                    TensorView::host(recv.data(), DType::kFloat32, {rows, kHidden}),
                                    TensorView::host(w.data(), DType::kFloat32, {6, 2}),
                                    TensorView::host(out.data(), DType::kFloat32, {6, kHidden}));
      }
      took[static_cast<size_t>(r)] = Clock::now() - call_start;  // the failing call
      // The last survivor to fail releases the stopped rank.
      {
        std::lock_guard<std::mutex> lock(mutex);
        released = true;
      }
      released_cv.notify_all();
      return status;
    });
    for (int r = 0; r < kWorld; ++r) {
      if (r == victim) {
        continue;
      }
      const Status& status = statuses[static_cast<size_t>(r)];
      const std::string v = std::to_string(victim);
      const bool named = status.message().find("rank(s) " + v) != std::string::npos ||
                         status.message().find("rank " + v) != std::string::npos;
      EXPECT_TRUE(!status.ok() && named)
          << "trial " << trial << " (victim " << victim << " stopped at call " << stop_at
          << "), rank " << r << ": " << status.to_string();
      EXPECT_FALSE(comms[static_cast<size_t>(r)].usable());
      // Bounded: the timeout, plus the grace a failed call waits for peers to go quiet.
      EXPECT_LT(took[static_cast<size_t>(r)], milliseconds(kTimeoutMs + 2000)) << "rank " << r;
    }
  }
}

}  // namespace
}  // namespace fusco::testing
