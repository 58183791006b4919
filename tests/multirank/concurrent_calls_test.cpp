// Two threads calling into one communicator at once (issue 18, class 3): the call that would
// overlap is refused at once naming the rule, the other completes, and the group keeps working.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "fusco/fusco.hpp"
#include "testing/rank_threads.hpp"

namespace fusco::testing {
namespace {

Result<Plan> plan_of(Communicator& comm, std::vector<int32_t>& ids) {
  PlanOptions options;
  options.timeout_ms = 20000;
  return comm.plan(TensorView::host(ids.data(), DType::kInt32, {2, 1}), 2, ExpertMap(), options);
}

bool refused_as_overlap(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument &&
         status.message().find("another call on this communicator is running") !=
             std::string::npos &&
         status.message().find("must not overlap") != std::string::npos;
}

TEST(ConcurrentCalls, ASecondThreadOnOneCommunicator_IsRefusedAtOnce_AndTheGroupKeepsWorking) {
  auto made = Communicator::create_local(2, Topology::single_node(2));
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  std::vector<Communicator>& comms = made.value();
  std::vector<int32_t> ids = {0, 1};

  // Two threads of rank 0 plan at once. Rank 1 joins only once one of them was refused: so
  // the call that got rank 0's slot is still waiting for rank 1 when the other is refused,
  // and the refusal cannot have waited for rank 1.
  Status first, second;
  std::atomic<bool> refused_one{false};
  auto on_rank0 = [&](Status* status) {
    std::vector<int32_t> mine = ids;
    *status = plan_of(comms[0], mine).status();
    if (refused_as_overlap(*status)) refused_one = true;
  };
  std::thread a(on_rank0, &first);
  std::thread b(on_rank0, &second);
  for (int i = 0; i < 10000 && !refused_one; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(refused_one) << "neither call was refused within 10 s";
  std::vector<int32_t> rank1_ids = ids;
  const Status rank1 = plan_of(comms[1], rank1_ids).status();
  a.join();
  b.join();

  EXPECT_TRUE(rank1.ok()) << rank1.to_string();
  EXPECT_NE(first.ok(), second.ok()) << first.to_string() << " / " << second.to_string();
  const Status& refused = first.ok() ? second : first;
  EXPECT_TRUE(refused_as_overlap(refused)) << refused.to_string();
  EXPECT_NE(refused.message().find("Communicator::plan on rank 0"), std::string::npos);

  // Both ranks made one plan each: the group agrees and works.
  const auto statuses = run_ranks(2, [&](int r) -> Status {
    std::vector<int32_t> mine = ids;
    Result<Plan> plan = plan_of(comms[static_cast<size_t>(r)], mine);
    FUSCO_RETURN_IF_ERROR(plan.status());
    std::vector<float> x = {1, 2}, recv(static_cast<size_t>(plan.value().num_recv_rows()));
    return comms[static_cast<size_t>(r)].dispatch(
        plan.value(), TensorView::host(x.data(), DType::kFloat32, {2, 1}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.value().num_recv_rows(), 1}));
  });
  for (const Status& s : statuses) EXPECT_TRUE(s.ok()) << s.to_string();
}

}  // namespace
}  // namespace fusco::testing
