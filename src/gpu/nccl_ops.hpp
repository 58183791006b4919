#pragma once

// The leaf operations NcclCommunicator asks of NCCL: the communicator, symmetric windows, the
// device communicator and its load/store (LSA) addresses, grouped send/recv. Everything above
// them (which window, which barrier, which exchange on which stream) is shared orchestration.
// Two backends, each with its device operations (gpu/device_ops.hpp):
//   - cuda_nccl_ops(): NCCL and cuda_ops();
//   - host_nccl_ops(): ranks as threads of one process with host_ops(): a world per unique id
//     (gpu/host_nccl_world.hpp) holds the windows (every rank's part is host memory its peers
//     address directly) and the messages of the exchanges. An exchange's receives wait,
//     bounded, for the matching sends, running the sender's stream up to them once its thread
//     queued them; no GIN (the device communicator offers no GIN contexts).
// Communicator and window handles are NCCL's types; the host backend's are its own objects
// behind them (never passed to NCCL).

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fusco/status.hpp"
#include "gpu/device_ops.hpp"

struct ncclDevComm;

namespace fusco::gpu {

/// A part of an exchange: `bytes` to or from `peer` at `data`.
struct PeerBlock {
  int peer = 0;
  void* data = nullptr;
  size_t bytes = 0;
};

/// A registered symmetric window: this rank's part.
struct SymmetricWindow {
  void* base = nullptr;
  ncclWindow_t handle = nullptr;
};

class NcclOps {
 public:
  virtual ~NcclOps() = default;
  /// The device operations of the ranks' memory and streams.
  virtual const DeviceOps& device() const = 0;
  /// Whether this process has its device (kUnavailable-style error naming what is missing).
  virtual Status check_device() const = 0;

  virtual Status unique_id(ncclUniqueId* id) const = 0;
  /// Collective: rank `rank` of `world` joins the communicator of `id`.
  virtual Status init_rank(ncclComm_t* comm, int world, const ncclUniqueId& id, int rank) const = 0;
  virtual void destroy(ncclComm_t comm) const = 0;
  /// Ends the communicator's pending exchanges (they give up); the handle is gone after it.
  virtual void abort(ncclComm_t comm) const = 0;
  /// NCCL's asynchronous error (ncclSuccess, ncclInProgress or the error) and its message.
  virtual ncclResult_t async_error(ncclComm_t comm, std::string* message) const = 0;

  /// `bytes` of memory for a symmetric window (ncclMemAlloc; zeroed on the host backend).
  virtual Status allocate_window(size_t bytes, SymmetricWindow* window,
                                 const std::string& what) const = 0;
  /// Collective: registers the window allocate_window made (every rank must come: agree on
  /// the allocations first).
  virtual Status register_window(ncclComm_t comm, size_t bytes, SymmetricWindow* window,
                                 const std::string& what) const = 0;
  /// Deregisters (unless the communicator was aborted: `comm` nullptr) and frees.
  virtual void close_window(ncclComm_t comm, SymmetricWindow* window) const = 0;

  /// The device communicator (ncclDevCommCreate) with `gin_signals` GIN signals when positive;
  /// the size of this rank's LSA team and the GIN contexts given (0: no GIN).
  virtual Status open_device_comm(ncclComm_t comm, int gin_signals, ncclDevComm** dev,
                                  int* lsa_size, int* gin_contexts) const = 0;
  virtual void close_device_comm(ncclComm_t comm, ncclDevComm* dev) const = 0;
  /// The LSA-team rank of world rank `rank` (-1: not load/store accessible from this rank).
  virtual int lsa_rank_of(ncclComm_t comm, int rank) const = 0;
  /// out[p] = the address at which this rank reaches offset 0 of LSA rank lsa_of[p]'s part of
  /// `window` (nullptr where lsa_of[p] is -1); resolved on `stream`, waited for.
  virtual Status lsa_addresses(ncclWindow_t window, const std::vector<int>& lsa_of,
                               cudaStream_t stream, std::vector<void*>* out) const = 0;

  /// Grouped send/recv on `stream`: every block of `sends` to its peer, every block of `recvs`
  /// from its peer (two messages between one pair of ranks match in the order posted).
  /// `timeout_ms` bounds the host backend's wait for a message (NCCL's own wait is unbounded:
  /// NcclWatch aborts the communicator instead).
  virtual Status exchange(ncclComm_t comm, const std::vector<PeerBlock>& sends,
                          const std::vector<PeerBlock>& recvs, cudaStream_t stream,
                          int64_t timeout_ms, const std::string& what) const = 0;
};

const NcclOps& cuda_nccl_ops();
const NcclOps& host_nccl_ops();

}  // namespace fusco::gpu
