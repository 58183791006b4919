// The host backend of the GPU engine (gpu/device_ops.hpp, DeviceGroup::create_on_host):
// its streams run work only when forced, in the order events allow, so that work reading a
// buffer without waiting for its writer reads stale bytes in every run; and what it does not
// run says so.

#include <gtest/gtest.h>

#include <vector>

#include "baseline/unfused_device.hpp"
#include "fusco/gpu.hpp"
#include "gpu/device_ops.hpp"
#include "gpu/device_plan_impl.hpp"

namespace fusco::testing {
namespace {

// Three host streams, an event, and buffers a, b, c of 4 bytes (1, 2, 3 in every byte).
struct Streams {
  const gpu::DeviceOps& ops = gpu::host_ops();
  cudaStream_t s[3] = {};
  cudaEvent_t event = nullptr;
  std::vector<char> a = std::vector<char>(4, 1), b = std::vector<char>(4, 2),
                    c = std::vector<char>(4, 3);

  Streams() {
    for (cudaStream_t& stream : s) EXPECT_TRUE(ops.create_stream(&stream).ok());
    EXPECT_TRUE(ops.create_event(&event).ok());
  }
  ~Streams() {
    ops.destroy_event(event);
    for (cudaStream_t stream : s) ops.destroy_stream(stream);
  }
};

TEST(HostStreams, QueuedWork_RunsWhenTheHostWaits) {
  Streams t;
  ASSERT_TRUE(t.ops.copy(t.b.data(), t.a.data(), 4, t.s[0], "copy").ok());
  EXPECT_EQ(t.b[0], 2) << "work ran before anything waited for it";
  ASSERT_TRUE(t.ops.synchronize(t.s[0], "sync").ok());
  EXPECT_EQ(t.b[0], 1);
}

TEST(HostStreams, AWaitedEvent_RunsItsStreamUpToTheRecordOnly) {
  Streams t;
  ASSERT_TRUE(t.ops.copy(t.b.data(), t.a.data(), 4, t.s[0], "a -> b").ok());
  ASSERT_TRUE(t.ops.record(t.event, t.s[0], "record").ok());
  ASSERT_TRUE(t.ops.zero(t.a.data(), 4, t.s[0], "after the record").ok());
  ASSERT_TRUE(t.ops.wait(t.s[1], t.event, "wait").ok());
  ASSERT_TRUE(t.ops.copy(t.c.data(), t.b.data(), 4, t.s[1], "b -> c").ok());
  ASSERT_TRUE(t.ops.synchronize(t.s[1], "sync").ok());
  EXPECT_EQ(t.c[0], 1) << "b -> c ran before a -> b, which it waited for";
  EXPECT_EQ(t.a[0], 1) << "work queued after the record ran";
}

TEST(HostStreams, ReadingWithoutAWait_ReadsStaleBytesEveryTime) {
  // The shape of a missed barrier: stream 1 reads what stream 0 writes, without waiting.
  Streams t;
  ASSERT_TRUE(t.ops.copy(t.b.data(), t.a.data(), 4, t.s[0], "a -> b").ok());
  ASSERT_TRUE(t.ops.copy(t.c.data(), t.b.data(), 4, t.s[1], "b -> c").ok());
  ASSERT_TRUE(t.ops.synchronize(t.s[1], "sync").ok());
  EXPECT_EQ(t.c[0], 2);
}

TEST(HostStreams, AWaitOnANeverRecordedEvent_WaitsForNothing) {
  Streams t;
  ASSERT_TRUE(t.ops.wait(t.s[1], t.event, "wait").ok());
  ASSERT_TRUE(t.ops.copy(t.c.data(), t.b.data(), 4, t.s[1], "b -> c").ok());
  ASSERT_TRUE(t.ops.synchronize(t.s[1], "sync").ok());
  EXPECT_EQ(t.c[0], 2);
}

TEST(HostStreams, ADestroyedStream_RunsItsWorkFirst) {
  Streams t;
  cudaStream_t extra = nullptr;
  ASSERT_TRUE(t.ops.create_stream(&extra).ok());
  ASSERT_TRUE(t.ops.copy(t.b.data(), t.a.data(), 4, extra, "a -> b").ok());
  ASSERT_TRUE(t.ops.record(t.event, extra, "record").ok());
  t.ops.destroy_stream(extra);
  EXPECT_EQ(t.b[0], 1);
  // A wait for an event of the destroyed stream still holds (it has run).
  ASSERT_TRUE(t.ops.wait(t.s[0], t.event, "wait").ok());
  ASSERT_TRUE(t.ops.synchronize(t.s[0], "sync").ok());
}

TEST(HostBackend, EveryRanksStores_StartAtTheRankAfterIt) {
  // Review defect 5: with every source storing to rank 0 first, one GPU's inbound link
  // carried the whole node at a time.
  constexpr int kWorld = 4;
  auto group = gpu::DeviceGroup::create_on_host(kWorld);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  std::vector<int64_t> ids = {0, 1, 2, 3, 3, 2, 1, 0};  // two tokens, one expert per rank each
  TensorView idx = TensorView::host(ids.data(), DType::kInt64, {2, 4});
  auto plans = group.value()->plan(std::vector<TensorView>(kWorld, idx), kWorld);
  ASSERT_TRUE(plans.ok()) << plans.status().to_string();
  for (int r = 0; r < kWorld; ++r) {
    const gpu::DevicePlan::Impl& plan = plans.value()[static_cast<size_t>(r)].impl();
    ASSERT_EQ(plan.num_stores(), 8);
    std::vector<int32_t> order;  // host memory on the host backend
    for (int64_t i = 0; i < plan.num_stores(); ++i) order.push_back(plan.programme.stores[i].rank);
    std::vector<int32_t> expected;
    for (int step = 1; step <= kWorld; ++step) {
      expected.insert(expected.end(), 2, static_cast<int32_t>((r + step) % kWorld));
    }
    EXPECT_EQ(order, expected) << "rank " << r;
  }
}

TEST(HostBackend, CreateOnHost_ChecksItsArgumentsAsCreateDoes) {
  auto wide = gpu::DeviceGroup::create_on_host(73);
  ASSERT_FALSE(wide.ok());
  EXPECT_NE(wide.status().message().find("world_size = 73 is outside [1, 72]"), std::string::npos)
      << wide.status().message();
  auto negative = gpu::DeviceGroup::create_on_host(4, -1);
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("ranks_per_node = -1"), std::string::npos)
      << negative.status().message();
  auto group = gpu::DeviceGroup::create_on_host(4, 2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  EXPECT_TRUE(group.value()->on_host());
  EXPECT_EQ(group.value()->device(), -1);
  EXPECT_EQ(group.value()->world_size(), 4);
}

TEST(HostBackend, TheUnfusedBaseline_SaysItNeedsCuda) {
  auto group = gpu::DeviceGroup::create_on_host(2);
  ASSERT_TRUE(group.ok()) << group.status().to_string();
  std::vector<int64_t> ids = {0, 1, 1, 0};
  const TensorView idx = TensorView::host(ids.data(), DType::kInt64, {2, 2});
  auto plans = group.value()->plan({idx, idx}, 2);
  ASSERT_TRUE(plans.ok()) << plans.status().to_string();
  auto baseline = baseline::UnfusedDevice::create(*group.value(), plans.value(), 16);
  ASSERT_FALSE(baseline.ok());
  EXPECT_EQ(baseline.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(baseline.status().message().find("host backend"), std::string::npos)
      << baseline.status().message();
}

}  // namespace
}  // namespace fusco::testing
