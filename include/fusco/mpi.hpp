#pragma once

// A fusco group from an MPI communicator. Header-only, so libfusco does not depend on MPI:
// include it in a program that links MPI (CMake: MPI::MPI_CXX).

#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <random>
#include <string>

#include "fusco/communicator.hpp"

namespace fusco {

/// Collective over `comm`: every process of `comm` gets the Communicator of its rank in
/// `comm`, grouped into logical nodes of `ranks_per_node` (0: one node). MPI only hands out the
/// group's name; rows move through the shared-memory transport, so all processes must run on
/// one machine (checked: kUnsupported otherwise, until the UCX transport). Every process gets
/// the same verdict: when one fails to join, all return an error naming it.
inline Result<Communicator> create_from_mpi(MPI_Comm comm, int ranks_per_node = 0,
                                            int64_t timeout_ms = 60000) {
  int rank = 0;
  int world = 0;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  MPI_Comm machine = MPI_COMM_NULL;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &machine);
  int on_machine = 0;
  MPI_Comm_size(machine, &on_machine);
  MPI_Comm_free(&machine);
  int all_on_one = on_machine == world ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &all_on_one, 1, MPI_INT, MPI_MIN, comm);
  if (all_on_one == 0) {
    return Status(StatusCode::kUnsupported,
                  "create_from_mpi: the " + std::to_string(world) +
                      " processes span several machines; the shared-memory transport joins "
                      "processes of one machine only");
  }
  char name[64] = {};
  if (rank == 0) {
    std::random_device entropy;
    const std::string made = "/fusco-mpi-" + std::to_string(getpid()) + "-" +
                             std::to_string(entropy()) + std::to_string(entropy());
    made.copy(name, sizeof(name) - 1);
  }
  MPI_Bcast(name, sizeof(name), MPI_CHAR, 0, comm);
  Result<Communicator> made = Communicator::create_shared_memory(
      name, rank, Topology::nodes_of(world, ranks_per_node), timeout_ms);
  // The first rank that failed, or world when none did.
  int failed = made.ok() ? world : rank;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MIN, comm);
  if (made.ok() && failed < world) {
    return Status(StatusCode::kAborted, "create_from_mpi: rank " + std::to_string(failed) +
                                            " failed to join the group (see its error)");
  }
  return made;
}

}  // namespace fusco
