// The bounded barrier of a node's ranks (kernels/bounded_barrier.cu with its host side,
// src/gpu/node_barrier.hpp), run by logical ranks sharing one GPU, their arrival slots in
// plain device memory: members that all come pass every barrier; a peer that never comes
// costs one timeout, after which the waiting rank's health names it, the step and the
// timeout, and later barriers wait no more. Skipped without a GPU.

#include "gpu/node_barrier.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "gpu/device_buffer.hpp"
#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"

namespace fusco::testing {
namespace {

// `ranks` arrival-slot arrays in one zeroed device allocation, as a peer table.
core::PeerTable zeroed_slots(gpu::DeviceBuffer& memory, int ranks) {
  const size_t each = sizeof(uint64_t) * core::kMaxDirectPeers;
  memory =
      std::move(gpu::DeviceBuffer::allocate(each * static_cast<size_t>(ranks), "slots")).value();
  EXPECT_EQ(cudaMemset(memory.data(), 0, each * static_cast<size_t>(ranks)), cudaSuccess);
  core::PeerTable table{};
  for (int r = 0; r < ranks; ++r) {
    table.base[r] = static_cast<char*>(memory.data()) + each * static_cast<size_t>(r);
  }
  return table;
}

TEST(NodeBarrier, MembersThatAllCome_PassEveryBarrier) {
  FUSCO_SKIP_WITHOUT_GPU();
  constexpr int kRanks = 3;
  gpu::DeviceBuffer memory;
  const core::PeerTable slots = zeroed_slots(memory, kRanks);
  std::vector<std::unique_ptr<gpu::NodeBarrier>> barriers;
  std::vector<cudaStream_t> streams(kRanks);
  for (int r = 0; r < kRanks; ++r) {
    auto made = gpu::NodeBarrier::create(r, 0, kRanks);
    ASSERT_TRUE(made.ok()) << made.status().to_string();
    barriers.push_back(std::move(made).value());
    ASSERT_EQ(cudaStreamCreateWithFlags(&streams[static_cast<size_t>(r)], cudaStreamNonBlocking),
              cudaSuccess);
  }
  for (int round = 0; round < 5; ++round) {
    for (int r = 0; r < kRanks; ++r) {
      const auto rr = static_cast<size_t>(r);
      ASSERT_TRUE(barriers[rr]->sync(slots, 10000, "round", streams[rr]).ok());
    }
  }
  for (int r = 0; r < kRanks; ++r) {
    const auto rr = static_cast<size_t>(r);
    ASSERT_EQ(cudaStreamSynchronize(streams[rr]), cudaSuccess);
    EXPECT_TRUE(barriers[rr]->health().ok()) << barriers[rr]->health().to_string();
    cudaStreamDestroy(streams[rr]);
  }
}

TEST(NodeBarrier, APeerThatNeverComes_CostsOneTimeout_AndIsNamed) {
  FUSCO_SKIP_WITHOUT_GPU();
  gpu::DeviceBuffer memory;
  const core::PeerTable slots = zeroed_slots(memory, 2);
  auto made = gpu::NodeBarrier::create(0, 0, 2);  // rank 1 never calls
  ASSERT_TRUE(made.ok()) << made.status().to_string();
  gpu::NodeBarrier& barrier = *made.value();
  cudaStream_t stream = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  ASSERT_TRUE(barrier.sync(slots, 50, "dispatch (receive windows free)", stream).ok());
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);  // returns: the wait was bounded
  const Status health = barrier.health();
  ASSERT_EQ(health.code(), StatusCode::kAborted) << health.to_string();
  for (const char* words : {"waited more than 50 ms for rank 1", "dispatch (receive windows free)",
                            "must be recreated"}) {
    EXPECT_NE(health.message().find(words), std::string::npos) << health.message();
  }
  ASSERT_TRUE(barrier.sync(slots, 60000, "combine", stream).ok());  // no wait after a fault
  ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
  EXPECT_NE(barrier.health().message().find("dispatch"), std::string::npos)
      << "the first fault stays the one reported";
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace fusco::testing
