#pragma once

// A fusco group from an MPI communicator. Header-only, so libfusco does not depend on MPI:
// include it in a program that links MPI (CMake: MPI::MPI_CXX).

#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "fusco/communicator.hpp"

namespace fusco {

namespace detail {

// Communicator::BootstrapAllgather over an MPI communicator.
inline Communicator::BootstrapAllgather mpi_allgather(MPI_Comm comm) {
  return [comm](const std::string& mine) -> Result<std::vector<std::string>> {
    int world = 0;
    MPI_Comm_size(comm, &world);
    int size = static_cast<int>(mine.size());
    std::vector<int> sizes(static_cast<size_t>(world));
    MPI_Allgather(&size, 1, MPI_INT, sizes.data(), 1, MPI_INT, comm);
    std::vector<int> offsets(static_cast<size_t>(world), 0);
    for (size_t r = 1; r < sizes.size(); ++r) {
      offsets[r] = offsets[r - 1] + sizes[r - 1];
    }
    std::string all(static_cast<size_t>(offsets.back() + sizes.back()), '\0');
    MPI_Allgatherv(mine.data(), size, MPI_CHAR, all.data(), sizes.data(), offsets.data(), MPI_CHAR,
                   comm);
    std::vector<std::string> out;
    for (size_t r = 0; r < sizes.size(); ++r) {
      out.push_back(all.substr(static_cast<size_t>(offsets[r]), static_cast<size_t>(sizes[r])));
    }
    return out;
  };
}

}  // namespace detail

/// A collective byte exchange over `comm` (every process's bytes, in rank order): what
/// Communicator::create_ucx and gpu::NcclCommunicator::create take as their bootstrap.
inline Communicator::BootstrapAllgather mpi_bootstrap(MPI_Comm comm) {
  return detail::mpi_allgather(comm);
}

/// Collective over `comm`: every process of `comm` gets the Communicator of its rank in
/// `comm`, grouped into logical nodes of `ranks_per_node` (default Topology::kByMachine: one
/// node per machine; 0: one node; a logical node may not span machines). `transport`:
///  - "shm" (default): MPI only hands out the group's name; rows move through the
///    shared-memory transport, so all processes must run on one machine (checked:
///    kUnsupported otherwise);
///  - "ucx": processes on any machines, connected by UCX; MPI exchanges the worker addresses.
/// Every process gets the same verdict (Communicator::agree_on_step): when one fails to join,
/// the others return its error's code and message, naming it.
inline Result<Communicator> create_from_mpi(MPI_Comm comm,
                                            int ranks_per_node = Topology::kByMachine,
                                            int64_t timeout_ms = 60000,
                                            const std::string& transport = "shm") {
  int rank = 0;
  int world = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  const Topology topology = Topology::nodes_of(world, ranks_per_node);
  // Every process takes part in every exchange below, a process with a bad argument too (an
  // MPI collective that one process skips would wait forever).
  const Status known =
      transport == "shm" || transport == "ucx"
          ? Status()
          : Status(StatusCode::kInvalidArgument,
                   "create_from_mpi: transport = '" + transport + "' is not one of shm, ucx");
  FUSCO_RETURN_IF_ERROR(
      Communicator::agree_on_step(detail::mpi_allgather(comm), known, "create_from_mpi"));
  const int ucx = transport == "ucx" ? 1 : 0;
  int choice[2] = {ucx, -ucx};  // reduced with MIN: {the smallest, -(the largest)}
  MPI_Allreduce(MPI_IN_PLACE, choice, 2, MPI_INT, MPI_MIN, comm);
  if (choice[0] != -choice[1]) {
    return Status(StatusCode::kMismatch,
                  "create_from_mpi: transport differs across processes (some pass shm, some ucx)");
  }
  std::optional<Result<Communicator>> made;
  if (transport == "ucx") {
    made.emplace(Communicator::create_ucx(rank, topology, detail::mpi_allgather(comm), timeout_ms));
  } else {
    MPI_Comm machine = MPI_COMM_NULL;
    MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &machine);
    int on_machine = 0;
    MPI_Comm_size(machine, &on_machine);
    MPI_Comm_free(&machine);
    const Status one_machine =
        on_machine == world
            ? Status()
            : Status(StatusCode::kUnsupported,
                     "create_from_mpi: the " + std::to_string(world) +
                         " processes span several machines; the shared-memory transport joins "
                         "processes of one machine only (use transport \"ucx\")");
    FUSCO_RETURN_IF_ERROR(
        Communicator::agree_on_step(detail::mpi_allgather(comm), one_machine, "create_from_mpi"));
    char name[64] = {};
    if (rank == 0) {
      std::random_device entropy;
      const std::string fresh = "/fusco-mpi-" + std::to_string(getpid()) + "-" +
                                std::to_string(entropy()) + std::to_string(entropy());
      fresh.copy(name, sizeof(name) - 1);
    }
    MPI_Bcast(name, sizeof(name), MPI_CHAR, 0, comm);
    made.emplace(Communicator::create_shared_memory(name, rank, topology, timeout_ms));
  }
  // Every process gets the same verdict: its own error, or the first failing rank's.
  FUSCO_RETURN_IF_ERROR(
      Communicator::agree_on_step(detail::mpi_allgather(comm), made->status(), "create_from_mpi"));
  return std::move(*made);
}

}  // namespace fusco
