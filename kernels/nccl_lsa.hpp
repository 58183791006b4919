#pragma once

// Torch-free launchers over NCCL's device API (NCCL 2.28+): the device communicator and the
// load/store (LSA) pointers of every rank's part of a symmetric window, resolved once so the
// direct kernels can take them in their peer table. (Barriers are fusco's own, bounded:
// kernels/bounded_barrier.hpp; NCCL's LSA barrier waits without a bound.)

#include <cuda_runtime_api.h>
#include <nccl.h>

struct ncclDevComm;

namespace fusco::kernels {

/// A device communicator for `comm` (ncclDevCommCreate) with `gin_signals` GIN signals (and
/// one GIN context) when positive, allocated on the host; also reports the size of this
/// rank's LSA team and the GIN contexts NCCL gave (0: no GIN on this communicator).
ncclResult_t create_dev_comm(ncclComm_t comm, int gin_signals, ncclDevComm** out, int* lsa_size,
                             int* gin_contexts);
/// ncclDevCommDestroy, then frees the host allocation.
void destroy_dev_comm(ncclComm_t comm, ncclDevComm* dev_comm);
/// The LSA-team rank of world rank `rank` (-1 when it is not in this rank's LSA team).
int lsa_rank_of(ncclComm_t comm, int rank);

/// out[p] (device memory, `ranks` entries) = the address at which this GPU reaches offset 0
/// of LSA rank lsa_of[p]'s part of `window` (lsa_of: device memory), nullptr where lsa_of[p]
/// is -1 (a rank outside this rank's LSA team).
cudaError_t launch_lsa_pointers(ncclWindow_t window, const int* lsa_of, int ranks, void** out,
                                cudaStream_t stream);

}  // namespace fusco::kernels
