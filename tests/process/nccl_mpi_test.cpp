// fusco::gpu::NcclCommunicator with ranks as MPI processes, one GPU each (rank r uses device
// r): every one-node routing case gives each rank the reference's results bit for bit, on the
// device-API and the ncclSend/ncclRecv path, with expert outputs written into the window and
// passed from elsewhere, and with plans made on the GPUs (plan_on_device); the ranks grouped
// into two nodes, rows between them staged through relays by ncclSend/ncclRecv. Skipped (on every
// rank) where the machine has fewer GPUs than processes: NCCL takes one GPU per rank.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "fusco/mpi.hpp"
#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"
#include "gpu/nccl_rank.hpp"
#include "multirank/one_node_cases.hpp"

namespace fusco::testing {
namespace {

// This process's rank and the group's size; "" when every rank has a GPU of its own (then
// rank r's current device is r), else why the test skips.
std::string gpu_per_rank(int& rank, int& world) {
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (cuda_devices() < world) {
    return std::to_string(cuda_devices()) + " GPU(s) for " + std::to_string(world) + " ranks";
  }
  return cudaSetDevice(rank) == cudaSuccess ? "" : "cudaSetDevice failed";
}

// The NCCL communicator of this process, its ranks grouped into nodes of `ranks_per_node`.
Result<std::unique_ptr<gpu::NcclCommunicator>> create_nccl(int ranks_per_node, gpu::NcclPath path) {
  Result<Communicator> host = create_from_mpi(MPI_COMM_WORLD, ranks_per_node);
  FUSCO_RETURN_IF_ERROR(host.status());
  gpu::NcclOptions options;
  options.path = path;
  return gpu::NcclCommunicator::create(std::move(host).value(), mpi_bootstrap(MPI_COMM_WORLD),
                                       options);
}

TEST(NcclMpi, EveryOneNodeRoutingCase_MatchesReferenceOnEveryRank) {
  int rank = 0;
  int world = 0;
  const std::string skip = gpu_per_rank(rank, world);
  if (!skip.empty()) GTEST_SKIP() << skip;
  for (gpu::NcclPath path : {gpu::NcclPath::kDeviceApi, gpu::NcclPath::kSendRecv}) {
    auto comm = create_nccl(0, path);
    ASSERT_TRUE(comm.ok()) << comm.status().to_string();
    int index = 0;
    for (const Case& c : one_node_cases(world)) {
      const Expected want = expected_of(c);
      for (bool copy : {false, true}) {
        EXPECT_TRUE(matches_expected(c, want, rank, run_nccl_rank(c, *comm.value(), copy)))
            << "path " << static_cast<int>(path) << " case " << index;
      }
      ++index;
    }
  }
}

TEST(NcclMpi, PlanOnDevice_EveryOneNodeRoutingCase_MatchesReferenceOnEveryRank) {
  int rank = 0;
  int world = 0;
  const std::string skip = gpu_per_rank(rank, world);
  if (!skip.empty()) GTEST_SKIP() << skip;
  auto comm = create_nccl(0, gpu::NcclPath::kDeviceApi);
  ASSERT_TRUE(comm.ok()) << comm.status().to_string();
  int index = 0;
  for (Case c : one_node_cases(world)) {
    ++index;
    if (!c.replicas.empty()) continue;  // replica choice is planned on the host only
    for (const RecvLayout& layout :
         {RecvLayout::capacity_bounded(5), RecvLayout::expert_major(8)}) {
      c.layout = layout;
      const Expected want = expected_of(c);
      EXPECT_TRUE(matches_expected(c, want, rank, run_nccl_rank(c, *comm.value(), false, true)))
          << "case " << index << " layout " << recv_layout_kind_name(layout.kind);
    }
  }
}

// Two nodes of this group's ranks (the second smaller when odd), rows between them moved
// `inter_node`: every dedup mode and relay policy, a hot expert with an empty rank, companion
// rows, expert outputs in the window and copied in. "" when it ran, else why it skipped.
std::string several_nodes_match(gpu::NcclInterNode inter_node) {
  int rank = 0;
  int world = 0;
  std::string skip = gpu_per_rank(rank, world);
  if (!skip.empty()) return skip;
  if (world < 2) return "one rank makes one node";
  const int ranks_per_node = (world + 1) / 2;
  Result<Communicator> host = create_from_mpi(MPI_COMM_WORLD, ranks_per_node);
  EXPECT_TRUE(host.ok()) << host.status().to_string();
  if (!host.ok()) return "";
  gpu::NcclOptions options;
  options.inter_node = inter_node;
  auto comm = gpu::NcclCommunicator::create(std::move(host).value(), mpi_bootstrap(MPI_COMM_WORLD),
                                            options);
  if (inter_node == gpu::NcclInterNode::kGin && !comm.ok() &&
      comm.status().code() == StatusCode::kUnsupported) {
    return comm.status().message();  // no GIN here (every rank agrees)
  }
  EXPECT_TRUE(comm.ok()) << comm.status().to_string();
  if (!comm.ok()) return "";
  EXPECT_EQ(comm.value()->path(), gpu::NcclPath::kDeviceApi);
  std::vector<Case> cases = staged_cases(world, ranks_per_node);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Expected want = expected_of(c);
    for (bool copy : {false, true}) {
      EXPECT_TRUE(matches_expected(c, want, rank, run_nccl_rank(c, *comm.value(), copy)))
          << "case " << i << " (" << c.describe() << ")";
    }
  }
  EXPECT_TRUE(comm.value()->health().ok()) << comm.value()->health().to_string();
  return "";
}

TEST(NcclMpi, SeveralNodes_StagedRowsBetweenThem_MatchReferenceOnEveryRank) {
  const std::string skip = several_nodes_match(gpu::NcclInterNode::kSendRecv);
  if (!skip.empty()) GTEST_SKIP() << skip;
}

TEST(NcclMpi, SeveralNodes_OverGin_MatchReferenceOnEveryRank) {
  const std::string skip = several_nodes_match(gpu::NcclInterNode::kGin);
  if (!skip.empty()) GTEST_SKIP() << skip;
}

// The last rank skips a dispatch (the call checks are off, so no host agreement notices): on
// the ncclSend/ncclRecv path the others' exchange waits on the GPU for it, and synchronize()
// ends that wait at the call's timeout, naming the exchange and its peers (the skipper among
// them); the communicator is aborted, and health() says so from then on.
TEST(NcclMpi, ARankThatSkipsADispatch_TheOthersTimeOutNamingIt_OnTheSendRecvPath) {
  int rank = 0;
  int world = 0;
  const std::string skip = gpu_per_rank(rank, world);
  if (!skip.empty()) GTEST_SKIP() << skip;
  if (world < 2) GTEST_SKIP() << "needs a peer to skip";
  Result<Communicator> host = create_from_mpi(MPI_COMM_WORLD, 0);
  ASSERT_TRUE(host.ok()) << host.status().to_string();
  gpu::NcclOptions options;
  options.path = gpu::NcclPath::kSendRecv;
  options.check_calls = false;
  auto comm = gpu::NcclCommunicator::create(std::move(host).value(), mpi_bootstrap(MPI_COMM_WORLD),
                                            options);
  ASSERT_TRUE(comm.ok()) << comm.status().to_string();
  // Every row of every rank goes to rank 0's first expert: rank 0 waits for rows from every
  // rank, the skipper's among them (a send may end without its receiver, a receive may not).
  constexpr int64_t kTokens = 16;
  constexpr int64_t kHidden = 8;
  std::vector<int64_t> ids(kTokens * 2, 0);
  PlanOptions plan_options;
  plan_options.timeout_ms = 2000;
  Result<gpu::DevicePlan> plan =
      comm.value()->plan(TensorView::host(ids.data(), DType::kInt64, {kTokens, 2}), 2 * world,
                         ExpertMap(), plan_options);
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  const int skipper = world - 1;
  if (rank != skipper) {  // the others' sends may end; rank 0's receive from the skipper may not
    DeviceMemory memory;
    void* x = memory.copy_of(std::vector<std::byte>(kTokens * kHidden * sizeof(float)));
    Result<TensorView> recv =
        comm.value()->dispatch(plan.value(), on_device(x, DType::kFloat32, kTokens, kHidden));
    EXPECT_TRUE(recv.ok()) << recv.status().to_string();  // no ASSERT: every rank must reach
    const Status waited = comm.value()->synchronize();    // the barrier below
    if (rank == 0 || !waited.ok()) {
      EXPECT_EQ(waited.code(), StatusCode::kTimeout) << waited.to_string();
      EXPECT_NE(waited.message().find("dispatch: ncclSend/ncclRecv with rank(s)"),
                std::string::npos)
          << waited.to_string();
      EXPECT_NE(waited.message().find(std::to_string(skipper)), std::string::npos)
          << waited.to_string();
      EXPECT_FALSE(comm.value()->health().ok());
      EXPECT_EQ(comm.value()->nccl(), nullptr);  // aborted: the GPU's wait ended
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace fusco::testing

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int failed = RUN_ALL_TESTS();
  MPI_Finalize();
  return failed;
}
