// fusco::gpu::NcclCommunicator with ranks as MPI processes, one GPU each (rank r uses device
// r): every one-node routing case gives each rank the reference's results bit for bit, on the
// device-API and the ncclSend/ncclRecv path, with expert outputs written into the window and
// passed from elsewhere, and with plans made on the GPUs (plan_on_device). Skipped (on every
// rank) where the machine has fewer GPUs than processes: NCCL takes one GPU per rank.

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include "fusco/mpi.hpp"
#include "gpu/nccl_rank.hpp"
#include "multirank/one_node_cases.hpp"

namespace fusco::testing {
namespace {

TEST(NcclMpi, EveryOneNodeRoutingCase_MatchesReferenceOnEveryRank) {
  int rank = 0;
  int world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (cuda_devices() < world) GTEST_SKIP() << cuda_devices() << " GPU(s) for " << world << " ranks";
  ASSERT_EQ(cudaSetDevice(rank), cudaSuccess);
  for (gpu::NcclPath path : {gpu::NcclPath::kDeviceApi, gpu::NcclPath::kSendRecv}) {
    Result<Communicator> host = create_from_mpi(MPI_COMM_WORLD, world);
    ASSERT_TRUE(host.ok()) << host.status().to_string();
    gpu::NcclOptions options;
    options.path = path;
    auto comm = gpu::NcclCommunicator::create(std::move(host).value(),
                                              mpi_bootstrap(MPI_COMM_WORLD), options);
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
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  if (cuda_devices() < world) GTEST_SKIP() << cuda_devices() << " GPU(s) for " << world << " ranks";
  ASSERT_EQ(cudaSetDevice(rank), cudaSuccess);
  Result<Communicator> host = create_from_mpi(MPI_COMM_WORLD, world);
  ASSERT_TRUE(host.ok()) << host.status().to_string();
  gpu::NcclOptions options;
  options.path = gpu::NcclPath::kDeviceApi;
  auto comm = gpu::NcclCommunicator::create(std::move(host).value(), mpi_bootstrap(MPI_COMM_WORLD),
                                            options);
  ASSERT_TRUE(comm.ok()) << comm.status().to_string();
  int index = 0;
  for (Case c : one_node_cases(world)) {
    ++index;
    if (!c.replicas.empty()) continue;  // replica choice is planned on the host only
    for (int64_t capacity : {1, 5, 1000}) {
      c.layout = RecvLayout::capacity_bounded(capacity);
      const Expected want = expected_of(c);
      EXPECT_TRUE(matches_expected(c, want, rank, run_nccl_rank(c, *comm.value(), false, true)))
          << "case " << index << " capacity " << capacity;
    }
  }
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
