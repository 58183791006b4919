#pragma once

// fusco_bench's process mode: this process is one rank of an mpirun job. The fusco group is
// made by fusco::create_from_mpi (shared-memory or UCX transport); the baseline's all-to-all is
// MPI_Alltoallv; steps are timed between MPI barriers and the per-rank start and end times
// are reduced over processes (one machine: steady_clock is common to all of them).

#include <memory>
#include <string>

#include "bench_ranks.hpp"

namespace fusco::bench {

/// Initialises MPI (once) and returns this process's rank driver for `transport` (shm, ucx).
std::unique_ptr<Ranks> make_mpi_ranks(const std::string& transport, int* argc, char*** argv);
/// Finalises MPI if make_mpi_ranks initialised it.
void finish_mpi();

}  // namespace fusco::bench
