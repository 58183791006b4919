#pragma once

// Bounds on the GPU's waits inside NCCL. A grouped ncclSend/ncclRecv whose peer died, hangs or
// skipped the call keeps the GPU waiting without end, and NCCL has no timeout of its own. Every
// exchange fusco enqueues is therefore marked on its stream with the call's
// PlanOptions::timeout_ms (core::StepDeadlines); every later call, health() and every host
// wait of the communicator poll the marks and NCCL's asynchronous error, and the first
// exchange found overdue (or an error) aborts the NCCL communicator — which ends the GPU's
// wait, so the stream moves on — and is reported, naming the step and its peers, from then on.
// This is the check NCCL's documentation prescribes (cudaStreamQuery, ncclCommGetAsyncError,
// ncclCommAbort), run on the one thread that issues the communicator's calls.

#include <cuda_runtime_api.h>
#include <nccl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/step_deadlines.hpp"
#include "fusco/status.hpp"
#include "gpu/nccl_ops.hpp"

namespace fusco::gpu {

/// A point of a stream, reached once the GPU ran everything enqueued before it.
class StreamMarker {
 public:
  static Result<StreamMarker> record(const DeviceOps& ops, cudaStream_t stream,
                                     const std::string& what);
  StreamMarker(StreamMarker&& other) noexcept;
  StreamMarker& operator=(StreamMarker&& other) noexcept;
  StreamMarker(const StreamMarker&) = delete;
  StreamMarker& operator=(const StreamMarker&) = delete;
  ~StreamMarker();

  /// Also true on a CUDA error: that error is the stream's, reported by its next call.
  bool reached() const;

 private:
  StreamMarker(const DeviceOps& ops, cudaEvent_t event) : ops_(&ops), event_(event) {}
  const DeviceOps* ops_ = nullptr;
  cudaEvent_t event_ = nullptr;
};

/// One rank's NCCL exchanges in flight and the communicator they run on.
class NcclWatch {
 public:
  /// Watches over `*comm` (the owner's handle: set to nullptr once aborted) of `nccl` for
  /// `rank`.
  void watch_over(int rank, ncclComm_t* comm, const NcclOps& nccl) {
    rank_ = rank;
    comm_ = comm;
    nccl_ = &nccl;
  }

  /// After an exchange with `peers` enqueued on `stream`: it must end within `timeout_ms`.
  Status mark(cudaStream_t stream, const std::string& what, std::vector<int> peers,
              int64_t timeout_ms);

  /// Polls without waiting: the first failure seen (an exchange past its deadline, or NCCL's
  /// asynchronous error), after which the communicator is aborted; OK otherwise.
  Status check();

  /// Waits on the host until `stream` ran everything enqueued so far, polling check(), and
  /// at most `timeout_ms` (kTimeout naming `what`: then the communicator is aborted too).
  Status wait(cudaStream_t stream, int64_t timeout_ms, const std::string& what);

  /// True once the communicator was aborted (its handle is then nullptr).
  bool aborted() const { return !fault_.ok(); }

 private:
  Status fail(Status why);

  int rank_ = 0;
  ncclComm_t* comm_ = nullptr;
  const NcclOps* nccl_ = &cuda_nccl_ops();
  core::StepDeadlines<StreamMarker> steps_;
  Status fault_;
};

/// Where a rank's grouped ncclSend/ncclRecv go and what bounds them.
struct NcclLane {
  const NcclOps* nccl;  ///< and its device operations
  ncclComm_t comm;
  cudaStream_t stream;
  NcclWatch* watch;    ///< marks every exchange
  int64_t timeout_ms;  ///< the call's PlanOptions::timeout_ms
};

}  // namespace fusco::gpu
