// dispatch_async / combine_async: the call runs on the communicator's progress thread while
// the caller computes; results equal the synchronous calls bit for bit, calls keep the order
// they were made in, and argument errors come back through Work::wait().

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "fusco/fusco.hpp"
#include "testing/data.hpp"
#include "testing/rank_threads.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {
namespace {

constexpr int kWorld = 4;
constexpr int kTopk = 4;
constexpr int64_t kExperts = 16;
constexpr int64_t kTokens = 96;
constexpr int64_t kHidden = 40;

struct RankData {
  std::vector<int32_t> ids;
  std::vector<float> x, w;
  Plan plan;
  std::vector<float> recv, out;      // synchronous results
  std::vector<float> recv_a, out_a;  // asynchronous results
  std::vector<float> shared;         // the "shared expert" computed meanwhile
};

TensorView view(std::vector<float>& v, int64_t rows, int64_t cols) {
  return TensorView::host(v.data(), DType::kFloat32, {rows, cols});
}

// A shared expert: x @ M with M[i][j] = (i + j) % 5 - 2, on the caller's thread.
std::vector<float> shared_expert(const std::vector<float>& x) {
  std::vector<float> y(x.size(), 0.0F);
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t j = 0; j < kHidden; ++j) {
      float acc = 0.0F;
      for (int64_t i = 0; i < kHidden; ++i) {
        acc += x[static_cast<size_t>(t * kHidden + i)] * static_cast<float>((i + j) % 5 - 2);
      }
      y[static_cast<size_t>(t * kHidden + j)] = acc;
    }
  }
  return y;
}

std::vector<RankData> make_data() {
  std::vector<RankData> data(kWorld);
  const Topology topology = Topology::nodes_of(kWorld, 2);
  for (int r = 0; r < kWorld; ++r) {
    RankData& d = data[static_cast<size_t>(r)];
    d.ids = generate_routing(RoutingSpec{}, kTokens, kTopk, kExperts, r, topology, 5);
    const std::vector<std::byte> x = random_elements(DType::kFloat32, kTokens * kHidden, 10 + r);
    const std::vector<std::byte> w = random_elements(DType::kFloat32, kTokens * kTopk, 20 + r);
    d.x.resize(kTokens * kHidden);
    d.w.resize(kTokens * kTopk);
    std::memcpy(d.x.data(), x.data(), x.size());
    std::memcpy(d.w.data(), w.data(), w.size());
  }
  return data;
}

TEST(Async, OverlapsWithComputeAndEqualsTheSynchronousCalls) {
  auto comms = Communicator::create_local(kWorld, Topology::nodes_of(kWorld, 2)).value();
  std::vector<RankData> data = make_data();
  const std::vector<Status> statuses = run_ranks(kWorld, [&](int r) -> Status {
    RankData& d = data[static_cast<size_t>(r)];
    Communicator& comm = comms[static_cast<size_t>(r)];
    PlanOptions options;
    options.chunk_bytes = 1024;  // many chunks: the call takes a while
    Result<Plan> plan = comm.plan(TensorView::host(d.ids.data(), DType::kInt32, {kTokens, kTopk}),
                                  kExperts, ExpertMap(), options);
    FUSCO_RETURN_IF_ERROR(plan.status());
    d.plan = plan.value();
    const int64_t rows = d.plan.num_recv_rows();
    d.recv_a.assign(static_cast<size_t>(rows * kHidden), -1.0F);
    d.out_a.assign(static_cast<size_t>(kTokens * kHidden), -1.0F);
    // Dispatch in flight while the shared expert runs here.
    Work dispatched =
        comm.dispatch_async(d.plan, view(d.x, kTokens, kHidden), view(d.recv_a, rows, kHidden));
    d.shared = shared_expert(d.x);
    FUSCO_RETURN_IF_ERROR(dispatched.wait());
    EXPECT_TRUE(dispatched.done());
    Work combined = comm.combine_async(d.plan, view(d.recv_a, rows, kHidden),
                                       view(d.w, kTokens, kTopk), view(d.out_a, kTokens, kHidden));
    FUSCO_RETURN_IF_ERROR(combined.wait());
    FUSCO_RETURN_IF_ERROR(combined.wait());  // waiting again gives the same status
    // The same calls, synchronously.
    d.recv.resize(d.recv_a.size());
    d.out.resize(d.out_a.size());
    FUSCO_RETURN_IF_ERROR(
        comm.dispatch(d.plan, view(d.x, kTokens, kHidden), view(d.recv, rows, kHidden)));
    return comm.combine(d.plan, view(d.recv, rows, kHidden), view(d.w, kTokens, kTopk),
                        view(d.out, kTokens, kHidden));
  });
  ASSERT_TRUE(first_error(statuses).ok()) << first_error(statuses).to_string();
  for (const RankData& d : data) {
    EXPECT_EQ(d.recv_a, d.recv);
    EXPECT_EQ(d.out_a, d.out);
    EXPECT_EQ(d.shared, shared_expert(d.x));
  }
}

TEST(Async, CallsRunInTheOrderTheyWereMade) {
  auto comms = Communicator::create_local(kWorld, Topology::nodes_of(kWorld, 2)).value();
  std::vector<RankData> data = make_data();
  const std::vector<Status> statuses = run_ranks(kWorld, [&](int r) -> Status {
    RankData& d = data[static_cast<size_t>(r)];
    Communicator& comm = comms[static_cast<size_t>(r)];
    Result<Plan> plan =
        comm.plan(TensorView::host(d.ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts);
    FUSCO_RETURN_IF_ERROR(plan.status());
    d.plan = plan.value();
    const int64_t rows = d.plan.num_recv_rows();
    d.recv_a.assign(static_cast<size_t>(rows * kHidden), 0.0F);
    d.out_a.assign(static_cast<size_t>(kTokens * kHidden), 0.0F);
    // Posted back to back: combine reads what dispatch writes, so order matters.
    Work first =
        comm.dispatch_async(d.plan, view(d.x, kTokens, kHidden), view(d.recv_a, rows, kHidden));
    Work second = comm.combine_async(d.plan, view(d.recv_a, rows, kHidden),
                                     view(d.w, kTokens, kTopk), view(d.out_a, kTokens, kHidden));
    // A synchronous collective call waits for both.
    Result<Plan> again =
        comm.plan(TensorView::host(d.ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts);
    FUSCO_RETURN_IF_ERROR(again.status());
    EXPECT_TRUE(first.done() && second.done());
    FUSCO_RETURN_IF_ERROR(first.wait());
    FUSCO_RETURN_IF_ERROR(second.wait());
    d.recv.resize(d.recv_a.size());
    d.out.resize(d.out_a.size());
    FUSCO_RETURN_IF_ERROR(
        comm.dispatch(again.value(), view(d.x, kTokens, kHidden), view(d.recv, rows, kHidden)));
    return comm.combine(again.value(), view(d.recv, rows, kHidden), view(d.w, kTokens, kTopk),
                        view(d.out, kTokens, kHidden));
  });
  ASSERT_TRUE(first_error(statuses).ok()) << first_error(statuses).to_string();
  for (const RankData& d : data) {
    EXPECT_EQ(d.recv_a, d.recv);
    EXPECT_EQ(d.out_a, d.out);
  }
}

TEST(Async, ArgumentErrorComesBackThroughWait_GroupStaysUsable) {
  auto comms = Communicator::create_local(kWorld, Topology::nodes_of(kWorld, 2)).value();
  std::vector<RankData> data = make_data();
  const std::vector<Status> statuses = run_ranks(kWorld, [&](int r) -> Status {
    RankData& d = data[static_cast<size_t>(r)];
    Communicator& comm = comms[static_cast<size_t>(r)];
    Result<Plan> plan =
        comm.plan(TensorView::host(d.ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts);
    FUSCO_RETURN_IF_ERROR(plan.status());
    const int64_t rows = plan.value().num_recv_rows();
    d.recv.assign(static_cast<size_t>(rows * kHidden), 0.0F);
    const int64_t tokens = r == 1 ? kTokens - 1 : kTokens;  // rank 1: wrong token count
    const Status bad =
        comm.dispatch_async(plan.value(), view(d.x, tokens, kHidden), view(d.recv, rows, kHidden))
            .wait();
    const std::string expected = r == 1 ? "x is" : "rank 1 rejected";
    if (bad.code() != StatusCode::kInvalidArgument ||
        bad.message().find(expected) == std::string::npos) {
      return Status(StatusCode::kInternal, "unexpected: " + bad.to_string());
    }
    return comm
        .dispatch_async(plan.value(), view(d.x, kTokens, kHidden), view(d.recv, rows, kHidden))
        .wait();
  });
  EXPECT_TRUE(first_error(statuses).ok()) << first_error(statuses).to_string();
}

TEST(Async, DefaultWorkIsFinished) {
  const Work work;
  EXPECT_TRUE(work.done());
  EXPECT_TRUE(work.wait().ok());
}

}  // namespace
}  // namespace fusco::testing
