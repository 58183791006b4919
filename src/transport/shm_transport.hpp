#pragma once

// The shared-memory transport: ranks are processes of one machine that map one segment
// (shm_segment.hpp). With the direct ability (the default, when every rank can map the
// others' shared regions, shared_arena.hpp), ranks store rows straight into their node peers'
// receive buffers and read their expert outputs, as threads do: each buffer a peer touches
// lies in a shared region (the one Communicator::recv_buffer hands out, or a copy). Rows
// between nodes, and every row without the direct ability (FUSCO_SHM_DIRECT=0, or a machine
// where the probe at creation failed), travel through the staging windows in the segment: the
// sender gathers rows straight into the peer's window slot, the receiver scatters them. Waits
// sleep on futexes in the segment, are bounded by their deadline, and notice a peer process
// that exited (the error names its rank and pid) instead of waiting out the timeout.

#include <memory>
#include <string>
#include <vector>

#include "transport/machine_peers.hpp"
#include "transport/shm_segment.hpp"
#include "transport/transport.hpp"

namespace fusco::transport {

class ShmTransport final : public Transport {
 public:
  /// Bytes of one rank's collective mailbox; larger collectives take several rounds.
  static constexpr size_t kMailboxBytes = size_t{1} << 20;
  /// Most ranks of one shared-memory group.
  static constexpr int kMaxRanks = 1024;

  /// Creates (rank 0) or attaches to (other ranks) segment `name` for `world_size` ranks with
  /// staging slots of `slot_bytes`, waiting until `deadline` for all ranks to attach. Every
  /// rank then probes whether it maps every other rank's shared regions; the direct ability
  /// is on when all do and none is kOff (the same verdict on every rank); when it is off and
  /// some rank's `direct` is kRequired, creation fails on every rank saying why.
  static Result<std::unique_ptr<ShmTransport>> open(const std::string& name, int rank,
                                                    int world_size, size_t slot_bytes,
                                                    DirectMode direct, const Deadline& deadline);

  int rank() const override { return rank_; }
  int world_size() const override { return segment_.geometry().world_size; }
  uint64_t group_id() const override { return group_id_; }
  Status sync(const void* mine, std::vector<const void*>* all, const Deadline& deadline,
              const char* what) override;
  Status alltoallv_consume(const std::vector<Bytes>& send, const ConsumeFn& consume,
                           const Deadline& deadline, const char* what) override;
  Status allgather(const void* mine, size_t bytes, std::byte* out, const Deadline& deadline,
                   const char* what) override;
  Status barrier(const Deadline& deadline, const char* what) override;
  bool direct_access() const override { return peers_.direct(); }
  bool reaches(const void* data, size_t bytes) const override {
    return peers_.reaches(data, bytes);
  }
  Result<std::byte*> shared_region(SharedRegion region, size_t bytes) override {
    return peers_.shared_region(region, bytes);
  }
  Status reach_peers() override { return peers_.reach(*this); }
  void* peer_address(int rank, const void* published) const override {
    return peers_.peer_address(rank, published);
  }
  StagingWindow& window(int from, int to) override;
  size_t max_chunk_bytes() const override { return segment_.geometry().slot_bytes; }
  uint64_t doorbell() const override;
  void ring(int peer) override;
  Status wait_doorbell(uint64_t seen, const Deadline& deadline,
                       const std::function<std::string()>& waiting_for) override;
  void abort(const std::string& reason) override { break_group(reason); }
  Status health() const override;
  bool broken() const override;
  void set_touching_peers(bool touching) override { peers_.set_touching(touching); }
  std::string wait_peers_quiet(std::chrono::milliseconds grace) override {
    return peers_.wait_quiet(grace);
  }

  /// Marks the group unusable with `reason` and wakes every waiting rank; false when the group
  /// was already broken (the reason recorded first stands).
  bool break_group(const std::string& reason);

 private:
  ShmTransport(ShmSegment segment, int rank, uint64_t group_id);

  /// A waiting rank's periodic check: shows that this rank is inside fusco (its heartbeat
  /// word moves) and returns true when a peer among `ranks` exited.
  bool peer_exited_while_waiting(const std::vector<int>& ranks) const;
  /// The peers whose heartbeat does not move within kSilenceGrace (silent_peers.hpp).
  std::vector<int> silent_peers() const;
  /// The error of a wait that ran out: "rank r timed out after N ms <waited>" and the silent
  /// peers; breaks the group (a peer's earlier break, with its reason, stands).
  Status timed_out(const Deadline& deadline, const std::string& waited);

  ShmSegment segment_;
  int rank_;
  uint64_t group_id_;
  std::vector<std::unique_ptr<StagingWindow>> windows_;  // from * world_size + to
  MachinePeers peers_;  // every rank of the group; the direct ability
};

}  // namespace fusco::transport
