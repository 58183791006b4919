#pragma once

// The in-process transport: ranks are threads of one process sharing an InprocGroup. Direct
// loads and stores reach every rank; staging windows carry the staged (inter-node) path so it
// runs exactly as a network transport would drive it.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "transport/transport.hpp"

namespace fusco::transport {

/// State shared by the ranks of one in-process group.
class InprocGroup {
 public:
  /// `direct_access` false makes the ranks behave like processes that cannot reach each
  /// other's memory (every row to another rank takes the staged path): how tests cover that
  /// mode before process transports exist.
  explicit InprocGroup(int world_size, bool direct_access = true);

  int world_size() const { return world_size_; }
  bool direct_access() const { return direct_access_; }
  uint64_t id() const { return id_; }

  Status sync(int rank, const void* mine, std::vector<const void*>* all, const Deadline& deadline,
              const char* what);
  StagingWindow& window(int from, int to);

  uint64_t doorbell(int rank) const;
  void ring(int rank);
  Status wait_doorbell(int rank, uint64_t seen, const Deadline& deadline,
                       const std::function<std::string()>& waiting_for);

  Status health() const;
  bool broken() const { return broken_.load(std::memory_order_acquire); }
  /// Marks the group unusable with `reason` and wakes every waiting rank.
  void break_group(const std::string& reason);

  void set_touching_peers(int rank, bool touching);
  std::string wait_peers_quiet(int rank, std::chrono::milliseconds grace);

 private:
  struct Doorbell {
    std::mutex mutex;
    std::condition_variable cv;
    std::atomic<uint64_t> count{0};
  };

  const int world_size_;
  const bool direct_access_;
  const uint64_t id_;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};  // written under mutex_, also read without it
  int arrived_ = 0;
  std::vector<uint64_t> arrived_at_;       // generation + 1 each rank last arrived at
  std::vector<const void*> published_[2];  // double-buffered by generation parity
  std::atomic<bool> broken_{false};
  std::string broken_reason_;  // guarded by mutex_

  std::mutex windows_mutex_;
  std::vector<std::unique_ptr<StagingWindow>> windows_;  // from * world_size + to
  std::vector<std::unique_ptr<Doorbell>> doorbells_;
  std::unique_ptr<std::atomic<int>[]> touching_;  // per rank: may touch peers' memory now
};

/// One rank's view of an InprocGroup.
class InprocTransport final : public Transport {
 public:
  InprocTransport(std::shared_ptr<InprocGroup> group, int rank)
      : group_(std::move(group)), rank_(rank) {}

  int rank() const override { return rank_; }
  int world_size() const override { return group_->world_size(); }
  uint64_t group_id() const override { return group_->id(); }
  Status sync(const void* mine, std::vector<const void*>* all, const Deadline& deadline,
              const char* what) override {
    return group_->sync(rank_, mine, all, deadline, what);
  }
  Status alltoallv_consume(const std::vector<Bytes>& send, const ConsumeFn& consume,
                           const Deadline& deadline, const char* what) override {
    return alltoallv_consume_in_place(*this, send, consume, deadline, what);
  }
  Status allgather(const void* mine, size_t bytes, std::byte* out, const Deadline& deadline,
                   const char* what) override {
    return allgather_in_place(*this, mine, bytes, out, deadline, what);
  }
  Status barrier(const Deadline& deadline, const char* what) override {
    std::vector<const void*> ignored;
    return group_->sync(rank_, nullptr, &ignored, deadline, what);
  }
  bool direct_access() const override { return group_->direct_access(); }
  StagingWindow& window(int from, int to) override { return group_->window(from, to); }
  /// Windows grow to the chunk size a plan asks for.
  size_t max_chunk_bytes() const override { return SIZE_MAX; }
  uint64_t doorbell() const override { return group_->doorbell(rank_); }
  void ring(int peer) override { group_->ring(peer); }
  Status wait_doorbell(uint64_t seen, const Deadline& deadline,
                       const std::function<std::string()>& waiting_for) override {
    return group_->wait_doorbell(rank_, seen, deadline, waiting_for);
  }
  void abort(const std::string& reason) override { group_->break_group(reason); }
  Status health() const override { return group_->health(); }
  bool broken() const override { return group_->broken(); }
  void set_touching_peers(bool touching) override { group_->set_touching_peers(rank_, touching); }
  std::string wait_peers_quiet(std::chrono::milliseconds grace) override {
    return group_->wait_peers_quiet(rank_, grace);
  }

 private:
  std::shared_ptr<InprocGroup> group_;
  int rank_;
};

}  // namespace fusco::transport
