#pragma once

// The UCX transport: ranks are processes, on one machine or many, connected by UCX endpoints
// (UCX picks shared memory, TCP or RDMA; UCX_TLS chooses). Worker addresses are exchanged
// once through the caller's bootstrap (MPI, torch.distributed). Everything moves as tagged
// messages, so it works on transports that emulate one-sided operations (tcp): staging
// windows are local memory on both sides, a chunk is one message from the sender's slot into
// a receive pre-posted on the receiver's slot, and the receiver's acknowledgement frees the
// sender's slot. Endpoints use UCX's peer error mode: a dead peer fails the waits that need
// it, naming it, and same-machine peers are also watched by pid. The ranks of one machine
// also share control words and regions (machine_peers.hpp): with that direct ability, rows
// between them are stored once, straight into place, as the shared-memory transport does.

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "transport/machine_peers.hpp"
#include "transport/transport.hpp"

namespace fusco::transport {

class UcxTransport final : public Transport {
 public:
  /// Collective over the bootstrap: every process contributes `mine`; returns all
  /// contributions in rank order.
  using Allgather = std::function<Result<std::vector<std::string>>(const std::string& mine)>;

  /// True when this build of fusco includes UCX.
  static bool available();

  /// How a chunk reaches a peer's staging slot.
  enum class Protocol : int32_t {
    /// Gather straight into the peer's slot where UCX maps it (shared memory), else send the
    /// chunk as a tagged message into a receive posted on the slot (what tcp needs).
    kAuto = 0,
    /// Where the peer's slot is not mapped: RDMA put of the chunk into it, a flush, then an
    /// 8-byte signal (what InfiniBand/RoCE do best; emulated by UCX over tcp).
    kPut = 1,
    /// Tagged messages to every peer, never mapped slots.
    kMessage = 2,
  };

  /// For a rank that cannot join (`why`): takes part in the bootstrap exchange with its
  /// reason, so the others fail at once naming it. Returns `why`.
  static Status refuse(const Allgather& bootstrap, const Status& why);
  /// How a group moves rows.
  struct Settings {
    size_t slot_bytes = 0;  ///< one staging slot (a chunk)
    Protocol protocol = Protocol::kAuto;
    /// The direct ability between the ranks of one machine (FUSCO_SHM_DIRECT).
    DirectMode direct = DirectMode::kAuto;
  };

  /// Rank `rank` of `world_size`: creates the UCX context and worker, exchanges addresses
  /// through `bootstrap` (a local failure sends its reason instead, as refuse does), connects
  /// to every peer and waits (until `deadline`) until all are connected. The ranks of each
  /// machine then map each other's control words and probe the direct ability
  /// (machine_peers.hpp).
  static Result<std::unique_ptr<UcxTransport>> open(int rank, int world_size,
                                                    const Settings& settings,
                                                    const Allgather& bootstrap,
                                                    const Deadline& deadline);
  ~UcxTransport() override;

  int rank() const override;
  int world_size() const override;
  uint64_t group_id() const override;
  Status sync(const void* mine, std::vector<const void*>* all, const Deadline& deadline,
              const char* what) override;
  Status alltoallv_consume(const std::vector<Bytes>& send, const ConsumeFn& consume,
                           const Deadline& deadline, const char* what) override;
  Status allgather(const void* mine, size_t bytes, std::byte* out, const Deadline& deadline,
                   const char* what) override;
  Status barrier(const Deadline& deadline, const char* what) override;
  /// The direct ability: rows to node peers (a node lies on one machine) are stored into
  /// their shared regions; only rows between machines take the staging windows.
  bool direct_access() const override;
  bool reaches(const void* data, size_t bytes) const override;
  Result<std::byte*> shared_region(SharedRegion region, size_t bytes) override;
  Status reach_peers() override;
  void* peer_address(int rank, const void* published) const override;
  bool crosses_machines() const override;
  std::vector<std::string> machines() const override;
  StagingWindow& window(int from, int to) override;
  size_t max_chunk_bytes() const override;
  uint64_t doorbell() const override;
  void ring(int peer) override;
  Status wait_doorbell(uint64_t seen, const Deadline& deadline,
                       const std::function<std::string()>& waiting_for) override;
  void abort(const std::string& reason) override;
  Status health() const override;
  bool broken() const override;
  /// Without the direct ability peers only ever write into this rank's transport-owned
  /// receive slots, never into the caller's buffers: there is nothing to wait for.
  void set_touching_peers(bool touching) override;
  std::string wait_peers_quiet(std::chrono::milliseconds grace) override;

  struct Impl;

 private:
  explicit UcxTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fusco::transport
