#pragma once

// The host side of one rank's bounded waits on the GPU (kernels/bounded_barrier.hpp): the
// fault record in mapped host memory, the barrier count (epoch) and what each recent wait
// (barrier, or GIN signal wait) was for, so that a wait that ran out becomes an error naming
// the peer, the step and the timeout.

#include <cuda_runtime_api.h>

#include <array>
#include <memory>
#include <string>

#include "bounded_barrier.hpp"
#include "core/direct_steps.hpp"
#include "fusco/status.hpp"
#include "gpu/device_ops.hpp"

namespace fusco::gpu {

class NodeBarrier {
 public:
  /// For rank `rank` of the members [first, first + count), on `ops`' streams.
  static Result<std::unique_ptr<NodeBarrier>> create(const DeviceOps& ops, int rank, int first,
                                                     int count);
  ~NodeBarrier();
  NodeBarrier(const NodeBarrier&) = delete;
  NodeBarrier& operator=(const NodeBarrier&) = delete;

  /// Enqueues the next barrier on `stream`: `slots.base[p]` is member p's arrival slots (a
  /// kMaxDirectPeers uint64 array, zeroed before the first barrier), each wait bounded by
  /// `timeout_ms`; `what` names the step in a fault.
  Status sync(const core::PeerTable& slots, int64_t timeout_ms, const std::string& what,
              cudaStream_t stream);

  /// A number for a bounded wait of another kernel (named `what`, bounded by `timeout_ms`)
  /// to record on a fault, and the device address of the fault record.
  uint64_t name_wait(const std::string& what, int64_t timeout_ms);
  kernels::BarrierFault* fault() const { return device_; }

  /// OK until a wait has run out (read without a synchronisation; it shows once the barrier
  /// kernel got there), then kAborted naming the peer, the step and the timeout, for good.
  Status health() const;

 private:
  explicit NodeBarrier(const DeviceOps& ops) : ops_(&ops) {}
  const DeviceOps* ops_;
  kernels::BarrierFault* host_ = nullptr;    ///< Mapped, written by the device.
  kernels::BarrierFault* device_ = nullptr;  ///< Its device address.
  int rank_ = 0;
  int first_ = 0;
  int count_ = 0;
  uint64_t epoch_ = 0;                  ///< Barriers so far (the same count on every member).
  uint64_t waits_ = 0;                  ///< Bounded waits named so far (barriers and others).
  static constexpr size_t kNamed = 64;  ///< Waits remembered by name (a fault shows later).
  std::array<std::string, kNamed> steps_;
  std::array<int64_t, kNamed> timeouts_{};
};

}  // namespace fusco::gpu
