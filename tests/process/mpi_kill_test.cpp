// A peer killed mid-operation under an outside launcher (mpirun --enable-recovery, so that
// mpirun leaves the survivors running): the last rank loops over dispatch + combine and
// SIGKILLs itself after FUSCO_TEST_KILL_AFTER_MS; every survivor must fail with an error
// naming it (its exit) well before the 20 s timeout, and says so on one line that ctest
// matches ("KILLTEST rank R: OK ..." or "... FAILED ..."). Transport: FUSCO_TEST_TRANSPORT
// (shm or ucx). Survivors end with _Exit: MPI_Finalize with a dead peer is not required to
// return.

#include <mpi.h>
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "fusco/mpi.hpp"
#include "process/survivors.hpp"

namespace {

int env_int(const char* name, int fallback) {
  const char* text = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): before any thread
  return text != nullptr ? std::atoi(text) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  int world = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  const char* transport = std::getenv("FUSCO_TEST_TRANSPORT");  // NOLINT(concurrency-mt-unsafe)
  const int kill_after_ms = env_int("FUSCO_TEST_KILL_AFTER_MS", 100);
  constexpr int64_t kTimeoutMs = 20000;
  const int victim = world - 1;
  fusco::Result<fusco::Communicator> comm = fusco::create_from_mpi(
      MPI_COMM_WORLD, 2, kTimeoutMs, transport != nullptr ? transport : "shm");
  if (!comm.ok()) {
    std::printf("KILLTEST rank %d: FAILED to join: %s\n", rank, comm.status().to_string().c_str());
    std::fflush(stdout);
    std::_Exit(1);
  }
  MPI_Barrier(MPI_COMM_WORLD);  // all joined: from here on MPI is not used again
  if (rank == victim) {
    std::thread killer([kill_after_ms] {
      std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms));
      raise(SIGKILL);
    });
    killer.detach();
    int64_t iterations = 0;
    (void)fusco::testing::loop_until_failure(comm.value(), kTimeoutMs, &iterations);
    std::_Exit(0);  // not reached: the killer ends this process first
  }
  const auto start = std::chrono::steady_clock::now();
  const int code = fusco::testing::survivor_checks(comm.value(), victim, kTimeoutMs, true);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
  const bool ok = (code == 0 || code == fusco::testing::kNamedAnother) && took < kTimeoutMs / 2;
  std::printf("KILLTEST rank %d: %s after %lld ms (%s)\n", rank, ok ? "OK" : "FAILED",
              static_cast<long long>(took),
              code == 0 ? "named the killed rank" : "named a survivor waiting for it");
  std::fflush(stdout);
  std::_Exit(ok ? 0 : 1);
}
