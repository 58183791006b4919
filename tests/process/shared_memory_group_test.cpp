// Ranks as processes: forked children joined by a shared-memory group run the routing cases
// of the multi-rank suite, each checking its own rank against the reference oracle; dead,
// stopped and misbehaving peers make the others fail promptly with an error naming them.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <random>
#include <thread>

#include "fusco/fusco.hpp"
#include "multirank/harness.hpp"
#include "process/child_processes.hpp"
#include "process/survivors.hpp"
#include "process/ucx_join.hpp"
#include "testing/routing.hpp"
#include "transport/shm_segment.hpp"
#include "transport/shm_transport.hpp"

namespace fusco::testing {
namespace {

using std::chrono::milliseconds;

// How a child joins its group: its name, the child's rank, the topology.
using Join = std::function<Result<Communicator>(const std::string&, int, const Topology&)>;

Result<Communicator> join_shared_memory(const std::string& name, int rank,
                                        const Topology& topology) {
  return Communicator::create_shared_memory(name, rank, topology, 30000);
}

// Every rank of `c` as a process; each checks its own results against the reference. The
// ranks in `windows_ranks` set FUSCO_SHM_DIRECT=0: rows then go through the staging windows on
// every rank (the group agrees), else processes store into each other's shared regions.
::testing::AssertionResult processes_match_reference(Case c,
                                                     const std::vector<int>& windows_ranks = {},
                                                     const Join& join = join_shared_memory) {
  c.direct_access = false;  // the reference's view of processes (the same bits either way)
  const bool direct = windows_ranks.empty();
  const std::string name = fresh_group_name();
  const std::vector<ChildEnd> ends = run_children(
      c.world,
      [&](int rank) {
        if (std::find(windows_ranks.begin(), windows_ranks.end(), rank) != windows_ranks.end()) {
          setenv("FUSCO_SHM_DIRECT", "0", 1);
        }
        auto comm = join(name, rank, Topology::nodes_of(c.world, c.ranks_per_node));
        if (!comm.ok()) {
          std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
          return 1;
        }
        const RankResult got = run_rank(c, comm.value(), rank);
        const ::testing::AssertionResult verdict = matches_expected(c, expected_of(c), rank, got);
        if (!verdict) {
          std::fprintf(stderr, "%s\n", verdict.message());
          return 1;
        }
        if (got.stats.direct_peers != direct) {
          std::fprintf(stderr, "rank %d: plan.stats().direct_peers is %d, expected %d\n", rank,
                       got.stats.direct_peers ? 1 : 0, direct ? 1 : 0);
          return 1;
        }
        return 0;
      },
      milliseconds(120000));
  std::string why;
  if (!all_passed(ends, &why)) {
    return ::testing::AssertionFailure() << why << c.describe();
  }
  return ::testing::AssertionSuccess();
}

TEST(SharedMemoryGroup, RandomizedCases_MatchReferenceBitForBit) {
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    const Case c = random_case(seed);
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(processes_match_reference(c));
  }
}

// FUSCO_SHM_DIRECT=0: the copying path through the staging windows, on every rank.
TEST(SharedMemoryGroup, RandomizedCases_ThroughStagingWindows_MatchReference) {
  for (uint64_t seed = 31; seed <= 42; ++seed) {
    const Case c = random_case(seed);
    std::vector<int> every_rank(static_cast<size_t>(c.world));
    std::iota(every_rank.begin(), every_rank.end(), 0);
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(processes_match_reference(c, every_rank));
  }
}

// One rank that does not want its memory shared turns the direct ability off for the whole
// group (every plan says so), and results stay right.
TEST(SharedMemoryGroup, OneRankWithoutSharedMemory_TheGroupUsesTheWindows) {
  Case c = random_case(43);
  c.world = 4;
  c.ranks_per_node = 2;
  c = fitted_to(c, 4, 2);
  for (const bool library_recv : {false, true}) {
    c.library_recv = library_recv;
    EXPECT_TRUE(processes_match_reference(c, {2})) << c.describe();
  }
}

// FUSCO_SHM_DIRECT=1 requires the shared memory: when another rank turns it off, creation
// fails on every rank naming both; a malformed value is refused like any bad argument.
TEST(SharedMemoryGroup, DirectRequiredButRefusedOrMalformed_CreationFailsOnEveryRank) {
  struct Trial {
    std::vector<const char*> values;  // FUSCO_SHM_DIRECT per rank (nullptr: unset)
    StatusCode code;
    std::vector<std::string> words;  // the message of every rank contains these
  };
  const std::vector<Trial> trials = {
      {{"1", nullptr, "0"}, StatusCode::kUnsupported, {"FUSCO_SHM_DIRECT=1 (rank 0)", "rank 2"}},
      {{nullptr, "yes", nullptr}, StatusCode::kInvalidArgument, {"FUSCO_SHM_DIRECT='yes'"}},
  };
  for (const Trial& trial : trials) {
    const std::string name = fresh_group_name();
    const std::vector<ChildEnd> ends = run_children(
        3,
        [&](int rank) {
          const char* value = trial.values[static_cast<size_t>(rank)];
          if (value != nullptr) setenv("FUSCO_SHM_DIRECT", value, 1);
          auto comm =
              Communicator::create_shared_memory(name, rank, Topology::nodes_of(3, 3), 10000);
          if (comm.ok() || comm.status().code() != trial.code) {
            std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
            return 1;
          }
          for (const std::string& word : trial.words) {
            if (comm.status().message().find(word) == std::string::npos) {
              std::fprintf(stderr, "rank %d: '%s' lacks '%s'\n", rank,
                           comm.status().message().c_str(), word.c_str());
              return 1;
            }
          }
          return 0;
        },
        milliseconds(30000));
    std::string why;
    EXPECT_TRUE(all_passed(ends, &why)) << why;
  }
}

TEST(SharedMemoryGroup, WorldSizes1To8_EveryRanksPerNode_EveryDedup) {
  for (const int world : {1, 2, 3, 4, 8}) {
    for (const int rpn : {1, 2, 4}) {
      if (rpn > world) {
        continue;
      }
      Case c;
      c.world = world;
      c.ranks_per_node = rpn;
      c.experts = 2 * world;
      c.dedup = static_cast<Dedup>((world + rpn) % 3);
      c.seed = static_cast<uint64_t>(100 + world * 10 + rpn);
      EXPECT_TRUE(processes_match_reference(c));
    }
  }
}

TEST(SharedMemoryGroup, EdgeRoutings_MatchReference) {
  Case hot;  // one expert takes every token of every rank
  hot.world = 4;
  hot.experts = 8;
  hot.topk = 1;
  hot.masked = 0.0;
  hot.masked_token = 0.0;
  hot.ids = {std::vector<int64_t>(24, 5), std::vector<int64_t>(24, 5), std::vector<int64_t>(24, 5),
             std::vector<int64_t>(24, 5)};
  EXPECT_TRUE(processes_match_reference(hot));

  Case duplicates;  // the same expert twice in one token; T = 0 on rank 2
  duplicates.world = 4;
  duplicates.topk = 3;
  duplicates.experts = 8;
  duplicates.tokens = {2, 1, 0, 1};
  duplicates.ids = {{6, 6, 1, 7, -1, 7}, {2, 2, 2}, {}, {0, 5, 0}};
  EXPECT_TRUE(processes_match_reference(duplicates));

  Case masked;  // every slot masked: nothing moves, zero outputs
  masked.world = 3;
  masked.experts = 6;
  masked.masked = 1.0;
  EXPECT_TRUE(processes_match_reference(masked));

  Case wide;  // DeepSeek-like rows, hidden not a multiple of 16, uneven map
  wide.world = 4;
  wide.topk = 8;
  wide.experts = 13;
  wide.owners = {0, 0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 3, 3};  // rank 2 owns nothing
  wide.hidden = 7170;
  wide.dtype = DType::kFloat32;
  wide.chunk_bytes = 1 << 16;
  EXPECT_TRUE(processes_match_reference(wide));

  Case hidden_one;
  hidden_one.world = 5;
  hidden_one.ranks_per_node = 2;
  hidden_one.experts = 10;
  hidden_one.hidden = 1;
  hidden_one.dtype = DType::kFloat16;
  EXPECT_TRUE(processes_match_reference(hidden_one));
}

TEST(SharedMemoryGroup, ManyChunksAndCollectiveRounds_MatchReference) {
  // More planning metadata than one collective mailbox holds, and thousands of 1-row chunks.
  Case c;
  c.world = 3;
  c.ranks_per_node = 1;
  c.topk = 8;
  c.experts = 24;
  c.hidden = 3;
  c.dtype = DType::kFloat32;
  c.tokens_each = 30000;
  c.chunk_bytes = 1;
  c.dedup = Dedup::kNone;
  EXPECT_TRUE(processes_match_reference(c));
}

// Trials of the kill test: FUSCO_KILL_TRIALS (default 6; docs/errors.md records 50).
int kill_trials() {
  const char* text = std::getenv("FUSCO_KILL_TRIALS");  // NOLINT(concurrency-mt-unsafe)
  return text != nullptr ? std::atoi(text) : 6;
}

// One kill trial: `world` children join through join(rank) and loop over dispatch + combine;
// once all joined, `victim` is killed after `kill_after_ms`. Every survivor must fail naming
// it, all well before the 20 s timeout.
void kill_trial(int world, int victim, int kill_after_ms,
                const std::function<Result<Communicator>(int rank)>& join, int trial) {
  constexpr int64_t kTimeoutMs = 20000;
  int joined[2];  // each child writes a byte once it is in the group
  ASSERT_EQ(pipe(joined), 0);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<ChildEnd> ends = run_children(
      world,
      [&](int rank) {
        Result<Communicator> comm = join(rank);
        if (!comm.ok()) {
          std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
          return 1;
        }
        if (write(joined[1], "j", 1) != 1) {
          return 1;
        }
        return survivor_checks(comm.value(), victim, kTimeoutMs, true);
      },
      milliseconds(kTimeoutMs),
      [&](const std::vector<pid_t>& pids) {
        // Once all joined, kill at a random point of planning, dispatching or combining.
        for (int got = 0; got < world; ++got) {
          pollfd ready{joined[0], POLLIN, 0};
          char byte = 0;
          if (poll(&ready, 1, 10000) != 1 || read(joined[0], &byte, 1) != 1) {
            break;  // the children report the failure
          }
        }
        std::this_thread::sleep_for(milliseconds(kill_after_ms));
        kill(pids[static_cast<size_t>(victim)], SIGKILL);
      });
  close(joined[0]);
  close(joined[1]);
  const auto took = std::chrono::steady_clock::now() - start;
  for (const ChildEnd& end : ends) {
    if (end.rank == victim) {
      EXPECT_FALSE(end.exited) << end.describe();
      continue;
    }
    EXPECT_TRUE(end.exited && end.code == 0)
        << "trial " << trial << " (victim " << victim << ", killed after " << kill_after_ms
        << " ms): " << end.describe();
  }
  // Dead processes are noticed by polling, not by waiting out the 20 s timeout.
  EXPECT_LT(took, milliseconds(kTimeoutMs / 2)) << "trial " << trial;
}

TEST(SharedMemoryGroup, KilledPeer_SurvivorsFailNamingItLongBeforeTheTimeout) {
  constexpr int kWorld = 4;
  std::mt19937 rng(2026);
  for (int trial = 0; trial < kill_trials(); ++trial) {
    const int victim = std::uniform_int_distribution<int>(0, kWorld - 1)(rng);
    const int kill_after_ms = std::uniform_int_distribution<int>(0, 300)(rng);
    const std::string name = fresh_group_name();
    kill_trial(
        kWorld, victim, kill_after_ms,
        [&](int rank) {
          return Communicator::create_shared_memory(name, rank, Topology::nodes_of(kWorld, 2),
                                                    10000);
        },
        trial);
  }
}

#ifdef FUSCO_HAVE_UCX
// The same with the UCX transport (the children bootstrap through a shared-memory group):
// a killed peer is named by the survivors long before the timeout.
Result<Communicator> join_ucx(const std::string& name, int rank, int world) {
  return join_ucx_through_shm(name, rank, Topology::nodes_of(world, 2), 10000);
}

Result<Communicator> join_ucx_case(const std::string& name, int rank, const Topology& topology) {
  return join_ucx_through_shm(name, rank, topology, 30000);
}

// UCX ranks of one machine store rows into each other's shared regions as the shared-memory
// transport's do (plans say direct_peers), bit for bit the reference.
TEST(UcxGroup, RandomizedCasesOnOneMachine_StoreDirectly_MatchReference) {
  for (uint64_t seed = 51; seed <= 60; ++seed) {
    const Case c = random_case(seed);
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(processes_match_reference(c, {}, join_ucx_case));
  }
}

// FUSCO_SHM_DIRECT=0 on one rank: the UCX group moves every row through its staging windows.
TEST(UcxGroup, OneRankWithoutSharedMemory_TheGroupUsesTheWindows) {
  for (uint64_t seed = 61; seed <= 64; ++seed) {
    const Case c = random_case(seed);
    SCOPED_TRACE(c.describe());
    ASSERT_TRUE(processes_match_reference(c, {c.world - 1}, join_ucx_case));
  }
}

// Issue 18, class 1: processes that disagree on FUSCO_SHM_SLOT_BYTES (the size of the slots
// they put into each other's windows) fail creation with kMismatch on every rank, naming both
// values, instead of corrupting each other's memory.
TEST(UcxGroup, SlotSizesThatDiffer_AreAMismatchOnEveryRank) {
  constexpr int kWorld = 3;
  const std::string name = fresh_group_name();
  const std::vector<ChildEnd> ends = run_children(
      kWorld,
      [&](int rank) {
        setenv("FUSCO_SHM_SLOT_BYTES", rank == 2 ? "131072" : "65536", 1);
        auto comm = join_ucx(name, rank, kWorld);
        if (comm.ok() || comm.status().code() != StatusCode::kMismatch) {
          std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
          return 1;
        }
        const std::string why = comm.status().message();
        const bool named =
            why.find("FUSCO_SHM_SLOT_BYTES differs across ranks") != std::string::npos &&
            why.find("131072") != std::string::npos && why.find("65536") != std::string::npos;
        if (!named) std::fprintf(stderr, "rank %d: %s\n", rank, why.c_str());
        return named ? 0 : 2;
      },
      milliseconds(30000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
}

// Issue 18, class 5: a process whose own arguments fail (a bad environment value) still takes
// part in the bootstrap exchange, with its reason: the others fail at once naming it, instead
// of waiting in the exchange (under MPI: forever).
TEST(UcxGroup, ARankWhoseArgumentsFail_TheOthersFailAtOnceNamingIt) {
  constexpr int kWorld = 3;
  const std::string name = fresh_group_name();
  const auto started = std::chrono::steady_clock::now();
  const std::vector<ChildEnd> ends = run_children(
      kWorld,
      [&](int rank) {
        if (rank == 1) setenv("FUSCO_UCX_PROTOCOL", "pigeon", 1);
        return expect_failure(rank, join_ucx(name, rank, kWorld), StatusCode::kInvalidArgument,
                              rank == 1
                                  ? "FUSCO_UCX_PROTOCOL"
                                  : "rank 1 could not join the UCX group (FUSCO_UCX_PROTOCOL");
      },
      milliseconds(30000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(8000))
      << "the others waited for the bootstrap's 10 s timeout";
}

// Issue 18, class 17: UCX finding no usable device is a configuration the caller can fix, not
// a fusco bug: kUnsupported naming UCX's device settings, on every rank.
TEST(UcxGroup, NoUsableDevice_IsUnsupportedNamingUcxSettings) {
  constexpr int kWorld = 2;
  const std::string name = fresh_group_name();
  const std::vector<ChildEnd> ends = run_children(
      kWorld,
      [&](int rank) {
        setenv("UCX_TLS", "tcp", 1);                        // NOLINT(concurrency-mt-unsafe)
        setenv("UCX_NET_DEVICES", "fusco-no-such-nic", 1);  // NOLINT(concurrency-mt-unsafe)
        return expect_failure(rank, join_ucx(name, rank, kWorld), StatusCode::kUnsupported,
                              "UCX_NET_DEVICES=fusco-no-such-nic");
      },
      milliseconds(30000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
}

TEST(UcxGroup, KilledPeer_SurvivorsFailNamingItLongBeforeTheTimeout) {
  constexpr int kWorld = 3;
  std::mt19937 rng(99);
  for (int trial = 0; trial < std::max(2, kill_trials() / 2); ++trial) {
    const int victim = std::uniform_int_distribution<int>(0, kWorld - 1)(rng);
    const std::string name = fresh_group_name();
    kill_trial(
        kWorld, victim, 100, [&](int rank) { return join_ucx(name, rank, kWorld); }, trial);
  }
}
#endif

// Every survivor names the stopped rank, even one that was waiting for another survivor: a
// rank whose wait ran out names the peers whose heartbeat word does not move (issue 18,
// class 15, on shared memory).
TEST(SharedMemoryGroup, StoppedPeer_EverySurvivorNamesIt) {
  constexpr int kWorld = 4;
  constexpr int64_t kTimeoutMs = 1500;
  for (const int victim : {0, 2}) {
    const std::string name = fresh_group_name();
    const std::vector<ChildEnd> ends = run_children(
        kWorld,
        [&](int rank) {
          auto comm =
              Communicator::create_shared_memory(name, rank, Topology::nodes_of(kWorld, 2), 10000);
          if (!comm.ok()) {
            return 1;
          }
          int64_t iterations = 0;
          const Status failed = loop_until_failure(comm.value(), kTimeoutMs, &iterations);
          return silent_ranks(failed) == std::to_string(victim) && !comm.value().usable() ? 0 : 2;
        },
        milliseconds(30000),
        [&](const std::vector<pid_t>& pids) {
          std::this_thread::sleep_for(milliseconds(200));
          kill(pids[static_cast<size_t>(victim)], SIGSTOP);
          // The survivors time out after kTimeoutMs; then let the stopped rank go.
          std::this_thread::sleep_for(milliseconds(kTimeoutMs * 3));
          kill(pids[static_cast<size_t>(victim)], SIGKILL);
        });
    for (const ChildEnd& end : ends) {
      if (end.rank != victim) {
        EXPECT_TRUE(end.exited && end.code == 0) << "victim " << victim << ": " << end.describe();
      }
    }
  }
}

TEST(SharedMemoryGroup, AbortByOneProcess_UnblocksTheOthersAtOnce) {
  constexpr int kWorld = 3;
  const std::string name = fresh_group_name();
  const auto start = std::chrono::steady_clock::now();
  const std::vector<ChildEnd> ends = run_children(
      kWorld,
      [&](int rank) {
        auto comm =
            Communicator::create_shared_memory(name, rank, Topology::nodes_of(kWorld, 1), 10000);
        if (!comm.ok()) {
          return 1;
        }
        std::vector<int64_t> ids = {0, 1, 2, 3, 4, 5};
        PlanOptions options;
        options.timeout_ms = 60000;
        Result<Plan> plan = comm.value().plan(TensorView::host(ids.data(), DType::kInt64, {3, 2}),
                                              6, ExpertMap(), options);
        if (!plan.ok()) {
          return 2;
        }
        if (rank == 2) {  // gives up on the step instead of dispatching
          std::this_thread::sleep_for(milliseconds(100));
          comm.value().abort("step 17 cancelled");
          return comm.value().usable() ? 3 : 0;
        }
        std::vector<float> x(3 * 4, 1.0F);
        std::vector<float> recv(static_cast<size_t>(plan.value().num_recv_rows()) * 4);
        const Status status = comm.value().dispatch(
            plan.value(), TensorView::host(x.data(), DType::kFloat32, {3, 4}),
            TensorView::host(recv.data(), DType::kFloat32, {plan.value().num_recv_rows(), 4}));
        const bool named = status.code() == StatusCode::kAborted &&
                           status.message().find("rank 2 aborted the group: step 17 cancelled") !=
                               std::string::npos;
        if (!named) {
          std::fprintf(stderr, "rank %d: %s\n", rank, status.to_string().c_str());
        }
        return named ? 0 : 4;
      },
      milliseconds(30000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(10000));
}

TEST(SharedMemoryGroup, ArgumentErrorOnOneRank_AllFailAndTheGroupStaysUsable) {
  constexpr int kWorld = 3;
  const std::string name = fresh_group_name();
  const std::vector<ChildEnd> ends = run_children(
      kWorld,
      [&](int rank) {
        auto comm =
            Communicator::create_shared_memory(name, rank, Topology::nodes_of(kWorld, 1), 10000);
        if (!comm.ok()) {
          return 1;
        }
        std::vector<int64_t> ids = {0, 1, 2, 3, 4, 5};
        Result<Plan> plan =
            comm.value().plan(TensorView::host(ids.data(), DType::kInt64, {3, 2}), 6);
        if (!plan.ok()) {
          return 2;
        }
        const int64_t rows = plan.value().num_recv_rows();
        std::vector<float> x(3 * 4, static_cast<float>(rank));
        std::vector<float> recv(static_cast<size_t>(rows) * 4);
        // Rank 1 passes x with the wrong number of tokens.
        const int64_t tokens = rank == 1 ? 2 : 3;
        const Status bad = comm.value().dispatch(
            plan.value(), TensorView::host(x.data(), DType::kFloat32, {tokens, 4}),
            TensorView::host(recv.data(), DType::kFloat32, {rows, 4}));
        const bool named = rank == 1 ? bad.message().find("x is") != std::string::npos
                                     : bad.message().find("rank 1") != std::string::npos;
        if (bad.code() != StatusCode::kInvalidArgument || !named) {
          std::fprintf(stderr, "rank %d: %s\n", rank, bad.to_string().c_str());
          return 3;
        }
        const Status good =
            comm.value().dispatch(plan.value(), TensorView::host(x.data(), DType::kFloat32, {3, 4}),
                                  TensorView::host(recv.data(), DType::kFloat32, {rows, 4}));
        return good.ok() && comm.value().usable() ? 0 : 4;
      },
      milliseconds(30000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
}

TEST(SharedMemoryGroup, RowLargerThanAStagingSlot_IsRejectedNamingTheLimit) {
  const std::string name = fresh_group_name();
  const std::vector<ChildEnd> ends = run_children(
      2,
      [&](int rank) {
        setenv("FUSCO_SHM_SLOT_BYTES", "4096", 1);  // NOLINT(concurrency-mt-unsafe): child
        auto comm = Communicator::create_shared_memory(name, rank, Topology::nodes_of(2, 1));
        if (!comm.ok()) {
          return 1;
        }
        std::vector<int64_t> ids = {0, 1};
        Result<Plan> plan =
            comm.value().plan(TensorView::host(ids.data(), DType::kInt64, {1, 2}), 2);
        if (!plan.ok()) {
          return 2;
        }
        std::vector<float> x(2048);  // 8192-byte rows
        std::vector<float> recv(static_cast<size_t>(plan.value().num_recv_rows()) * 2048);
        const Status status = comm.value().dispatch(
            plan.value(), TensorView::host(x.data(), DType::kFloat32, {1, 2048}),
            TensorView::host(recv.data(), DType::kFloat32, {plan.value().num_recv_rows(), 2048}));
        const bool named = rank == 0 ? status.message().find("8192 bytes") != std::string::npos &&
                                           status.message().find("4096") != std::string::npos
                                     : status.code() == StatusCode::kInvalidArgument;
        if (!named) {
          std::fprintf(stderr, "rank %d: %s\n", rank, status.to_string().c_str());
        }
        return named ? 0 : 3;
      },
      milliseconds(30000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
}

// Issue 18, class 2: the segment's pages are allocated when it is created, so a /dev/shm
// that fills up later cannot turn a first touch in the middle of a call into SIGBUS.
TEST(SharedMemoryGroup, SegmentPagesAreReservedAtCreation) {
  const std::string name = fresh_group_name();
  Result<Communicator> rank0 = Status(StatusCode::kInternal, "not made");
  std::thread creator([&] {
    rank0 = Communicator::create_shared_memory(name, 0, Topology::single_node(2), 10000);
  });
  // While rank 0 waits for rank 1 to attach, its segment is in /dev/shm, whole.
  struct stat st = {};
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(stat(("/dev/shm" + name).c_str(), &st) == 0 && st.st_size > 0) &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_GT(st.st_size, 0) << "/dev/shm" << name << " did not appear";
  EXPECT_GE(static_cast<int64_t>(st.st_blocks) * 512, static_cast<int64_t>(st.st_size))
      << "only " << st.st_blocks * 512 << " of " << st.st_size << " bytes are allocated";
  Result<Communicator> rank1 =
      Communicator::create_shared_memory(name, 1, Topology::single_node(2), 10000);
  creator.join();
  EXPECT_TRUE(rank0.ok()) << rank0.status().to_string();
  EXPECT_TRUE(rank1.ok()) << rank1.status().to_string();
}

// Issue 18, class 14: a process whose own arguments fail creation (a bad environment value)
// still tells the group: the others fail at once naming it, not after their whole timeout,
// whichever rank it is (rank 0 creates the segment, the others attach to it).
TEST(SharedMemoryGroup, ARankWhoseCreationFailsLocally_TheOthersFailAtOnceNamingIt) {
  constexpr int kWorld = 3;
  constexpr int64_t kTimeoutMs = 20000;
  // bad = -1: every process has the bad value (the usual case: one environment for all).
  for (const int bad : {2, 0, -1}) {
    const std::string name = fresh_group_name();
    const auto started = std::chrono::steady_clock::now();
    const std::vector<ChildEnd> ends = run_children(
        kWorld,
        [&](int rank) {
          if (rank == bad || bad == -1) setenv("FUSCO_SHM_SLOT_BYTES", "lots", 1);
          auto comm = Communicator::create_shared_memory(name, rank, Topology::single_node(kWorld),
                                                         kTimeoutMs);
          const std::string why = comm.status().message();
          const std::string expected = rank == bad || bad == -1
                                           ? "FUSCO_SHM_SLOT_BYTES='lots'"
                                           : "rank " + std::to_string(bad) +
                                                 " rejected its arguments to create_shared_memory "
                                                 "(FUSCO_SHM_SLOT_BYTES='lots'";
          if (comm.status().code() == StatusCode::kInvalidArgument &&
              why.find(expected) != std::string::npos) {
            return 0;
          }
          std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
          return 1;
        },
        milliseconds(kTimeoutMs * 2));
    std::string why;
    EXPECT_TRUE(all_passed(ends, &why)) << "bad rank " << bad << ": " << why;
    EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(kTimeoutMs / 2))
        << "bad rank " << bad << ": the others waited for their timeout";
    struct stat st = {};
    EXPECT_NE(stat(("/dev/shm" + name).c_str(), &st), 0) << name << " was left behind";
  }
}

// Whether the segment `name` exists with its creator's pid recorded.
bool laid_out(const std::string& name) {
  const int fd = shm_open(name.c_str(), O_RDONLY, 0);
  if (fd < 0) return false;
  struct stat st = {};
  const bool whole =
      fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) >= sizeof(transport::ShmHeader);
  void* mapped = whole ? mmap(nullptr, sizeof(transport::ShmHeader), PROT_READ, MAP_SHARED, fd, 0)
                       : MAP_FAILED;
  close(fd);
  if (mapped == MAP_FAILED) return false;
  const bool recorded = static_cast<transport::ShmHeader*>(mapped)->creator_pid.load() != 0;
  munmap(mapped, sizeof(transport::ShmHeader));
  return recorded;
}

// Issue 18, class 8: a rank 0 killed while its group was joining leaves its segment behind;
// a new group under that name replaces it (rank 0) or waits for the replacement (the others)
// instead of attaching to the dead group's segment.
TEST(SharedMemoryGroup, ANameLeftByAGroupKilledWhileJoining_CanBeUsedAgain) {
  const std::string name = fresh_group_name();
  const std::string path = "/dev/shm" + name;
  run_children(
      1,
      [&](int) {
        (void)Communicator::create_shared_memory(name, 0, Topology::single_node(2), 60000);
        return 0;
      },
      milliseconds(20000),
      [&](const std::vector<pid_t>& pids) {
        // Killed once its segment is laid out (the creator's pid recorded), while it waits.
        for (int i = 0; i < 5000 && !laid_out(name); ++i) {
          std::this_thread::sleep_for(milliseconds(1));
        }
        kill(pids[0], SIGKILL);
      });
  struct stat st = {};
  ASSERT_EQ(stat(path.c_str(), &st), 0) << "the killed group left no segment to test with";

  // Rank 1 comes first and finds the stale segment; rank 0 replaces it a moment later.
  const std::vector<ChildEnd> ends = run_children(
      2,
      [&](int rank) {
        if (rank == 0) std::this_thread::sleep_for(milliseconds(300));
        auto comm = Communicator::create_shared_memory(name, rank, Topology::single_node(2), 10000);
        if (!comm.ok()) {
          std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
          return 1;
        }
        return 0;
      },
      milliseconds(30000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
  EXPECT_NE(stat(path.c_str(), &st), 0) << name << " was left behind";
}

TEST(SharedMemoryGroup, CreationErrors_NameTheArgumentOrTheMissingRank) {
  auto bad_name = Communicator::create_shared_memory("no-slash", 0, Topology::single_node(2));
  EXPECT_EQ(bad_name.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_name.status().message().find("name = 'no-slash'"), std::string::npos);

  auto bad_rank = Communicator::create_shared_memory("/fusco-x", 2, Topology::single_node(2));
  EXPECT_EQ(bad_rank.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad_rank.status().message().find("rank = 2"), std::string::npos);

  // Rank 0 alone: rank 1 never attaches.
  auto alone =
      Communicator::create_shared_memory(fresh_group_name(), 0, Topology::single_node(2), 300);
  EXPECT_EQ(alone.status().code(), StatusCode::kTimeout);
  EXPECT_NE(alone.status().message().find("rank(s) 1 did not attach"), std::string::npos)
      << alone.status().to_string();

  // Rank 1 alone: the segment never appears.
  auto orphan =
      Communicator::create_shared_memory(fresh_group_name(), 1, Topology::single_node(2), 300);
  EXPECT_EQ(orphan.status().code(), StatusCode::kTimeout);
  EXPECT_NE(orphan.status().message().find("did not appear"), std::string::npos);

  // Ranks disagree on the world size: rank 1 finds a segment of another size and says so, so
  // rank 0 fails at once too (not after its 20 s), with the same mismatch.
  const std::string name = fresh_group_name();
  const auto started = std::chrono::steady_clock::now();
  const std::vector<ChildEnd> ends = run_children(
      2,
      [&](int rank) {
        auto comm = Communicator::create_shared_memory(
            name, rank, Topology::single_node(rank == 0 ? 2 : 3), 20000);
        const bool named = comm.status().message().find("but rank 1 expects") != std::string::npos;
        if (comm.status().code() == StatusCode::kMismatch && named) return 0;
        std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
        return 1;
      },
      milliseconds(60000));
  std::string why;
  EXPECT_TRUE(all_passed(ends, &why)) << why;
  EXPECT_LT(std::chrono::steady_clock::now() - started, milliseconds(10000));
}

}  // namespace
}  // namespace fusco::testing
