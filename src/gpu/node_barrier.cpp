#include "gpu/node_barrier.hpp"

#include "gpu/cuda_status.hpp"

namespace fusco::gpu {

Result<std::unique_ptr<NodeBarrier>> NodeBarrier::create(int rank, int first, int count) {
  std::unique_ptr<NodeBarrier> barrier(new NodeBarrier());
  barrier->rank_ = rank;
  barrier->first_ = first;
  barrier->count_ = count;
  void* host = nullptr;
  FUSCO_RETURN_IF_ERROR(cuda_status(
      cudaHostAlloc(&host, sizeof(kernels::BarrierFault), cudaHostAllocMapped), "barrier fault"));
  barrier->host_ = new (host) kernels::BarrierFault();
  void* device = nullptr;
  FUSCO_RETURN_IF_ERROR(
      cuda_status(cudaHostGetDevicePointer(&device, host, 0), "barrier fault (device address)"));
  barrier->device_ = static_cast<kernels::BarrierFault*>(device);
  return barrier;
}

NodeBarrier::~NodeBarrier() {
  if (host_ != nullptr) cudaFreeHost(host_);
}

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
  return cuda_status(kernels::launch_bounded_barrier(args, stream), what + ": barrier");
}

uint64_t NodeBarrier::name_wait(const std::string& what, int64_t timeout_ms) {
  ++waits_;
  steps_[waits_ % kNamed] = what;
  timeouts_[waits_ % kNamed] = timeout_ms;
  return waits_;
}

Status NodeBarrier::health() const {
  const volatile kernels::BarrierFault* fault = host_;
  const int64_t peer = fault->peer;
  if (peer < 0) return Status();
  const auto wait = static_cast<uint64_t>(fault->wait);
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
