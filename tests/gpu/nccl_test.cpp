// fusco::gpu::NcclCommunicator in one process: world size 1 through the NCCL path
// (communicator, symmetric windows, device communicator, LSA pointers and barriers) over the
// one-node routing cases, against the reference, and its argument checks — on both backends
// (the CUDA runs are skipped without a GPU; so is the check that creating one without a GPU
// says so, with one). tests/gpu/nccl_host_test.cpp runs several ranks as threads on the host
// backend, tests/process/nccl_mpi_test.cpp as processes with GPUs.

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>
#include <tuple>
#include <vector>

#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"
#include "gpu/nccl_rank.hpp"
#include "multirank/one_node_cases.hpp"
#include "testing/memory_allgather.hpp"

namespace fusco::testing {
namespace {

Communicator::BootstrapAllgather alone() {
  return [](const std::string& mine) -> Result<std::vector<std::string>> {
    return std::vector<std::string>{mine};
  };
}

// NcclCommunicator::create, or create_on_host.
Result<std::unique_ptr<gpu::NcclCommunicator>> create_on(Backend backend, Communicator host,
                                                         Communicator::BootstrapAllgather gather,
                                                         const gpu::NcclOptions& options) {
  return backend == Backend::kHost
             ? gpu::NcclCommunicator::create_on_host(std::move(host), std::move(gather), options)
             : gpu::NcclCommunicator::create(std::move(host), std::move(gather), options);
}

Result<std::unique_ptr<gpu::NcclCommunicator>> make_single(
    Backend backend, gpu::NcclPath path = gpu::NcclPath::kDeviceApi,
    int64_t window_bytes = 64 << 20) {
  auto host = Communicator::create_local(1, Topology::single_node(1));
  if (!host.ok()) return host.status();
  gpu::NcclOptions options;
  options.window_bytes = window_bytes;
  options.path = path;
  return create_on(backend, std::move(host.value()[0]), alone(), options);
}

class NcclCommunicatorRuns : public OnEveryBackend {};

TEST_P(NcclCommunicatorRuns, WorldSizeOne_EveryRoutingCase_MatchesReference_OnBothPaths) {
  for (gpu::NcclPath path : {gpu::NcclPath::kDeviceApi, gpu::NcclPath::kSendRecv}) {
    auto comm = make_single(GetParam(), path);
    ASSERT_TRUE(comm.ok()) << comm.status().to_string();
    ASSERT_EQ(comm.value()->path(), path);
    int index = 0;
    for (const Case& c : one_node_cases(1)) {
      const Expected want = expected_of(c);
      for (bool copy : {false, true}) {
        EXPECT_TRUE(matches_expected(c, want, 0, run_nccl_rank(c, *comm.value(), copy)))
            << "path " << static_cast<int>(path) << " case " << index
            << (copy ? " (expert_out copied in)" : "");
      }
      ++index;
    }
  }
}

TEST_P(NcclCommunicatorRuns, Synchronize_WaitsForTheCalls_OnBothPaths_AndRefusesANegativeTimeout) {
  for (gpu::NcclPath path : {gpu::NcclPath::kDeviceApi, gpu::NcclPath::kSendRecv}) {
    auto comm = make_single(GetParam(), path);
    ASSERT_TRUE(comm.ok()) << comm.status().to_string();
    const Case c = one_node_cases(1).front();
    EXPECT_TRUE(matches_expected(c, expected_of(c), 0, run_nccl_rank(c, *comm.value(), false)));
    EXPECT_TRUE(comm.value()->synchronize().ok()) << comm.value()->synchronize().to_string();
    EXPECT_TRUE(comm.value()->synchronize(1000).ok());
    const Status negative = comm.value()->synchronize(-1);
    EXPECT_EQ(negative.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(negative.message().find("timeout_ms = -1"), std::string::npos)
        << negative.to_string();
    EXPECT_NE(comm.value()->nccl(), nullptr);  // nothing was aborted
  }
}

TEST_P(NcclCommunicatorRuns, PlanOnDevice_WorldSizeOne_EveryRoutingCase_CapacityAndExpertMajor) {
  auto comm = make_single(GetParam(), gpu::NcclPath::kDeviceApi);
  ASSERT_TRUE(comm.ok()) << comm.status().to_string();
  int index = 0;
  for (Case c : one_node_cases(1)) {
    ++index;
    if (!c.replicas.empty()) continue;  // replica choice is planned on the host only
    for (const RecvLayout& layout :
         {RecvLayout::capacity_bounded(0), RecvLayout::capacity_bounded(5),
          RecvLayout::expert_major(1), RecvLayout::expert_major(8)}) {
      c.layout = layout;
      const Expected want = expected_of(c);
      EXPECT_TRUE(matches_expected(c, want, 0, run_nccl_rank(c, *comm.value(), false, true)))
          << "case " << index << " layout " << recv_layout_kind_name(layout.kind);
    }
  }
}

TEST_P(NcclCommunicatorRuns, PlanOnDevice_OnTheSendRecvPath_IsUnsupportedAndNamesPlan) {
  auto comm = make_single(GetParam(), gpu::NcclPath::kSendRecv);
  ASSERT_TRUE(comm.ok()) << comm.status().to_string();
  Case c;
  c.world = 1;
  c.ranks_per_node = 1;
  c.layout = RecvLayout::capacity_bounded(8);
  const RankResult got = run_nccl_rank(c, *comm.value(), false, true);
  EXPECT_EQ(got.status.code(), StatusCode::kUnsupported);
  EXPECT_NE(got.status.message().find("plan() has it"), std::string::npos) << got.status.message();
}

TEST_P(NcclCommunicatorRuns, RowsBeyondTheWindow_AreAClearError) {
  auto comm = make_single(GetParam(), gpu::NcclPath::kAuto, 4096);
  ASSERT_TRUE(comm.ok()) << comm.status().to_string();
  Case c;
  c.world = 1;
  c.ranks_per_node = 1;
  c.hidden = 1024;  // 24 tokens x 4 slots x 2 KiB rows: far more than 4 KiB
  const RankResult got = run_nccl_rank(c, *comm.value(), false);
  EXPECT_EQ(got.status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(got.status.message().find("FUSCO_NCCL_WINDOW_BYTES"), std::string::npos)
      << got.status.message();
}

TEST(NcclCommunicator, PathFromTheEnvironment_BadNameIsAClearError) {
  setenv("FUSCO_NCCL_PATH", "sendrecv", 1);
  Result<gpu::NcclOptions> chosen = gpu::NcclOptions::from_env();
  setenv("FUSCO_NCCL_PATH", "nvlink", 1);
  Result<gpu::NcclOptions> bad = gpu::NcclOptions::from_env();
  unsetenv("FUSCO_NCCL_PATH");
  ASSERT_TRUE(chosen.ok()) << chosen.status().to_string();
  EXPECT_EQ(chosen.value().path, gpu::NcclPath::kSendRecv);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("FUSCO_NCCL_PATH = 'nvlink' is not one of auto, device, "
                                        "sendrecv"),
            std::string::npos)
      << bad.status().message();
}

TEST(NcclCommunicator, InterNodeFromTheEnvironment_BadNameIsAClearError) {
  setenv("FUSCO_NCCL_INTER_NODE", "gin", 1);
  Result<gpu::NcclOptions> chosen = gpu::NcclOptions::from_env();
  setenv("FUSCO_NCCL_INTER_NODE", "rdma", 1);
  Result<gpu::NcclOptions> bad = gpu::NcclOptions::from_env();
  unsetenv("FUSCO_NCCL_INTER_NODE");
  ASSERT_TRUE(chosen.ok()) << chosen.status().to_string();
  EXPECT_EQ(chosen.value().inter_node, gpu::NcclInterNode::kGin);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("FUSCO_NCCL_INTER_NODE = 'rdma' is not one of sendrecv, "
                                        "gin"),
            std::string::npos)
      << bad.status().message();
}

TEST(NcclCommunicator, OptionsOutsideTheirEnums_AreRefusedNamingTheField) {
  for (const auto& [path, inter_node, field] :
       {std::tuple{3, 0, "options.path = 3"}, std::tuple{0, 7, "options.inter_node = 7"}}) {
    auto host = Communicator::create_local(1, Topology::single_node(1));
    ASSERT_TRUE(host.ok());
    gpu::NcclOptions options;
    options.path = static_cast<gpu::NcclPath>(path);
    options.inter_node = static_cast<gpu::NcclInterNode>(inter_node);
    auto comm = gpu::NcclCommunicator::create(std::move(host.value()[0]), alone(), options);
    ASSERT_FALSE(comm.ok());
    EXPECT_EQ(comm.status().code(), StatusCode::kInvalidArgument) << comm.status().to_string();
    EXPECT_NE(comm.status().message().find(field), std::string::npos) << comm.status().message();
  }
}

TEST_P(NcclCommunicatorRuns, OptionsThatDifferBetweenRanks_AreAMismatchOnEveryRank) {
  auto two = Communicator::create_local(2, Topology::single_node(2));
  ASSERT_TRUE(two.ok());
  // Rank 1 asks for another window size: both fail at setup, before any NCCL call.
  testing::MemoryAllgather exchange(2);
  std::vector<Status> got(2);
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      gpu::NcclOptions options;
      if (r == 1) options.window_bytes *= 2;
      got[static_cast<size_t>(r)] =
          create_on(GetParam(), std::move(two.value()[static_cast<size_t>(r)]), exchange.of(r),
                    options)
              .status();
    });
  }
  for (std::thread& t : ranks) t.join();
  for (const Status& s : got) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch) << s.to_string();
    EXPECT_NE(s.message().find("NcclOptions.window_bytes differs across ranks"), std::string::npos)
        << s.message();
  }
}

TEST(NcclCommunicator, WithoutAGpu_CreateSaysSo) {
  if (cuda_devices() > 0) GTEST_SKIP() << "a CUDA device is present";
  auto comm = make_single(Backend::kCuda);
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), StatusCode::kUnsupported) << comm.status().to_string();
  EXPECT_NE(comm.status().message().find("cudaGetDevice"), std::string::npos);
}

// Rows between nodes need relays that store into their node peers (the device API): the
// ncclSend/ncclRecv path is refused for several nodes before any CUDA or NCCL call.
TEST(NcclCommunicator, SeveralNodes_OnTheSendRecvPath_AreRefusedNamingThePath) {
  auto two = Communicator::create_local(2, Topology::nodes_of(2, 1));
  ASSERT_TRUE(two.ok());
  gpu::NcclOptions options;
  options.path = gpu::NcclPath::kSendRecv;
  auto comm = gpu::NcclCommunicator::create(
      std::move(two.value()[0]),
      [](const std::string& mine) -> Result<std::vector<std::string>> {
        return std::vector<std::string>{mine, mine};
      },
      options);
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(comm.status().message().find("options.path = sendrecv"), std::string::npos)
      << comm.status().message();
}

FUSCO_ON_EVERY_BACKEND(NcclCommunicatorRuns);

}  // namespace
}  // namespace fusco::testing
