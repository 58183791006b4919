#pragma once

// The engine-facing transport interface: the small table of operations the planner and the
// engine need. Implementations: inproc (ranks are threads of one process) and shm (processes
// of one machine sharing a memory segment).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fusco/status.hpp"
#include "transport/deadline.hpp"
#include "transport/staging_window.hpp"

namespace fusco::transport {

using Bytes = std::vector<std::byte>;

/// Buffers a rank lets its peers reach during a call (Transport::reachable): the receive view
/// handed to users (Communicator::recv_buffer), and the copies made when the caller's own
/// buffer is not reachable: dispatch's receive rows and companion rows, combine's expert
/// outputs and weights.
enum class SharedRegion : int { kRecvView = 0, kRecv, kExtraRecv, kExpertOut, kWeights };
using ConsumeFn = std::function<Status(int source, const Bytes& bytes)>;

class Transport {
 public:
  virtual ~Transport() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Identifies the group (plans remember it).
  virtual uint64_t group_id() const = 0;

  /// Collective, direct ability only (kUnsupported without direct_access()): publishes `mine`
  /// and returns every rank's published pointer in `all`. Each pointer stays valid until its
  /// owner's next collective call, so readers must finish with them before the next barrier
  /// or sync. The engine loads from and stores into the memory behind them.
  virtual Status sync(const void* mine, std::vector<const void*>* all, const Deadline& deadline,
                      const char* what) = 0;
  /// Collective: `send[d]` goes to rank d; consume(s, bytes) is called, for s in rank order,
  /// with what rank s sent to this rank. A failed consume is returned after every rank is done.
  virtual Status alltoallv_consume(const std::vector<Bytes>& send, const ConsumeFn& consume,
                                   const Deadline& deadline, const char* what) = 0;
  /// Collective: every rank contributes `bytes` bytes (the same count on all ranks); `out`
  /// receives world_size * bytes, rank-major.
  virtual Status allgather(const void* mine, size_t bytes, std::byte* out, const Deadline& deadline,
                           const char* what) = 0;
  /// Collective: waits until every rank arrives.
  virtual Status barrier(const Deadline& deadline, const char* what) = 0;

  /// Direct ability: true when this rank may load from and store into the memory of the other
  /// ranks of its node (threads of one process; CUDA IPC). Without it every row to another
  /// rank takes the staged path.
  virtual bool direct_access() const = 0;
  /// True when some peer runs on another machine: node boundaries then cross a network, where
  /// relays between processes pay off (ProcessRelays::kAuto). The same on every rank.
  virtual bool crosses_machines() const { return false; }
  /// The machine each rank runs on, rank-indexed (equal strings: the same machine); the same
  /// on every rank. Transports within one machine return world_size() empty strings.
  virtual std::vector<std::string> machines() const {
    return std::vector<std::string>(static_cast<size_t>(world_size()));
  }
  /// An entry of machines() as messages show it: its host name (before the boot id), quoted.
  static std::string machine_name(const std::string& machine) {
    return "'" + machine.substr(0, machine.find('/')) + "'";
  }

  /// Direct ability, how peers reach this rank's buffers: true when they may use `bytes` of
  /// `data` where it is (threads reach any memory; processes sharing memory only their
  /// shared regions, see shared_region), or when nobody else touches it (no direct ability).
  /// Otherwise the caller stands a shared region in for it: it copies `data` in before the
  /// call's start, or the rows out after its end.
  virtual bool reaches(const void* /*data*/, size_t /*bytes*/) const { return true; }
  /// Direct ability: this rank's shared region `region` of at least `bytes` (replaced when it
  /// grows), or nullptr when the transport has none (threads reach any memory).
  virtual Result<std::byte*> shared_region(SharedRegion /*region*/, size_t /*bytes*/) {
    return static_cast<std::byte*>(nullptr);
  }
  /// Called once per call after every rank published its addresses (the call's agreement):
  /// readies this rank to use them (processes map the peers' regions that changed). A failure
  /// breaks the group.
  virtual Status reach_peers() { return Status(); }
  /// The address in this process of `published`, an address rank `rank` published for this
  /// call; nullptr when this rank cannot reach it (no direct ability).
  virtual void* peer_address(int rank, const void* published) const {
    return direct_access() || rank == this->rank() ? const_cast<void*>(published) : nullptr;
  }

  /// Put ability: the staging window carrying chunks from `from` to `to`.
  virtual StagingWindow& window(int from, int to) = 0;
  /// The largest chunk a staging window holds, in bytes (the same on every rank).
  virtual size_t max_chunk_bytes() const = 0;

  /// The current value of this rank's doorbell (rung by peers when a chunk or a free slot is
  /// ready for it). Read it before looking for work, then wait_doorbell with it.
  virtual uint64_t doorbell() const = 0;
  /// Rings `peer`'s doorbell.
  virtual void ring(int peer) = 0;
  /// Waits until the doorbell moves past `seen`. On expiry returns kTimeout whose message is
  /// built by `waiting_for` (which names the peer) and breaks the group.
  virtual Status wait_doorbell(uint64_t seen, const Deadline& deadline,
                               const std::function<std::string()>& waiting_for) = 0;

  /// Breaks the group with `reason`: every rank waiting inside the group wakes and returns
  /// kAborted with it, later calls fail the same way. Safe from any thread, at any time.
  virtual void abort(const std::string& reason) = 0;

  /// kAborted when an earlier failure broke the group, else ok.
  virtual Status health() const = 0;
  /// True once a failure broke the group: one atomic load, cheap enough to check before every
  /// row that touches a peer's memory.
  virtual bool broken() const = 0;

  /// Marks whether this rank may load from or store into peers' memory right now (from the
  /// start-of-call agreement to the end of its progress loop).
  virtual void set_touching_peers(bool touching) = 0;
  /// After a failure: waits until no other rank touches peers' memory (live ranks stop at
  /// their next progress step once the group is broken) or until `grace` passes (a stuck
  /// rank touches nothing). Returns the ranks still marked when it gave up, "" if none, so a
  /// failed call returns only when its buffers are no longer written.
  virtual std::string wait_peers_quiet(std::chrono::milliseconds grace) = 0;
};

/// Transport::alltoallv_consume for transports with the direct ability: each consumer reads
/// the sender's bytes in place (no copy); every rank waits for all consumers before its
/// buffers may go.
Status alltoallv_consume_in_place(Transport& transport, const std::vector<Bytes>& send,
                                  const ConsumeFn& consume, const Deadline& deadline,
                                  const char* what);
/// Transport::allgather for transports with the direct ability.
Status allgather_in_place(Transport& transport, const void* mine, size_t bytes, std::byte* out,
                          const Deadline& deadline, const char* what);
/// Transport::allgather for transports without it: the same bytes to every rank through
/// transport.alltoallv_consume; a contribution of another size is kMismatch.
Status allgather_by_messages(Transport& transport, const void* mine, size_t bytes, std::byte* out,
                             const Deadline& deadline, const char* what);

/// Collective: `send[d]` goes to rank d; `recv[s]` receives what rank s sent to this rank.
Status alltoallv(Transport& transport, const std::vector<Bytes>& send, std::vector<Bytes>* recv,
                 const Deadline& deadline, const char* what);

}  // namespace fusco::transport
