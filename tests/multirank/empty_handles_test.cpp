// Handles without a group or a plan behind them (issue 18, class 13): a default-made Plan and
// a moved-from Communicator answer every accessor and call with an empty value or a clear
// error, never a crash, and the communicator they were moved to keeps working.

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "fusco/fusco.hpp"

namespace fusco::testing {
namespace {

TensorView ids_view(std::vector<int32_t>& ids) {
  return TensorView::host(ids.data(), DType::kInt32, {static_cast<int64_t>(ids.size()), 1});
}

void expect_no_group(const Status& status, const char* call) {
  EXPECT_EQ(status.code(), StatusCode::kInvalidArgument) << status.to_string();
  EXPECT_NE(status.message().find(std::string("Communicator::") + call), std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("moved from"), std::string::npos) << status.message();
}

TEST(EmptyPlan, AccessorsReturnNothing_AndCallsWithItAreAClearError) {
  const Plan empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_EQ(empty.rank(), -1);
  EXPECT_EQ(empty.num_tokens(), 0);
  EXPECT_EQ(empty.topk(), 0);
  EXPECT_EQ(empty.num_experts(), 0);
  EXPECT_EQ(empty.num_recv_rows(), 0);
  EXPECT_TRUE(empty.tokens_per_expert().empty());
  EXPECT_TRUE(empty.padded_tokens_per_expert().empty());
  EXPECT_TRUE(empty.dropped_per_expert().empty());
  EXPECT_TRUE(empty.recv_local_experts().empty());
  EXPECT_TRUE(empty.local_experts().empty());
  EXPECT_TRUE(empty.slot_ranks().empty());
  EXPECT_EQ(empty.stats().num_tokens, 0);
  EXPECT_EQ(empty.combine_rounds(64), 1);
  EXPECT_EQ(empty.topology().world_size, Topology().world_size);
  EXPECT_EQ(empty.options().timeout_ms, PlanOptions().timeout_ms);

  auto comms = Communicator::create_local(1, Topology::single_node(1));
  ASSERT_TRUE(comms.ok()) << comms.status().to_string();
  std::vector<float> x(4), out(4);
  const TensorView rows = TensorView::host(x.data(), DType::kFloat32, {1, 4});
  const Status dispatched = comms.value()[0].dispatch(empty, rows, rows);
  EXPECT_EQ(dispatched.code(), StatusCode::kInvalidArgument) << dispatched.to_string();
  EXPECT_NE(dispatched.message().find("plan is empty"), std::string::npos);
  std::vector<float> w(1);
  const Status combined =
      comms.value()[0].combine(empty, rows, TensorView::host(w.data(), DType::kFloat32, {1, 1}),
                               TensorView::host(out.data(), DType::kFloat32, {1, 4}));
  EXPECT_EQ(combined.code(), StatusCode::kInvalidArgument) << combined.to_string();
}

TEST(MovedFromCommunicator, EveryCallIsAClearError_AndTheNewOwnerWorks) {
  auto made = Communicator::create_local(1, Topology::single_node(1));
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  Communicator& old_owner = made.value()[0];
  Communicator owner = std::move(old_owner);

  EXPECT_EQ(old_owner.rank(), -1);  // NOLINT(bugprone-use-after-move): what the test is for
  EXPECT_EQ(old_owner.world_size(), 0);
  EXPECT_EQ(old_owner.topology().world_size, 0);
  EXPECT_FALSE(old_owner.usable());
  old_owner.abort("nothing to abort");

  std::vector<int32_t> ids = {0, -1, 0};
  const Result<Plan> no_plan = old_owner.plan(ids_view(ids), 1);
  expect_no_group(no_plan.status(), "plan");
  expect_no_group(old_owner.plan(ids_view(ids), 1, ExpertMap(), PlanOptions()).status(), "plan");

  Result<Plan> plan = owner.plan(ids_view(ids), 1);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  ASSERT_EQ(plan.value().num_recv_rows(), 2);
  std::vector<float> x = {1, 2, 3}, recv(2), w = {0.5f, 1, 2}, out(3);
  const TensorView x_view = TensorView::host(x.data(), DType::kFloat32, {3, 1});
  const TensorView recv_view = TensorView::host(recv.data(), DType::kFloat32, {2, 1});
  const TensorView w_view = TensorView::host(w.data(), DType::kFloat32, {3, 1});
  const TensorView out_view = TensorView::host(out.data(), DType::kFloat32, {3, 1});
  expect_no_group(old_owner.dispatch(plan.value(), x_view, recv_view), "dispatch");
  expect_no_group(old_owner.dispatch(plan.value(), x_view, recv_view, x_view, recv_view),
                  "dispatch");
  expect_no_group(old_owner.combine(plan.value(), recv_view, w_view, out_view), "combine");
  expect_no_group(old_owner.dispatch_async(plan.value(), x_view, recv_view).wait(),
                  "dispatch_async");
  expect_no_group(
      old_owner.dispatch_async(plan.value(), x_view, recv_view, x_view, recv_view).wait(),
      "dispatch_async");
  expect_no_group(old_owner.combine_async(plan.value(), recv_view, w_view, out_view).wait(),
                  "combine_async");

  ASSERT_TRUE(owner.dispatch(plan.value(), x_view, recv_view).ok());
  EXPECT_EQ(recv, (std::vector<float>{1, 3}));
  ASSERT_TRUE(owner.combine(plan.value(), recv_view, w_view, out_view).ok());
  EXPECT_EQ(out, (std::vector<float>{0.5f, 0, 6}));
}

}  // namespace
}  // namespace fusco::testing
