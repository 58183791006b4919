#include <nccl_device.h>

#include "nccl_lsa.hpp"

namespace fusco::kernels {

namespace {

__global__ void lsa_pointers_kernel(ncclWindow_t window, const int* lsa_of, int ranks, void** out) {
  for (int p = static_cast<int>(threadIdx.x); p < ranks; p += static_cast<int>(blockDim.x)) {
    out[p] = lsa_of[p] < 0 ? nullptr : ncclGetLsaPointer(window, 0, lsa_of[p]);
  }
}

}  // namespace

ncclResult_t create_dev_comm(ncclComm_t comm, int gin_signals, ncclDevComm** out, int* lsa_size,
                             int* gin_contexts) {
  ncclDevCommRequirements requirements{};
  if (gin_signals > 0) {
    requirements.ginContextCount = 1;
    requirements.ginSignalCount = gin_signals;
  }
  auto* dev_comm = new ncclDevComm{};
  const ncclResult_t result = ncclDevCommCreate(comm, &requirements, dev_comm);
  if (result != ncclSuccess) {
    delete dev_comm;
    return result;
  }
  *out = dev_comm;
  *lsa_size = dev_comm->lsaSize;
  *gin_contexts = dev_comm->ginContextCount;
  return ncclSuccess;
}

void destroy_dev_comm(ncclComm_t comm, ncclDevComm* dev_comm) {
  if (dev_comm != nullptr) {
    ncclDevCommDestroy(comm, dev_comm);
    delete dev_comm;
  }
}

int lsa_rank_of(ncclComm_t comm, int rank) {
  const ncclTeam_t world = ncclTeamWorld(comm);
  const ncclTeam_t lsa = ncclTeamLsa(comm);
  return ncclTeamRankIsMember(lsa, world, rank) ? ncclTeamRankToLsa(comm, world, rank) : -1;
}

cudaError_t launch_lsa_pointers(ncclWindow_t window, const int* lsa_of, int ranks, void** out,
                                cudaStream_t stream) {
  if (ranks <= 0) {
    return cudaSuccess;
  }
  lsa_pointers_kernel<<<1, 128, 0, stream>>>(window, lsa_of, ranks, out);
  return cudaGetLastError();
}

}  // namespace fusco::kernels
