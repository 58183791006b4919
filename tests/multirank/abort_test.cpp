// Communicator::abort: a watchdog breaks the group on purpose; every rank waiting inside it
// returns kAborted carrying the reason at once (not after the timeout), and a new group works.

#include <gtest/gtest.h>

#include <chrono>
#include <thread>
#include <vector>

#include "fusco/fusco.hpp"
#include "multirank/harness.hpp"
#include "testing/rank_threads.hpp"

namespace fusco::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr int kWorld = 4;

std::vector<int32_t> ids() { return {0, 7, 1, 6, 2, 5, 3, 4}; }

TEST(Abort, WatchdogUnblocksRanksWaitingForAMissingPeer_ThenANewGroupWorks) {
  auto comms = Communicator::create_local(kWorld, Topology::nodes_of(kWorld, 2)).value();
  PlanOptions options;
  options.timeout_ms = 60000;  // without abort the waiting ranks would sit here for a minute
  std::vector<int32_t> routing = ids();
  std::vector<Plan> plans(kWorld);
  ASSERT_TRUE(first_error(run_ranks(kWorld, [&](int r) {
                Result<Plan> plan = comms[static_cast<size_t>(r)].plan(
                    TensorView::host(routing.data(), DType::kInt32, {4, 2}), 8, ExpertMap(),
                    options);
                FUSCO_RETURN_IF_ERROR(plan.status());
                plans[static_cast<size_t>(r)] = plan.value();
                return Status();
              })).ok());
  const auto start = Clock::now();
  // Rank 3 never dispatches; its watchdog gives up on it and aborts the group.
  std::thread watchdog([&] {
    std::this_thread::sleep_for(milliseconds(100));
    comms[3].abort("rank 3 is being replaced");
  });
  std::vector<std::vector<float>> x(kWorld, std::vector<float>(4 * 16, 1.0F));
  std::vector<std::vector<float>> recv(kWorld);
  const std::vector<Status> statuses = run_ranks(kWorld - 1, [&](int r) {
    const auto rr = static_cast<size_t>(r);
    recv[rr].resize(static_cast<size_t>(plans[rr].num_recv_rows()) * 16);
    return comms[rr].dispatch(
        plans[rr], TensorView::host(x[rr].data(), DType::kFloat32, {4, 16}),
        TensorView::host(recv[rr].data(), DType::kFloat32, {plans[rr].num_recv_rows(), 16}));
  });
  watchdog.join();
  EXPECT_LT(Clock::now() - start, milliseconds(10000));
  for (const Status& status : statuses) {
    EXPECT_EQ(status.code(), StatusCode::kAborted) << status.to_string();
    EXPECT_NE(status.message().find("rank 3 aborted the group: rank 3 is being replaced"),
              std::string::npos)
        << status.to_string();
  }
  for (const Communicator& comm : comms) {
    EXPECT_FALSE(comm.usable());
  }
  // Later calls fail at once with the same reason.
  const Status later = comms[0].dispatch(
      plans[0], TensorView::host(x[0].data(), DType::kFloat32, {4, 16}),
      TensorView::host(recv[0].data(), DType::kFloat32, {plans[0].num_recv_rows(), 16}));
  EXPECT_EQ(later.code(), StatusCode::kAborted);
  EXPECT_NE(later.message().find("rank 3 is being replaced"), std::string::npos);
  // Recreating works: a fresh group runs a full case against the reference.
  Case c;
  c.world = kWorld;
  EXPECT_TRUE(matches_reference(c));
}

TEST(Abort, FromAnotherThreadWhileThisRankIsInsidePlan) {
  auto comms = Communicator::create_local(2, Topology::single_node(2)).value();
  std::vector<int32_t> routing = ids();
  std::thread watchdog([&] {
    std::this_thread::sleep_for(milliseconds(100));
    comms[0].abort("watchdog");
  });
  // Only rank 0 plans: it waits for rank 1 until its own communicator is aborted.
  const auto start = Clock::now();
  Result<Plan> plan =
      comms[0].plan(TensorView::host(routing.data(), DType::kInt32, {4, 2}), 8, ExpertMap());
  watchdog.join();
  EXPECT_LT(Clock::now() - start, milliseconds(10000));
  EXPECT_EQ(plan.status().code(), StatusCode::kAborted);
  EXPECT_NE(plan.status().message().find("rank 0 aborted the group: watchdog"), std::string::npos)
      << plan.status().to_string();
}

}  // namespace
}  // namespace fusco::testing
