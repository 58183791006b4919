#pragma once

// The host backend's NCCL communicators (gpu/nccl_ops.hpp's host_nccl_ops): ranks are threads
// of one process, and the ranks of one unique id share a world. The world holds every rank's
// part of each symmetric window (host memory, addressed directly by its peers: the LSA
// addresses), and the messages of the grouped send/recv exchanges: a send is copied into the
// world when its exchange runs, a receive waits for its message — bounded — running the
// sender's stream up to the exchange that sends it once the sender's thread has queued it.
// Everything here is used under host_streams_lock().

#include <nccl.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "fusco/status.hpp"
#include "gpu/host_streams.hpp"
#include "gpu/nccl_ops.hpp"

namespace fusco::gpu {

class HostNcclWorld;

/// What a rank's queued exchanges share with its handle: they outlive an abort.
struct HostRankState {
  bool aborted = false;
  std::string error;  ///< The asynchronous error (a message that did not come in time).
};

/// What an ncclComm_t of the host backend points to.
struct HostNcclComm {
  std::shared_ptr<HostNcclWorld> world;
  int rank = 0;
  std::shared_ptr<HostRankState> state = std::make_shared<HostRankState>();
  size_t windows = 0;             ///< Windows this rank opened (the next one's index).
  std::vector<uint64_t> sent;     ///< Messages posted to each peer.
  std::vector<uint64_t> awaited;  ///< Messages expected from each peer.
};

/// What an ncclWindow_t of the host backend points to.
struct HostWindow {
  HostNcclWorld* world = nullptr;
  size_t index = 0;
};

class HostNcclWorld {
 public:
  /// Rank `rank` of `size` joins the world of `id` (made by its first rank).
  static Result<std::shared_ptr<HostNcclWorld>> join(const ncclUniqueId& id, int size, int rank);
  explicit HostNcclWorld(int size) : size_(size) {}
  ~HostNcclWorld();
  HostNcclWorld(const HostNcclWorld&) = delete;
  HostNcclWorld& operator=(const HostNcclWorld&) = delete;

  int size() const { return size_; }

  /// Registers `part` (from std::aligned_alloc) as rank `rank`'s part of window `index` (its
  /// index-th window registered); the world owns it until it ends (peers' queued work may
  /// still address it).
  ncclWindow_t register_part(size_t index, int rank, void* part);
  /// `rank`'s part of the window `handle` (nullptr where it has not opened it yet).
  static void* part(ncclWindow_t handle, int rank);

  /// Queues on `stream` the exchange of `comm`'s rank (under host_streams_lock()).
  void enqueue_exchange(HostNcclComm& comm, const std::vector<PeerBlock>& sends,
                        const std::vector<PeerBlock>& recvs, HostStream& stream, int64_t timeout_ms,
                        const std::string& what);

 private:
  struct Message {
    int peer;
    void* data;
    size_t bytes;
    uint64_t number;  ///< Its number among the messages between the pair.
  };
  using Pair = std::pair<int, int>;  ///< (sender, receiver)

  // The work of one exchange of `rank`: sends first (never waiting), then every receive.
  void run_exchange(int rank, const std::vector<Message>& sends, const std::vector<Message>& recvs,
                    HostRankState& state, int64_t timeout_ms, const std::string& what);
  bool receive(int rank, const Message& recv, HostRankState& state, int64_t timeout_ms,
               const std::string& what);

  int size_;
  std::deque<HostWindow> handles_;
  std::vector<std::vector<void*>> parts_;                 ///< [window][rank]
  std::map<Pair, std::map<uint64_t, HostEvent>> posted_;  ///< Where each message's send runs.
  std::map<Pair, std::map<uint64_t, std::vector<char>>> mailbox_;  ///< Sent, not yet received.
};

}  // namespace fusco::gpu
