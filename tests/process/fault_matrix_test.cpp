// The fault matrix for groups of processes (issue 18): every fault x placement x phase cell
// below runs 4 forked ranks (two machines of two when simulated), injects the fault on rank 2
// (the first rank of the second machine) at the start of the phase, and checks the outcome
// each rank must see, within a time bound. docs/errors.md shows the matrix, and why the cells
// not here (in-process threads, MPI, from_torch: their own tests) are where they are.

#include <gtest/gtest.h>
#include <signal.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fusco/fusco.hpp"
#include "process/child_processes.hpp"
#include "process/simulated_machines.hpp"
#include "process/ucx_join.hpp"
#include "transport/shm_segment.hpp"  // process_exited

namespace fusco::testing {
namespace {

using std::chrono::milliseconds;

enum class Fault { kBadArgument, kMismatch, kKilled, kStopped, kPartition, kConcurrent };
enum class Placement { kShm, kUcx, kUcxMachines };
enum class Phase { kCreate, kPlan, kDispatch, kCombine, kDestroy };

struct Cell {
  Fault fault;
  Placement placement;
  Phase phase;
};

constexpr int kWorld = 4;
constexpr int kVictim = 2;
constexpr int64_t kCreateMs = 3000;
constexpr int64_t kOpMs = 1500;
constexpr int64_t kTokens = 32;
constexpr int kTopk = 2;
constexpr int64_t kExperts = 8;
constexpr int64_t kHidden = 16;

const char* name_of(Fault f) {
  const char* names[] = {"BadArgument", "Mismatch", "Killed", "Stopped", "Partition", "Concurrent"};
  return names[static_cast<int>(f)];
}
const char* name_of(Placement p) {
  const char* names[] = {"Shm", "Ucx", "UcxMachines"};
  return names[static_cast<int>(p)];
}
const char* name_of(Phase p) {
  const char* names[] = {"Create", "Plan", "Dispatch", "Combine", "Destroy"};
  return names[static_cast<int>(p)];
}

// True when `text` names `rank` ("rank 2", "rank(s) 0, 2", "ranks 2"). (No std::regex: GCC
// 12's libstdc++ regex trips -Wmaybe-uninitialized in the sanitizer build.)
bool names_rank(const std::string& text, int rank) {
  for (const std::string lead : {"rank ", "rank(s) ", "ranks "}) {
    for (size_t at = text.find(lead); at != std::string::npos; at = text.find(lead, at + 1)) {
      size_t i = at + lead.size();
      while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) != 0) {
        size_t end = i;
        while (end < text.size() && std::isdigit(static_cast<unsigned char>(text[end])) != 0) {
          ++end;
        }
        if (std::stoi(text.substr(i, end - i)) == rank) return true;
        if (text.compare(end, 2, ", ") != 0) break;
        i = end + 2;
      }
    }
  }
  return false;
}

// A rank's verdict: 0 when `ok`, else 1 with `what` on stderr.
int verdict(bool ok, int rank, const std::string& what) {
  if (!ok) std::fprintf(stderr, "rank %d: %s\n", rank, what.c_str());
  return ok ? 0 : 1;
}

// One rank's buffers and calls: plan, dispatch and combine of a small valid routing.
class Calls {
 public:
  Calls(Communicator& comm, int rank) : comm_(comm) {
    for (int64_t t = 0; t < kTokens; ++t) {
      ids_.push_back((t + rank) % kExperts);
      ids_.push_back((t * 3 + 1) % kExperts);
    }
  }
  Status plan(int64_t experts = kExperts, int64_t bad_slot = -1) {
    std::vector<int64_t> ids = ids_;
    if (bad_slot >= 0) ids[static_cast<size_t>(bad_slot)] = kExperts + 5;
    Result<Plan> made = comm_.plan(TensorView::host(ids.data(), DType::kInt64, {kTokens, kTopk}),
                                   experts, ExpertMap(), options());
    if (made.ok()) plan_.emplace(std::move(made).value());
    return made.status();
  }
  Status dispatch(int64_t tokens = kTokens, int64_t hidden = kHidden) {
    const int64_t rows = plan_->num_recv_rows();
    x_.assign(static_cast<size_t>(kTokens * (kHidden + 1)), 1.0F);
    recv_.assign(static_cast<size_t>(rows * (kHidden + 1)), 0.0F);
    return comm_.dispatch(*plan_, TensorView::host(x_.data(), DType::kFloat32, {tokens, hidden}),
                          TensorView::host(recv_.data(), DType::kFloat32, {rows, hidden}));
  }
  Status combine(int64_t weight_cols = kTopk, int64_t hidden = kHidden) {
    const int64_t rows = plan_->num_recv_rows();
    weights_.assign(static_cast<size_t>(kTokens * (kTopk + 1)), 0.5F);
    out_.assign(static_cast<size_t>(kTokens * (kHidden + 1)), 0.0F);
    return comm_.combine(*plan_, TensorView::host(recv_.data(), DType::kFloat32, {rows, hidden}),
                         TensorView::host(weights_.data(), DType::kFloat32, {kTokens, weight_cols}),
                         TensorView::host(out_.data(), DType::kFloat32, {kTokens, hidden}));
  }
  // A whole healthy round: the group is usable.
  Status round() {
    FUSCO_RETURN_IF_ERROR(plan());
    FUSCO_RETURN_IF_ERROR(dispatch());
    return combine();
  }
  static PlanOptions options() {
    PlanOptions o;
    o.timeout_ms = kOpMs;
    return o;
  }

 private:
  Communicator& comm_;
  std::vector<int64_t> ids_;
  std::optional<Plan> plan_;
  std::vector<float> x_, recv_, weights_, out_;
};

class FaultMatrix : public ::testing::TestWithParam<Cell> {
 protected:
  void SetUp() override {
    if (GetParam().placement != Placement::kUcxMachines) return;
    auto made = SimulatedMachines::create(2);
    const std::string why = simulated_machines_unavailable(made);
    if (!why.empty()) {
      const char* required = std::getenv("FUSCO_REQUIRE_NAMESPACES");  // NOLINT
      if (required != nullptr && std::string(required) == "1") FAIL() << why;
      GTEST_SKIP() << why;
    }
    machines_ = std::move(made).value();
  }

  // The group of `rank`, with the create-phase fault applied.
  Result<Communicator> join(const std::string& name, int rank) const {
    const Cell cell = GetParam();
    if (cell.phase == Phase::kCreate && rank == kVictim) inject_before_call(cell.fault);
    if (cell.phase == Phase::kCreate && cell.fault == Fault::kBadArgument && rank == kVictim) {
      setenv("FUSCO_SHM_SLOT_BYTES", "pigeon", 1);  // NOLINT(concurrency-mt-unsafe): one thread
    }
    if (cell.phase == Phase::kCreate && cell.fault == Fault::kMismatch) {
      setenv("FUSCO_SHM_SLOT_BYTES", rank == kVictim ? "131072" : "65536", 1);  // NOLINT
    }
    if (cell.placement == Placement::kShm) {
      return Communicator::create_shared_memory(name, rank, Topology::nodes_of(kWorld, 2),
                                                kCreateMs);
    }
    return join_ucx_through_shm(name, rank, Topology::nodes_of(kWorld, 2), kCreateMs);
  }

  // The victim's own act for faults that are not an argument: die, stop, or cut its link.
  void inject_before_call(Fault fault) const {
    if (fault == Fault::kKilled) raise(SIGKILL);
    if (fault == Fault::kStopped) raise(SIGSTOP);
    if (fault == Fault::kPartition) (void)machines_->set_link(kVictim / 2, false);
  }

  // What a rank that is not the victim must see when the victim died, stopped or was cut off:
  // a timeout or abort naming it (a partition: any rank across the cut), and no usable group.
  static int lost(int rank, const Status& got, const Communicator* comm, Fault fault) {
    const bool code = got.code() == StatusCode::kTimeout || got.code() == StatusCode::kAborted;
    const bool named = fault == Fault::kPartition ? names_rank(got.message(), rank < 2 ? 2 : 0) ||
                                                        names_rank(got.message(), rank < 2 ? 3 : 1)
                                                  : names_rank(got.message(), kVictim);
    const bool broken = comm == nullptr || !comm->usable();
    return verdict(code && named && broken, rank, got.to_string());
  }

  int create_phase(int rank, const Result<Communicator>& comm) const {
    const Fault fault = GetParam().fault;
    if (fault == Fault::kBadArgument) {
      const bool right = rank == kVictim ? comm.status().message().find("FUSCO_SHM_SLOT_BYTES") !=
                                               std::string::npos
                                         : names_rank(comm.status().message(), kVictim);
      return verdict(comm.status().code() == StatusCode::kInvalidArgument && right, rank,
                     comm.status().to_string());
    }
    if (fault == Fault::kMismatch) {
      return verdict(comm.status().code() == StatusCode::kMismatch, rank,
                     comm.status().to_string());
    }
    if (rank == kVictim) return verdict(!comm.ok() || fault == Fault::kPartition, rank, "joined");
    if (fault == Fault::kPartition) {
      const StatusCode code = comm.status().code();
      return verdict(code == StatusCode::kTimeout || code == StatusCode::kAborted, rank,
                     comm.ok() ? "joined" : comm.status().to_string());
    }
    return lost(rank, comm.status(), nullptr, fault);
  }

  // The call of the cell's phase, with an argument fault or a mismatch on the victim.
  static Status faulty_call(Calls& calls, Phase phase, Fault fault, bool victim) {
    const bool bad = victim && fault == Fault::kBadArgument;
    const bool odd = victim && fault == Fault::kMismatch;
    switch (phase) {
      case Phase::kPlan:
        return bad ? calls.plan(kExperts, 5) : calls.plan(odd ? 2 * kExperts : kExperts);
      case Phase::kDispatch:
        return bad ? calls.dispatch(kTokens - 1)
                   : calls.dispatch(kTokens, odd ? kHidden + 1 : kHidden);
      default:
        return bad ? calls.combine(kTopk + 1) : calls.combine(kTopk, odd ? kHidden + 1 : kHidden);
    }
  }

  // Runs the calls up to the cell's phase; returns the phase call's status.
  static Status up_to(Calls& calls, Phase phase, Fault fault, bool victim) {
    if (phase != Phase::kPlan) FUSCO_RETURN_IF_ERROR(calls.plan());
    if (phase == Phase::kCombine) FUSCO_RETURN_IF_ERROR(calls.dispatch());
    return faulty_call(calls, phase, fault, victim);
  }

  // A second thread calls into the victim's communicator while its first call waits for the
  // others (who come 300 ms late): refused at once; the first call goes on.
  static int concurrent(int rank, Communicator& comm, Calls& calls, Phase phase) {
    if (phase != Phase::kPlan && !calls.plan().ok()) return 1;
    if (phase == Phase::kCombine && !calls.dispatch().ok()) return 1;
    if (rank != kVictim) {
      std::this_thread::sleep_for(milliseconds(300));
      return verdict(faulty_call(calls, phase, Fault::kConcurrent, false).ok(), rank, "failed");
    }
    Status first;
    std::thread inside([&] { first = faulty_call(calls, phase, Fault::kConcurrent, false); });
    std::this_thread::sleep_for(milliseconds(100));
    Calls other(comm, rank);
    const Status second = other.plan();
    inside.join();
    const bool refused = second.code() == StatusCode::kInvalidArgument &&
                         second.message().find("another call") != std::string::npos;
    return verdict(refused && first.ok(), rank, second.to_string() + " / " + first.to_string());
  }

  int call_phase(int rank, Communicator& comm) const {
    const Cell cell = GetParam();
    Calls calls(comm, rank);
    if (!calls.round().ok()) return verdict(false, rank, "the healthy round failed");
    if (cell.fault == Fault::kConcurrent) {
      return concurrent(rank, comm, calls, cell.phase) == 0 && calls.round().ok() ? 0 : 1;
    }
    if (rank == kVictim && cell.fault >= Fault::kKilled) inject_before_call(cell.fault);
    const Status got = up_to(calls, cell.phase, cell.fault, rank == kVictim);
    if (cell.fault >= Fault::kKilled) {
      if (rank == kVictim && cell.fault == Fault::kPartition) {
        return verdict(!got.ok(), rank, "the cut-off rank succeeded");
      }
      return lost(rank, got, &comm, cell.fault);
    }
    const StatusCode want =
        cell.fault == Fault::kMismatch ? StatusCode::kMismatch : StatusCode::kInvalidArgument;
    const bool named =
        cell.fault == Fault::kMismatch || rank == kVictim || names_rank(got.message(), kVictim);
    if (got.code() != want || !named) return verdict(false, rank, got.to_string());
    return verdict(calls.round().ok() && comm.usable(), rank, "not usable after the fault");
  }

  // The victim dies, stops or is cut off instead of destroying; the others' destruction
  // returns (bounded) and they exit.
  int destroy_phase(int rank, Result<Communicator>& comm) const {
    Calls calls(comm.value(), rank);
    if (!calls.round().ok()) return verdict(false, rank, "the healthy round failed");
    if (rank == kVictim) inject_before_call(GetParam().fault);
    comm = Status(StatusCode::kAborted, "destroyed");
    return 0;
  }

  int run_rank(const std::string& name, int rank) const {
    const Cell cell = GetParam();
    if (machines_ != nullptr && !machines_->enter(rank / 2).ok()) return 9;
    Result<Communicator> comm = join(name, rank);
    if (cell.phase == Phase::kCreate) return create_phase(rank, comm);
    if (!comm.ok()) return verdict(false, rank, comm.status().to_string());
    if (cell.phase == Phase::kDestroy) return destroy_phase(rank, comm);
    return call_phase(rank, comm.value());
  }

  std::unique_ptr<SimulatedMachines> machines_;
};

TEST_P(FaultMatrix, EveryRankSeesTheExpectedOutcomeWithinItsBound) {
  const Cell cell = GetParam();
  const std::string name = fresh_group_name();
  const auto bound = milliseconds(kCreateMs + 4 * kOpMs + 3000);
  const auto started = std::chrono::steady_clock::now();
  const std::vector<ChildEnd> ends = run_children(
      kWorld, [&](int rank) { return run_rank(name, rank); }, milliseconds(60000),
      [&](const std::vector<pid_t>& pids) {
        if (cell.fault != Fault::kStopped) return;
        // Once the others ended (or the bound passed), the stopped victim goes.
        while (std::chrono::steady_clock::now() - started < bound) {
          bool others_ended = true;
          for (int r = 0; r < kWorld; ++r) {
            others_ended = others_ended && (r == kVictim || transport::process_exited(pids[r]));
          }
          if (others_ended) break;
          std::this_thread::sleep_for(milliseconds(20));
        }
        kill(pids[kVictim], SIGKILL);
      });
  const auto took = std::chrono::steady_clock::now() - started;
  if (machines_ != nullptr) {
    EXPECT_TRUE(machines_->set_link(kVictim / 2, true).ok());
  }
  const bool victim_ends = cell.fault != Fault::kKilled && cell.fault != Fault::kStopped;
  int ucx_aborts = 0;
  for (const ChildEnd& end : ends) {
    if (end.rank == kVictim && !victim_ends) continue;
    // UCX 1.13 sometimes aborts in its own wireup error path when a connection fails with
    // requests queued (wireup_ep.c:241; see Machines.Partition_AtCreation_*): counted, not
    // failed, for a partition; any other end fails.
    if (cell.fault == Fault::kPartition && !end.exited && !end.hung && end.signal == SIGABRT) {
      ++ucx_aborts;
      continue;
    }
    EXPECT_TRUE(end.exited && end.code == 0) << end.describe();
  }
  EXPECT_LT(ucx_aborts, kWorld);
  RecordProperty("ucx_wireup_aborts", ucx_aborts);
  EXPECT_LT(took, bound);
}

std::vector<Cell> cells() {
  std::vector<Cell> out;
  for (const Placement placement : {Placement::kShm, Placement::kUcx, Placement::kUcxMachines}) {
    for (const Phase phase :
         {Phase::kCreate, Phase::kPlan, Phase::kDispatch, Phase::kCombine, Phase::kDestroy}) {
      for (const Fault fault : {Fault::kBadArgument, Fault::kMismatch, Fault::kKilled,
                                Fault::kStopped, Fault::kPartition, Fault::kConcurrent}) {
        const bool argument = fault == Fault::kBadArgument || fault == Fault::kMismatch;
        if (phase == Phase::kDestroy && (argument || fault == Fault::kConcurrent)) continue;
        if (phase == Phase::kCreate && fault == Fault::kConcurrent) continue;
        if (fault == Fault::kPartition && placement != Placement::kUcxMachines) continue;
        out.push_back(Cell{fault, placement, phase});
      }
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cells, FaultMatrix, ::testing::ValuesIn(cells()),
                         [](const ::testing::TestParamInfo<Cell>& cell) {
                           return std::string(name_of(cell.param.placement)) + "_" +
                                  name_of(cell.param.fault) + "_" + name_of(cell.param.phase);
                         });

}  // namespace
}  // namespace fusco::testing
