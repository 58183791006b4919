// The bounded barrier of a node's ranks (kernels/bounded_barrier.cu with its host side,
// src/gpu/node_barrier.hpp), run by logical ranks sharing one device, their arrival slots in
// plain device memory, on both backends: members that all come pass every barrier (on the
// host backend with each rank's barriers queued by its own thread, and with one thread
// queueing all: lazy streams run a member up to its arrival); a peer that never comes costs
// one timeout, after which the waiting rank's health names it, the step and the timeout, and
// later barriers wait no more. The CUDA runs are skipped without a GPU.

#include "gpu/node_barrier.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

#include "gpu/device_buffer.hpp"
#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"

namespace fusco::testing {
namespace {

const gpu::DeviceOps& ops_of(Backend backend) {
  return backend == Backend::kHost ? gpu::host_ops() : gpu::cuda_ops();
}

// `ranks` arrival-slot arrays in one zeroed device allocation, as a peer table.
core::PeerTable zeroed_slots(const gpu::DeviceOps& ops, gpu::DeviceBuffer& memory, int ranks) {
  const size_t each = sizeof(uint64_t) * core::kMaxDirectPeers;
  const std::vector<uint64_t> zeros(core::kMaxDirectPeers * static_cast<size_t>(ranks), 0);
  memory = std::move(gpu::DeviceBuffer::upload(zeros, "slots", ops)).value();
  core::PeerTable table{};
  for (int r = 0; r < ranks; ++r) {
    table.base[r] = static_cast<char*>(memory.data()) + each * static_cast<size_t>(r);
  }
  return table;
}

// The members of one barrier group on a backend, with a stream each and their arrival slots.
struct Members {
  const gpu::DeviceOps* ops;
  gpu::DeviceBuffer memory;
  core::PeerTable slots;
  std::vector<std::unique_ptr<gpu::NodeBarrier>> barriers;
  std::vector<cudaStream_t> streams;

  Members(Backend backend_kind, int ranks)
      : ops(&ops_of(backend_kind)), slots(zeroed_slots(*ops, memory, ranks)) {
    const gpu::DeviceOps& backend = *ops;
    for (int r = 0; r < ranks; ++r) {
      auto made = gpu::NodeBarrier::create(backend, r, 0, ranks);
      EXPECT_TRUE(made.ok()) << made.status().to_string();
      barriers.push_back(std::move(made).value());
      cudaStream_t stream = nullptr;
      EXPECT_TRUE(backend.create_stream(&stream).ok());
      streams.push_back(stream);
    }
  }
  ~Members() {
    for (cudaStream_t stream : streams) ops->destroy_stream(stream);
  }
  Members(const Members&) = delete;
  Members& operator=(const Members&) = delete;
};

class NodeBarrierRuns : public OnEveryBackend {};

TEST_P(NodeBarrierRuns, MembersThatAllCome_PassEveryBarrier) {
  constexpr int kRanks = 3;
  Members members(GetParam(), kRanks);
  const gpu::DeviceOps& ops = *members.ops;
  for (int round = 0; round < 5; ++round) {
    for (int r = 0; r < kRanks; ++r) {
      const auto rr = static_cast<size_t>(r);
      ASSERT_TRUE(
          members.barriers[rr]->sync(members.slots, 10000, "round", members.streams[rr]).ok());
    }
  }
  for (int r = 0; r < kRanks; ++r) {
    const auto rr = static_cast<size_t>(r);
    ASSERT_TRUE(ops.synchronize(members.streams[rr], "test").ok());
    EXPECT_TRUE(members.barriers[rr]->health().ok()) << members.barriers[rr]->health().to_string();
  }
}

TEST_P(NodeBarrierRuns, MembersOnThreadsOfTheirOwn_PassEveryBarrier_WhoeverWaitsFirst) {
  constexpr int kRanks = 4;
  Members members(GetParam(), kRanks);
  const gpu::DeviceOps& ops = *members.ops;
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      const auto rr = static_cast<size_t>(r);
      for (int round = 0; round < 20; ++round) {
        EXPECT_TRUE(
            members.barriers[rr]->sync(members.slots, 20000, "round", members.streams[rr]).ok());
        // Some ranks wait on every round, others only at the end.
        if (r % 2 == 0) {
          EXPECT_TRUE(ops.synchronize(members.streams[rr], "round").ok());
        }
      }
      EXPECT_TRUE(ops.synchronize(members.streams[rr], "test").ok());
      EXPECT_TRUE(members.barriers[rr]->health().ok())
          << members.barriers[rr]->health().to_string();
    });
  }
  for (std::thread& thread : threads) thread.join();
}

TEST_P(NodeBarrierRuns, APeerThatNeverComes_CostsOneTimeout_AndIsNamed) {
  const gpu::DeviceOps& ops = ops_of(GetParam());
  gpu::DeviceBuffer memory;
  const core::PeerTable slots = zeroed_slots(ops, memory, 2);
  auto made = gpu::NodeBarrier::create(ops, 0, 0, 2);  // rank 1 never calls
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  gpu::NodeBarrier& barrier = *made.value();
  cudaStream_t stream = nullptr;
  ASSERT_TRUE(ops.create_stream(&stream).ok());
  ASSERT_TRUE(barrier.sync(slots, 50, "dispatch (receive windows free)", stream).ok());
  ASSERT_TRUE(ops.synchronize(stream, "test").ok());  // returns: the wait was bounded
  const Status health = barrier.health();
  ASSERT_EQ(health.code(), StatusCode::kAborted) << health.to_string();
  for (const char* words : {"waited more than 50 ms for rank 1", "dispatch (receive windows free)",
                            "must be recreated"}) {
    EXPECT_NE(health.message().find(words), std::string::npos) << health.message();
  }
  ASSERT_TRUE(barrier.sync(slots, 60000, "combine", stream).ok());  // no wait after a fault
  ASSERT_TRUE(ops.synchronize(stream, "test").ok());
  EXPECT_NE(barrier.health().message().find("dispatch"), std::string::npos)
      << "the first fault stays the one reported";
  ops.destroy_stream(stream);
}

FUSCO_ON_EVERY_BACKEND(NodeBarrierRuns);

}  // namespace
}  // namespace fusco::testing
