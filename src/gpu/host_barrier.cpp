#include "gpu/host_barrier.hpp"

#include <atomic>
#include <map>
#include <utility>

namespace fusco::gpu {

namespace {

// Where each rank queued its arrival of each epoch: by the rank's own arrival slots (its
// window, which every member names) and the epoch. Under host_streams_lock().
using ArrivalKey = std::pair<const uint64_t*, uint64_t>;
std::map<ArrivalKey, HostEvent>& arrivals() {
  static std::map<ArrivalKey, HostEvent> queued;
  return queued;
}

// Drops the arrivals of `slots` that have run (no member needs to run them any more).
void forget_arrived(const uint64_t* slots) {
  auto& queued = arrivals();
  for (auto it = queued.lower_bound({slots, 0}); it != queued.end() && it->first.first == slots;) {
    if (it->second.stream->done() >= it->second.position) {
      it = queued.erase(it);
    } else {
      ++it;
    }
  }
}

uint64_t load(const uint64_t* slot) {
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(slot)).load(std::memory_order_acquire);
}

int64_t fault_peer(kernels::BarrierFault* fault) {
  return std::atomic_ref<int64_t>(fault->peer).load(std::memory_order_acquire);
}

void record_fault(kernels::BarrierFault* fault, int64_t peer, uint64_t wait) {
  std::atomic_ref<int64_t>(fault->wait)
      .store(static_cast<int64_t>(wait), std::memory_order_relaxed);
  std::atomic_ref<int64_t>(fault->peer).store(peer, std::memory_order_release);
}

void arrive(const kernels::BoundedBarrierArgs& a) {
  for (int peer = a.first; peer < a.first + a.count; ++peer) {
    std::atomic_ref<uint64_t>(a.slots[peer][a.rank]).store(a.epoch, std::memory_order_release);
  }
}

void wait_for_members(const kernels::BoundedBarrierArgs& a) {
  if (fault_peer(a.fault) >= 0) return;  // after a fault nobody waits
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(a.timeout_ns);
  for (int peer = a.first; peer < a.first + a.count; ++peer) {
    const uint64_t* seen = &a.slots[a.rank][peer];
    const uint64_t* peer_slots = a.slots[peer];
    const uint64_t epoch = a.epoch;
    const bool came = wait_for_peer([&] { return load(seen) >= epoch; },
                                    [&] {
                                      const auto it = arrivals().find({peer_slots, epoch});
                                      return it == arrivals().end() ? HostEvent{} : it->second;
                                    },
                                    deadline);
    if (!came) {
      record_fault(a.fault, peer, a.wait);
      return;
    }
  }
}

}  // namespace

void enqueue_host_barrier(const kernels::BoundedBarrierArgs& args, HostStream& stream) {
  const uint64_t* own = args.slots[args.rank];
  forget_arrived(own);
  stream.enqueue([args] { arrive(args); });
  arrivals()[{own, args.epoch}] = HostEvent{stream.shared_from_this(), stream.queued()};
  stream.enqueue([args] { wait_for_members(args); });
}

}  // namespace fusco::gpu
