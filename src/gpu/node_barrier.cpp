#include "gpu/node_barrier.hpp"

#include <atomic>

namespace fusco::gpu {

Result<std::unique_ptr<NodeBarrier>> NodeBarrier::create(const DeviceOps& ops, int rank, int first,
                                                         int count) {
  std::unique_ptr<NodeBarrier> barrier(new NodeBarrier(ops));
  barrier->rank_ = rank;
  barrier->first_ = first;
  barrier->count_ = count;
  void* host = nullptr;
  void* device = nullptr;
  FUSCO_RETURN_IF_ERROR(
      ops.allocate_mapped(&host, &device, sizeof(kernels::BarrierFault), "barrier fault"));
  barrier->host_ = new (host) kernels::BarrierFault();
  barrier->device_ = static_cast<kernels::BarrierFault*>(device);
  return barrier;
}

NodeBarrier::~NodeBarrier() { ops_->release_mapped(host_); }

Status NodeBarrier::sync(const core::PeerTable& slots, int64_t timeout_ms, const std::string& what,
                         cudaStream_t stream) {
  kernels::BoundedBarrierArgs args;
  for (int p = first_; p < first_ + count_; ++p) {
    args.slots[p] = reinterpret_cast<uint64_t*>(slots.base[p]);
  }
  args.rank = rank_;
  args.first = first_;
  args.count = count_;
  args.epoch = ++epoch_;
  args.wait = name_wait(what, timeout_ms);
  args.timeout_ns = timeout_ms * 1000000;
  args.fault = device_;
  return ops_->bounded_barrier(args, stream, what + ": barrier");
}

uint64_t NodeBarrier::name_wait(const std::string& what, int64_t timeout_ms) {
  ++waits_;
  steps_[waits_ % kNamed] = what;
  timeouts_[waits_ % kNamed] = timeout_ms;
  return waits_;
}

Status NodeBarrier::health() const {
  // Written by the device (or a host rank's thread) while this reads: the peer is stored last.
  const int64_t peer = std::atomic_ref<int64_t>(host_->peer).load(std::memory_order_acquire);
  if (peer < 0) return Status();
  const auto wait =
      static_cast<uint64_t>(std::atomic_ref<int64_t>(host_->wait).load(std::memory_order_relaxed));
  const bool named = wait + kNamed > waits_;  // still remembered
  const std::string step = named ? steps_[wait % kNamed] : "an earlier call";
  const std::string waited =
      named ? "more than " + std::to_string(timeouts_[wait % kNamed]) + " ms" : "past its timeout";
  return Status(StatusCode::kAborted,
                "rank " + std::to_string(rank_) + " waited " + waited + " for rank " +
                    std::to_string(peer) + " on the GPU at " + step + " (wait " +
                    std::to_string(wait) +
                    "; PlanOptions::timeout_ms): that call's results are not valid and the "
                    "communicator must be recreated");
}

}  // namespace fusco::gpu
