// A failed dispatch returns only once no other rank writes into the caller's buffers any
// more: a rank that stalls mid-operation makes the others time out, and they wait (bounded)
// for it to stop before returning.

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "engine/engine.hpp"
#include "plan/planner.hpp"
#include "testing/rank_threads.hpp"
#include "transport/inproc_transport.hpp"

namespace fusco::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The in-process transport, except that one rank sleeps inside its second doorbell ring
// (mid-operation, while it may touch peers' memory), and the moment each rank stops touching
// peers' memory is recorded.
class StallingTransport final : public transport::Transport {
 public:
  StallingTransport(std::shared_ptr<transport::InprocGroup> group, int rank, int slow,
                    std::chrono::milliseconds stall)
      : inner_(std::move(group), rank), slow_(slow), stall_(stall) {}

  int rank() const override { return inner_.rank(); }
  int world_size() const override { return inner_.world_size(); }
  uint64_t group_id() const override { return inner_.group_id(); }
  Status sync(const void* mine, std::vector<const void*>* all, const transport::Deadline& d,
              const char* what) override {
    return inner_.sync(mine, all, d, what);
  }
  Status alltoallv_consume(const std::vector<transport::Bytes>& send,
                           const transport::ConsumeFn& consume, const transport::Deadline& d,
                           const char* what) override {
    return inner_.alltoallv_consume(send, consume, d, what);
  }
  Status allgather(const void* mine, size_t bytes, std::byte* out, const transport::Deadline& d,
                   const char* what) override {
    return inner_.allgather(mine, bytes, out, d, what);
  }
  Status barrier(const transport::Deadline& d, const char* what) override {
    return inner_.barrier(d, what);
  }
  bool direct_access() const override { return inner_.direct_access(); }
  transport::StagingWindow& window(int from, int to) override { return inner_.window(from, to); }
  size_t max_chunk_bytes() const override { return inner_.max_chunk_bytes(); }
  uint64_t doorbell() const override { return inner_.doorbell(); }
  void ring(int peer) override {
    if (rank() == slow_ && armed_ && ++rings_ == 2) {
      std::this_thread::sleep_for(stall_);
    }
    inner_.ring(peer);
  }
  Status wait_doorbell(uint64_t seen, const transport::Deadline& d,
                       const std::function<std::string()>& waiting_for) override {
    return inner_.wait_doorbell(seen, d, waiting_for);
  }
  void abort(const std::string& reason) override { inner_.abort(reason); }
  Status health() const override { return inner_.health(); }
  bool broken() const override { return inner_.broken(); }
  void set_touching_peers(bool touching) override {
    if (touching_ && !touching) stopped_touching_ = Clock::now();  // the first stop counts
    touching_ = touching;
    inner_.set_touching_peers(touching);
  }
  std::string wait_peers_quiet(std::chrono::milliseconds grace) override {
    return inner_.wait_peers_quiet(grace);
  }

  void arm() { armed_ = true; }
  Clock::time_point stopped_touching() const { return stopped_touching_; }

 private:
  transport::InprocTransport inner_;
  int slow_;
  std::chrono::milliseconds stall_;
  bool armed_ = false;
  bool touching_ = false;
  int rings_ = 0;
  Clock::time_point stopped_touching_{};
};

struct Outcome {
  Status status;
  Clock::time_point returned;
};

// Plans (healthy), then dispatches with rank 1 stalling for `stall`; returns every rank's
// outcome and the transports.
std::vector<Outcome> dispatch_with_stall(std::chrono::milliseconds stall,
                                         std::vector<std::unique_ptr<StallingTransport>>& ts) {
  constexpr int kWorld = 4;
  constexpr int64_t kTokens = 64;
  constexpr int64_t kHidden = 64;
  auto group = std::make_shared<transport::InprocGroup>(kWorld);
  for (int r = 0; r < kWorld; ++r) {
    ts.push_back(std::make_unique<StallingTransport>(group, r, 1, stall));
  }
  PlanOptions options;
  options.timeout_ms = 500;    // grace = min(timeout, 1 s) = 500 ms
  options.chunk_bytes = 1024;  // many chunks: the stall lands mid-operation
  std::vector<Outcome> outcomes(kWorld);
  run_ranks(kWorld, [&](int r) -> Status {
    std::vector<int32_t> ids(kTokens * 2);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 5 + r) % 8);
    uint64_t plans_agreed = 0;
    plan::PlanMemory memory;
    auto plan =
        plan::make_plan(*ts[static_cast<size_t>(r)], Topology::nodes_of(kWorld, 2), &plans_agreed,
                        TensorView::host(ids.data(), DType::kInt32, {kTokens, 2}), 8, ExpertMap(),
                        options, Status(), memory);
    if (!plan.ok()) return plan.status();
    ts[static_cast<size_t>(r)]->arm();
    std::vector<float> x(kTokens * kHidden, 1.0f);
    std::vector<float> recv(static_cast<size_t>(plan.value()->num_recv_rows * kHidden));
    outcomes[static_cast<size_t>(r)].status = engine::dispatch(
        *ts[static_cast<size_t>(r)], plan.value().get(),
        TensorView::host(x.data(), DType::kFloat32, {kTokens, kHidden}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.value()->num_recv_rows, kHidden}));
    outcomes[static_cast<size_t>(r)].returned = Clock::now();
    return Status();
  });
  return outcomes;
}

TEST(PeerQuiet, FailedRanksReturnOnlyAfterTheStalledRankStoppedWriting) {
  std::vector<std::unique_ptr<StallingTransport>> ts;
  const auto outcomes = dispatch_with_stall(std::chrono::milliseconds(650), ts);
  for (int r = 0; r < 4; ++r) {
    const Outcome& o = outcomes[static_cast<size_t>(r)];
    ASSERT_FALSE(o.status.ok()) << "rank " << r;
    if (r == 1) continue;
    // The stall (650 ms) outlasts the timeout (500 ms) but not timeout + grace: the others
    // waited for rank 1 to stop and returned after it did.
    EXPECT_GE(o.returned, ts[1]->stopped_touching()) << "rank " << r << ": " << o.status.message();
    EXPECT_EQ(o.status.message().find("still active"), std::string::npos) << o.status.message();
  }
}

TEST(PeerQuiet, ARankStuckBeyondTheGraceIsNamedInTheError) {
  std::vector<std::unique_ptr<StallingTransport>> ts;
  const auto outcomes = dispatch_with_stall(std::chrono::milliseconds(2000), ts);
  bool named = false;
  for (int r : {0, 2, 3}) {
    const Status& s = outcomes[static_cast<size_t>(r)].status;
    ASSERT_FALSE(s.ok());
    named = named || s.message().find("rank(s) 1 were still active") != std::string::npos;
  }
  EXPECT_TRUE(named);
}

}  // namespace
}  // namespace fusco::testing
