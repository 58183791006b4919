#include "transport/inproc_transport.hpp"

#include <string>
#include <thread>

namespace fusco::transport {

namespace {
std::atomic<uint64_t> next_group_id{1};
// Yields before a waiting rank sleeps on a condition variable: peers usually arrive within a
// few scheduler slices, and sleeping costs two context switches.
constexpr int kYieldsBeforeSleep = 16;
}  // namespace

InprocGroup::InprocGroup(int world_size, bool direct_access)
    : world_size_(world_size),
      direct_access_(direct_access),
      id_(next_group_id.fetch_add(1)),
      arrived_at_(static_cast<size_t>(world_size), 0),
      windows_(static_cast<size_t>(world_size) * static_cast<size_t>(world_size)) {
  for (auto& slots : published_) {
    slots.assign(static_cast<size_t>(world_size), nullptr);
  }
  for (int r = 0; r < world_size; ++r) {
    doorbells_.push_back(std::make_unique<Doorbell>());
  }
  touching_ = std::make_unique<std::atomic<int>[]>(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    touching_[static_cast<size_t>(r)].store(0);
  }
}

void InprocGroup::set_touching_peers(int rank, bool touching) {
  touching_[static_cast<size_t>(rank)].store(touching ? 1 : 0, std::memory_order_release);
}

std::string InprocGroup::wait_peers_quiet(int rank, std::chrono::milliseconds grace) {
  const auto until = Clock::now() + grace;
  std::string active;
  while (true) {
    active.clear();
    for (int r = 0; r < world_size_; ++r) {
      if (r != rank && touching_[static_cast<size_t>(r)].load(std::memory_order_acquire) != 0) {
        active += (active.empty() ? "" : ", ") + std::to_string(r);
      }
    }
    if (active.empty() || Clock::now() >= until) {
      return active;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

Status InprocGroup::health() const {
  if (broken_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(mutex_);
    return Status(StatusCode::kAborted, "the group is unusable after an earlier failure (" +
                                            broken_reason_ + "); recreate the communicators");
  }
  return Status();
}

void InprocGroup::break_group(const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!broken_.load()) {
      broken_reason_ = reason;
      broken_.store(true, std::memory_order_release);
    }
  }
  cv_.notify_all();
  for (int r = 0; r < world_size_; ++r) {
    ring(r);
  }
}

Status InprocGroup::sync(int rank, const void* mine, std::vector<const void*>* all,
                         const Deadline& deadline, const char* what) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (broken_.load()) {
    lock.unlock();
    return health();
  }
  const uint64_t generation = generation_;
  auto& slots = published_[generation & 1];
  slots[static_cast<size_t>(rank)] = mine;
  arrived_at_[static_cast<size_t>(rank)] = generation + 1;
  if (++arrived_ == world_size_) {
    arrived_ = 0;
    ++generation_;
    *all = slots;
    lock.unlock();
    cv_.notify_all();
    return Status();
  }
  const bool done = cv_.wait_until(lock, deadline.at,
                                   [&] { return generation_ != generation || broken_.load(); });
  if (generation_ != generation) {
    *all = slots;
    return Status();
  }
  if (done) {  // woken because another rank broke the group
    lock.unlock();
    return health();
  }
  std::string missing;
  for (int r = 0; r < world_size_; ++r) {
    if (arrived_at_[static_cast<size_t>(r)] != generation + 1) {
      missing += (missing.empty() ? "" : ", ") + std::to_string(r);
    }
  }
  const std::string reason = "rank " + std::to_string(rank) + " timed out after " +
                             std::to_string(deadline.timeout_ms) + " ms in " + what +
                             " waiting for rank(s) " + missing + " to arrive";
  lock.unlock();
  break_group(reason);
  return Status(StatusCode::kTimeout, reason);
}

StagingWindow& InprocGroup::window(int from, int to) {
  std::lock_guard<std::mutex> lock(windows_mutex_);
  auto& slot = windows_[static_cast<size_t>(from) * static_cast<size_t>(world_size_) +
                        static_cast<size_t>(to)];
  if (!slot) {
    slot = std::make_unique<StagingWindow>();
  }
  return *slot;
}

uint64_t InprocGroup::doorbell(int rank) const {
  return doorbells_[static_cast<size_t>(rank)]->count.load(std::memory_order_acquire);
}

void InprocGroup::ring(int rank) {
  Doorbell& bell = *doorbells_[static_cast<size_t>(rank)];
  {
    std::lock_guard<std::mutex> lock(bell.mutex);
    bell.count.fetch_add(1, std::memory_order_acq_rel);
  }
  bell.cv.notify_all();
}

Status InprocGroup::wait_doorbell(int rank, uint64_t seen, const Deadline& deadline,
                                  const std::function<std::string()>& waiting_for) {
  Doorbell& bell = *doorbells_[static_cast<size_t>(rank)];
  // Chunks follow each other closely: yield a few times before sleeping, which costs two
  // context switches per wake-up.
  for (int spin = 0; spin < kYieldsBeforeSleep &&
                     bell.count.load(std::memory_order_acquire) == seen && !broken_.load();
       ++spin) {
    std::this_thread::yield();
  }
  {
    std::unique_lock<std::mutex> lock(bell.mutex);
    bell.cv.wait_until(lock, deadline.at, [&] {
      return bell.count.load(std::memory_order_acquire) != seen || broken_.load();
    });
  }
  if (broken_.load()) {
    return health();
  }
  if (bell.count.load(std::memory_order_acquire) != seen) {
    return Status();
  }
  const std::string reason = "rank " + std::to_string(rank) + " timed out after " +
                             std::to_string(deadline.timeout_ms) + " ms " + waiting_for();
  break_group(reason);
  return Status(StatusCode::kTimeout, reason);
}

}  // namespace fusco::transport
