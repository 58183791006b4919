// The CUDA backend of NcclCommunicator's NCCL operations: NCCL's calls and its device API.

#include "gpu/cuda_status.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/nccl_ops.hpp"
#include "gpu/nccl_status.hpp"
#include "nccl_lsa.hpp"

namespace fusco::gpu {

namespace {

class CudaNcclOps final : public NcclOps {
 public:
  const DeviceOps& device() const override { return cuda_ops(); }
  Status check_device() const override {
    int device = 0;
    return cuda_status(cudaGetDevice(&device), "cudaGetDevice");
  }

  Status unique_id(ncclUniqueId* id) const override {
    return nccl_status(ncclGetUniqueId(id), "ncclGetUniqueId");
  }
  Status init_rank(ncclComm_t* comm, int world, const ncclUniqueId& id, int rank) const override {
    return nccl_status(ncclCommInitRank(comm, world, id, rank), "ncclCommInitRank");
  }
  void destroy(ncclComm_t comm) const override { ncclCommDestroy(comm); }
  void abort(ncclComm_t comm) const override { ncclCommAbort(comm); }
  ncclResult_t async_error(ncclComm_t comm, std::string* message) const override {
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(comm, &async) != ncclSuccess) return ncclSuccess;
    if (async != ncclSuccess && async != ncclInProgress) {
      *message = std::string(ncclGetErrorString(async)) + " (" + ncclGetLastError(comm) + ")";
    }
    return async;
  }

  Status allocate_window(size_t bytes, SymmetricWindow* window,
                         const std::string& what) const override {
    return nccl_status(ncclMemAlloc(&window->base, bytes), "ncclMemAlloc (" + what + ")");
  }
  Status register_window(ncclComm_t comm, size_t bytes, SymmetricWindow* window,
                         const std::string& what) const override {
    return nccl_status(
        ncclCommWindowRegister(comm, window->base, bytes, &window->handle, NCCL_WIN_COLL_SYMMETRIC),
        "ncclCommWindowRegister (" + what + ")");
  }
  void close_window(ncclComm_t comm, SymmetricWindow* window) const override {
    if (window->handle != nullptr && comm != nullptr) {
      ncclCommWindowDeregister(comm, window->handle);
    }
    if (window->base != nullptr) ncclMemFree(window->base);
    *window = SymmetricWindow{};
  }

  Status open_device_comm(ncclComm_t comm, int gin_signals, ncclDevComm** dev, int* lsa_size,
                          int* gin_contexts) const override {
    return nccl_status(kernels::create_dev_comm(comm, gin_signals, dev, lsa_size, gin_contexts),
                       "ncclDevCommCreate");
  }
  void close_device_comm(ncclComm_t comm, ncclDevComm* dev) const override {
    kernels::destroy_dev_comm(comm, dev);
  }
  int lsa_rank_of(ncclComm_t comm, int rank) const override {
    return kernels::lsa_rank_of(comm, rank);
  }
  Status lsa_addresses(ncclWindow_t window, const std::vector<int>& lsa_of, cudaStream_t stream,
                       std::vector<void*>* out) const override {
    const auto ranks = static_cast<int>(lsa_of.size());
    Result<DeviceBuffer> lsa_device = DeviceBuffer::upload(lsa_of, "LSA ranks");
    FUSCO_RETURN_IF_ERROR(lsa_device.status());
    Result<DeviceBuffer> found =
        DeviceBuffer::allocate(sizeof(void*) * lsa_of.size(), "LSA pointers");
    FUSCO_RETURN_IF_ERROR(found.status());
    void** addresses = static_cast<void**>(found.value().data());
    FUSCO_RETURN_IF_ERROR(
        cuda_status(kernels::launch_lsa_pointers(window, lsa_device.value().as<int>(), ranks,
                                                 addresses, stream),
                    "LSA pointers"));
    out->assign(lsa_of.size(), nullptr);
    FUSCO_RETURN_IF_ERROR(
        cuda_status(cudaMemcpyAsync(out->data(), addresses, out->size() * sizeof(void*),
                                    cudaMemcpyDeviceToHost, stream),
                    "LSA pointers"));
    return cuda_status(cudaStreamSynchronize(stream), "LSA pointers");
  }

  Status exchange(ncclComm_t comm, const std::vector<PeerBlock>& sends,
                  const std::vector<PeerBlock>& recvs, cudaStream_t stream, int64_t /*timeout_ms*/,
                  const std::string& what) const override {
    FUSCO_RETURN_IF_ERROR(nccl_status(ncclGroupStart(), what));
    Status status;
    for (const PeerBlock& block : sends) {
      if (!status.ok()) break;
      status =
          nccl_status(ncclSend(block.data, block.bytes, ncclUint8, block.peer, comm, stream), what);
    }
    for (const PeerBlock& block : recvs) {
      if (!status.ok()) break;
      status =
          nccl_status(ncclRecv(block.data, block.bytes, ncclUint8, block.peer, comm, stream), what);
    }
    const Status ended = nccl_status(ncclGroupEnd(), what);
    return status.ok() ? ended : status;
  }
};

}  // namespace

const NcclOps& cuda_nccl_ops() {
  static const CudaNcclOps ops;
  return ops;
}

}  // namespace fusco::gpu
