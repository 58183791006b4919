// How NcclCommunicator bounds the GPU's ncclSend/ncclRecv waits (src/core/step_deadlines.hpp):
// every exchange enqueued on a stream gets a marker and a deadline; a step still pending past
// its deadline is overdue and named with its peers. Markers here are flags the test raises, as
// a GPU stream would reach its events: in order.

#include "core/step_deadlines.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace fusco::core {
namespace {

using std::chrono::milliseconds;

struct FlagMarker {
  std::shared_ptr<bool> flag = std::make_shared<bool>(false);
  bool reached() const { return *flag; }
};

TEST(StepDeadlines, ReachedStepsAreForgotten_AndNoneIsOverdue) {
  StepDeadlines<FlagMarker> steps;
  const StepClock::time_point t0 = StepClock::now();
  FlagMarker a;
  FlagMarker b;
  steps.add(a, "dispatch: ncclSend/ncclRecv", {1, 2}, 100, t0);
  steps.add(b, "combine: ncclSend/ncclRecv", {1, 2}, 100, t0);
  EXPECT_EQ(steps.overdue(t0 + milliseconds(50)), nullptr);  // pending, within the deadline
  EXPECT_EQ(steps.pending(), 2U);
  *a.flag = true;
  *b.flag = true;
  EXPECT_EQ(steps.overdue(t0 + milliseconds(10000)), nullptr);  // reached: late is no matter
  EXPECT_EQ(steps.pending(), 0U);
  EXPECT_EQ(steps.oldest(), nullptr);
}

TEST(StepDeadlines, TheOldestPendingStepPastItsDeadline_IsOverdue) {
  StepDeadlines<FlagMarker> steps;
  const StepClock::time_point t0 = StepClock::now();
  FlagMarker first;
  FlagMarker second;
  FlagMarker third;
  steps.add(first, "dispatch", {3}, 100, t0);
  steps.add(second, "combine", {1, 3}, 500, t0 + milliseconds(20));
  steps.add(third, "dispatch", {2}, 50, t0 + milliseconds(30));
  *first.flag = true;
  // The third's deadline (80 ms) passed, but the stream is still in the second (until 520 ms):
  // in order, the second is the step that holds it.
  EXPECT_EQ(steps.overdue(t0 + milliseconds(200)), nullptr);
  const auto* late = steps.overdue(t0 + milliseconds(520));
  ASSERT_NE(late, nullptr);
  EXPECT_EQ(late->what, "combine");
  EXPECT_EQ(late->peers, (std::vector<int>{1, 3}));
  EXPECT_EQ(steps.pending(), 2U);
}

TEST(StepDeadlines, ExactlyAtTheDeadline_IsOverdue_AndAZeroTimeoutIsDueAtOnce) {
  StepDeadlines<FlagMarker> steps;
  const StepClock::time_point t0 = StepClock::now();
  steps.add(FlagMarker(), "plan exchange (counts)", {0}, 0, t0);
  EXPECT_NE(steps.overdue(t0), nullptr);
  steps.clear();
  steps.add(FlagMarker(), "plan exchange (rows)", {0}, 10, t0);
  EXPECT_EQ(steps.overdue(t0 + milliseconds(9)), nullptr);
  EXPECT_NE(steps.overdue(t0 + milliseconds(10)), nullptr);
}

TEST(StepDeadlines, TheOverdueError_NamesRankStepPeersAndTimeout) {
  StepDeadlines<FlagMarker> steps;
  const StepClock::time_point t0 = StepClock::now();
  steps.add(FlagMarker(), "dispatch: ncclSend/ncclRecv between nodes", {4, 7}, 250, t0);
  const auto* late = steps.overdue(t0 + milliseconds(300));
  ASSERT_NE(late, nullptr);
  const Status status = overdue_status(2, *late);
  EXPECT_EQ(status.code(), StatusCode::kTimeout);
  const std::string& text = status.message();
  EXPECT_NE(text.find("rank 2: dispatch: ncclSend/ncclRecv between nodes"), std::string::npos)
      << text;
  EXPECT_NE(text.find("rank(s) 4, 7"), std::string::npos) << text;
  EXPECT_NE(text.find("250 ms (PlanOptions::timeout_ms)"), std::string::npos) << text;
  EXPECT_NE(text.find("must be recreated"), std::string::npos) << text;
  EXPECT_EQ(rank_list({}), "none");
}

}  // namespace
}  // namespace fusco::core
