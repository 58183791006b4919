// The host backend of NcclCommunicator's NCCL operations (gpu/nccl_ops.hpp): ranks as threads
// sharing a world (gpu/host_nccl_world.hpp), memory and streams of host_ops().

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "gpu/host_nccl_world.hpp"
#include "gpu/nccl_ops.hpp"

namespace fusco::gpu {

namespace {

HostNcclComm* comm_of(ncclComm_t comm) { return reinterpret_cast<HostNcclComm*>(comm); }

class HostNcclOps final : public NcclOps {
 public:
  const DeviceOps& device() const override { return host_ops(); }
  Status check_device() const override { return Status(); }

  Status unique_id(ncclUniqueId* id) const override {
    static std::atomic<uint64_t> made{0};
    *id = ncclUniqueId{};
    const std::string name = "fusco host world " + std::to_string(++made);
    std::memcpy(id->internal, name.data(), name.size());
    return Status();
  }
  Status init_rank(ncclComm_t* comm, int world, const ncclUniqueId& id, int rank) const override {
    Result<std::shared_ptr<HostNcclWorld>> joined = HostNcclWorld::join(id, world, rank);
    FUSCO_RETURN_IF_ERROR(joined.status());
    auto* made = new HostNcclComm;
    made->world = std::move(joined).value();
    made->rank = rank;
    *comm = reinterpret_cast<ncclComm_t>(made);
    return Status();
  }
  void destroy(ncclComm_t comm) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    delete comm_of(comm);
  }
  void abort(ncclComm_t comm) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    comm_of(comm)->state->aborted = true;  // its queued exchanges give up
    // Kept, with its world, for the life of the process: the rank's queued work (barrier
    // arrivals, stores) may still address the world's windows.
    static std::vector<std::unique_ptr<HostNcclComm>> aborted;
    aborted.emplace_back(comm_of(comm));
  }
  ncclResult_t async_error(ncclComm_t comm, std::string* message) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    const HostRankState& state = *comm_of(comm)->state;
    if (state.error.empty()) return ncclSuccess;
    *message = state.error;
    return ncclRemoteError;
  }

  Status allocate_window(size_t bytes, SymmetricWindow* window,
                         const std::string& what) const override {
    // Host memory as the backend's allocations (std::aligned_alloc: std::free frees it),
    // zeroed as a fresh window is on NCCL.
    FUSCO_RETURN_IF_ERROR(device().allocate(&window->base, bytes, what.c_str()));
    if (bytes > 0) std::memset(window->base, 0, bytes);
    return Status();
  }
  Status register_window(ncclComm_t comm, size_t /*bytes*/, SymmetricWindow* window,
                         const std::string& /*what*/) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    HostNcclComm& me = *comm_of(comm);
    window->handle = me.world->register_part(me.windows++, me.rank, window->base);
    return Status();
  }
  void close_window(ncclComm_t /*comm*/, SymmetricWindow* window) const override {
    // A registered part is the world's, freed when its last rank ends (peers' queued work
    // may still address it).
    if (window->handle == nullptr) std::free(window->base);
    *window = SymmetricWindow{};
  }

  Status open_device_comm(ncclComm_t comm, int /*gin_signals*/, ncclDevComm** dev, int* lsa_size,
                          int* gin_contexts) const override {
    *dev = nullptr;  // never dereferenced: it is for GIN, which the host backend lacks
    *lsa_size = comm_of(comm)->world->size();
    *gin_contexts = 0;
    return Status();
  }
  void close_device_comm(ncclComm_t /*comm*/, ncclDevComm* /*dev*/) const override {}
  int lsa_rank_of(ncclComm_t comm, int rank) const override {
    return rank >= 0 && rank < comm_of(comm)->world->size() ? rank : -1;
  }
  Status lsa_addresses(ncclWindow_t window, const std::vector<int>& lsa_of, cudaStream_t /*stream*/,
                       std::vector<void*>* out) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    out->clear();
    for (const int lsa : lsa_of) {
      out->push_back(lsa < 0 ? nullptr : HostNcclWorld::part(window, lsa));
    }
    return Status();
  }

  Status exchange(ncclComm_t comm, const std::vector<PeerBlock>& sends,
                  const std::vector<PeerBlock>& recvs, cudaStream_t stream, int64_t timeout_ms,
                  const std::string& what) const override {
    if (stream == nullptr) {
      return Status(StatusCode::kInvalidArgument, what + ": the null stream on the host backend");
    }
    std::lock_guard<HostLock> lock(host_streams_lock());
    HostNcclComm& me = *comm_of(comm);
    me.world->enqueue_exchange(me, sends, recvs, *reinterpret_cast<HostStream*>(stream), timeout_ms,
                               what);
    return Status();
  }
};

}  // namespace

const NcclOps& host_nccl_ops() {
  static const HostNcclOps ops;
  return ops;
}

}  // namespace fusco::gpu
