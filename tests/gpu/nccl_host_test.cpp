// fusco::gpu::NcclCommunicator on the host backend (create_on_host): ranks as threads, each
// with its own communicator, lazy streams, windows every rank addresses directly, and
// ncclSend/ncclRecv as copies between the ranks — the orchestration create() runs on GPUs,
// line for line. Every one-node routing case on the device-API and the send/recv path, plans
// made on the device, rows staged between nodes through relays (even and uneven nodes), and
// the faults: a rank that skips a call costs its peers one timeout that names it, on either
// path; GIN is refused as on a network without it.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fusco/nccl.hpp"
#include "gpu/device_runs.hpp"
#include "gpu/nccl_rank.hpp"
#include "multirank/one_node_cases.hpp"
#include "testing/memory_allgather.hpp"

namespace fusco::testing {
namespace {

using RankBody = std::function<void(int rank, gpu::NcclCommunicator& comm, Turns& turns)>;

// `world` ranks on threads, grouped into nodes of `ranks_per_node` (0: one node), each
// creating its communicator on the host backend with `options` and running `body` with it
// (and the group's turns to read results).
void on_threads(int world, int ranks_per_node, const gpu::NcclOptions& options,
                const RankBody& body) {
  const Topology topology = ranks_per_node == 0 ? Topology::single_node(world)
                                                : Topology::nodes_of(world, ranks_per_node);
  Result<std::vector<Communicator>> hosts = Communicator::create_local(world, topology);
  ASSERT_TRUE(hosts.ok()) << hosts.status().to_string();
  MemoryAllgather allgather(world);
  Turns turns(world);
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      auto comm = gpu::NcclCommunicator::create_on_host(
          std::move(hosts.value()[static_cast<size_t>(r)]), allgather.of(r), options);
      ASSERT_TRUE(comm.ok()) << comm.status().to_string();
      EXPECT_TRUE(comm.value()->on_host());
      body(r, *comm.value(), turns);
      // Every rank's work ends before any communicator goes (as every rank of a job ends
      // its calls before destroying).
      (void)allgather.of(r)("end");
    });
  }
  for (std::thread& thread : threads) thread.join();
}

gpu::NcclOptions on_path(gpu::NcclPath path) {
  gpu::NcclOptions options;
  options.path = path;
  options.window_bytes = 16 << 20;
  return options;
}

class NcclOnHostOneNode : public ::testing::TestWithParam<int> {};

TEST_P(NcclOnHostOneNode, EveryRoutingCase_MatchesReferenceOnEveryRank_OnBothPaths) {
  const int world = GetParam();
  const std::vector<Case> cases = one_node_cases(world);
  std::vector<Expected> wants;
  for (const Case& c : cases) wants.push_back(expected_of(c));
  for (gpu::NcclPath path : {gpu::NcclPath::kDeviceApi, gpu::NcclPath::kSendRecv}) {
    on_threads(world, 0, on_path(path), [&](int rank, gpu::NcclCommunicator& comm, Turns& turns) {
      EXPECT_EQ(comm.path(), path);
      for (size_t i = 0; i < cases.size(); ++i) {
        for (bool copy : {false, true}) {
          EXPECT_TRUE(matches_expected(cases[i], wants[i], rank,
                                       run_nccl_rank(cases[i], comm, copy, false, &turns)))
              << "path " << static_cast<int>(path) << " case " << i << " (" << cases[i].describe()
              << ") copy " << copy;
        }
      }
      EXPECT_TRUE(comm.synchronize().ok());
    });
  }
}

TEST_P(NcclOnHostOneNode, PlanOnDevice_EveryRoutingCase_CapacityAndExpertMajor) {
  const int world = GetParam();
  std::vector<Case> cases;
  for (Case c : one_node_cases(world)) {
    if (!c.replicas.empty()) continue;  // replica choice is planned on the host only
    for (const RecvLayout& layout :
         {RecvLayout::capacity_bounded(5), RecvLayout::expert_major(8)}) {
      c.layout = layout;
      cases.push_back(c);
    }
  }
  std::vector<Expected> wants;
  for (const Case& c : cases) wants.push_back(expected_of(c));
  on_threads(world, 0, on_path(gpu::NcclPath::kDeviceApi),
             [&](int rank, gpu::NcclCommunicator& comm, Turns& turns) {
               for (size_t i = 0; i < cases.size(); ++i) {
                 EXPECT_TRUE(matches_expected(cases[i], wants[i], rank,
                                              run_nccl_rank(cases[i], comm, false, true, &turns)))
                     << "case " << i << " (" << cases[i].describe() << ")";
               }
             });
}

// (World size 1: tests/gpu/nccl_test.cpp.)
INSTANTIATE_TEST_SUITE_P(Worlds, NcclOnHostOneNode, ::testing::Values(2, 3, 4));

// Nodes of ranks_per_node (the last one smaller where it does not divide the world).
class NcclOnHostNodes : public ::testing::TestWithParam<std::pair<int, int>> {};

TEST_P(NcclOnHostNodes, StagedRowsBetweenThem_MatchReferenceOnEveryRank) {
  const auto [world, ranks_per_node] = GetParam();
  const std::vector<Case> cases = staged_cases(world, ranks_per_node);
  std::vector<Expected> wants;
  for (const Case& c : cases) wants.push_back(expected_of(c));
  on_threads(world, ranks_per_node, on_path(gpu::NcclPath::kAuto),
             [&](int rank, gpu::NcclCommunicator& comm, Turns& turns) {
               EXPECT_EQ(comm.path(), gpu::NcclPath::kDeviceApi);
               for (size_t i = 0; i < cases.size(); ++i) {
                 for (bool copy : {false, true}) {
                   EXPECT_TRUE(matches_expected(cases[i], wants[i], rank,
                                                run_nccl_rank(cases[i], comm, copy, false, &turns)))
                       << "case " << i << " (" << cases[i].describe() << ") copy " << copy;
                 }
               }
               EXPECT_TRUE(comm.health().ok()) << comm.health().to_string();
             });
}

INSTANTIATE_TEST_SUITE_P(Layouts, NcclOnHostNodes,
                         ::testing::Values(std::pair{2, 1}, std::pair{4, 2}, std::pair{3, 2},
                                           std::pair{6, 3}));

// The experts read their inputs lazily (a copy from the receive window on the rank's stream,
// run whenever that stream runs): a second dispatch must not store into a peer's window before
// that peer's experts have read the first. Each rank's lazily read rows of two back-to-back
// dispatches equal the rows the same dispatches give when read at once.
TEST(NcclOnHost, ASecondDispatch_WaitsForThePeersToReadTheFirst) {
  Case c;
  c.world = 3;
  c.ranks_per_node = 3;
  c.experts = 6;
  c.dtype = DType::kFloat32;
  on_threads(c.world, 0, on_path(gpu::NcclPath::kDeviceApi),
             [&](int rank, gpu::NcclCommunicator& comm, Turns& turns) {
               const gpu::DeviceOps& ops = gpu::host_ops();
               cudaStream_t stream = comm.stream();
               const int64_t tokens = tokens_of(c, rank);
               std::vector<int64_t> ids = routing_of(c, rank);
               Result<gpu::DevicePlan> plan =
                   comm.plan(TensorView::host(ids.data(), DType::kInt64, {tokens, c.topk}),
                             c.experts, map_of(c), options_of(c));
               ASSERT_TRUE(plan.ok()) << plan.status().to_string();
               DeviceMemory memory(ops);
               std::vector<std::byte> first = x_of(c, rank);
               std::vector<std::byte> second = first;
               for (std::byte& b : second) b = ~b;
               const size_t bytes =
                   static_cast<size_t>(plan.value().num_recv_rows() * c.hidden) * sizeof(float);
               auto dispatch = [&](const std::vector<std::byte>& x) {
                 Result<TensorView> recv = comm.dispatch(
                     plan.value(),
                     on_device(memory.written_on(stream, x), c.dtype, tokens, c.hidden));
                 EXPECT_TRUE(recv.ok()) << recv.status().to_string();
                 return recv.ok() ? recv.value().data : nullptr;
               };
               auto read = [&](const void* p) {
                 turns.take(rank);
                 std::vector<std::byte> got = memory.read_on(stream, p, bytes);
                 turns.pass();
                 return got;
               };
               const std::vector<std::byte> want_first = read(dispatch(first));
               const std::vector<std::byte> want_second = read(dispatch(second));
               // The experts' copies of their inputs, queued, not run.
               void* read_first = memory.copy_of(std::vector<std::byte>(bytes));
               void* read_second = memory.copy_of(std::vector<std::byte>(bytes));
               EXPECT_TRUE(ops.copy(read_first, dispatch(first), bytes, stream, "experts").ok());
               EXPECT_TRUE(ops.copy(read_second, dispatch(second), bytes, stream, "experts").ok());
               EXPECT_EQ(read(read_first), want_first) << "rank " << rank;
               EXPECT_EQ(read(read_second), want_second) << "rank " << rank;
               EXPECT_NE(want_first, want_second) << "rank " << rank << " received no rows";
             });
}

TEST(NcclOnHost, GinBetweenNodes_IsUnsupportedOnEveryRank_AsOnANetworkWithoutIt) {
  gpu::NcclOptions options = on_path(gpu::NcclPath::kAuto);
  options.inter_node = gpu::NcclInterNode::kGin;
  Result<std::vector<Communicator>> hosts = Communicator::create_local(2, Topology::nodes_of(2, 1));
  ASSERT_TRUE(hosts.ok());
  MemoryAllgather allgather(2);
  std::vector<Status> made(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      made[static_cast<size_t>(r)] =
          gpu::NcclCommunicator::create_on_host(std::move(hosts.value()[static_cast<size_t>(r)]),
                                                allgather.of(r), options)
              .status();
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const Status& status : made) {
    EXPECT_EQ(status.code(), StatusCode::kUnsupported) << status.to_string();
    EXPECT_NE(status.message().find("inter_node = gin"), std::string::npos) << status.to_string();
  }
}

// The last rank skips a dispatch (the call checks are off, so no host agreement notices).
// Rank 0 receives rows from every rank: on the send/recv path its exchange waits for the
// skipper's message, on the device-API path its barrier for the skipper's arrival; either
// wait ends at the call's timeout and names the skipper, and the communicator reports it from
// then on.
void skipped_dispatch_is_named(gpu::NcclPath path) {
  constexpr int kWorld = 3;
  constexpr int64_t kTokens = 16;
  constexpr int64_t kHidden = 8;
  gpu::NcclOptions options = on_path(path);
  options.check_calls = false;
  on_threads(kWorld, 0, options, [&](int rank, gpu::NcclCommunicator& comm, Turns& /*turns*/) {
    std::vector<int64_t> ids(kTokens * 2, 0);  // every row to rank 0's first expert
    PlanOptions plan_options;
    plan_options.timeout_ms = 300;
    Result<gpu::DevicePlan> plan =
        comm.plan(TensorView::host(ids.data(), DType::kInt64, {kTokens, 2}), 2 * kWorld,
                  ExpertMap(), plan_options);
    ASSERT_TRUE(plan.ok()) << plan.status().to_string();
    const int skipper = kWorld - 1;
    if (rank == skipper) return;
    DeviceMemory memory(gpu::host_ops());
    void* x = memory.copy_of(std::vector<std::byte>(kTokens * kHidden * sizeof(float)));
    Result<TensorView> recv =
        comm.dispatch(plan.value(), on_device(x, DType::kFloat32, kTokens, kHidden));
    EXPECT_TRUE(recv.ok()) << recv.status().to_string();
    const Status waited = comm.synchronize();
    if (rank != 0 && path == gpu::NcclPath::kSendRecv) return;  // its sends may end
    EXPECT_FALSE(waited.ok());
    EXPECT_NE(waited.message().find("rank " + std::to_string(skipper)), std::string::npos)
        << waited.to_string();
    EXPECT_FALSE(comm.health().ok());
    if (path == gpu::NcclPath::kSendRecv) {
      EXPECT_NE(waited.message().find("dispatch: ncclSend/ncclRecv"), std::string::npos)
          << waited.to_string();
      EXPECT_EQ(comm.nccl(), nullptr);  // aborted
    } else {
      EXPECT_EQ(waited.code(), StatusCode::kAborted) << waited.to_string();
      EXPECT_NE(waited.message().find("at dispatch ("), std::string::npos) << waited.to_string();
    }
  });
}

TEST(NcclOnHost, ARankThatSkipsADispatch_TheOthersTimeOutNamingIt_OnTheSendRecvPath) {
  skipped_dispatch_is_named(gpu::NcclPath::kSendRecv);
}

TEST(NcclOnHost, ARankThatSkipsADispatch_TheOthersTimeOutNamingIt_OnTheDeviceApiPath) {
  skipped_dispatch_is_named(gpu::NcclPath::kDeviceApi);
}

}  // namespace
}  // namespace fusco::testing
