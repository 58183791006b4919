#pragma once

// The ranks a process reaches through shared memory on its machine, and the direct ability
// built on them. Each rank has control words (ShmRank): its pid, whether it touches peers'
// memory now, and the descriptors of its shared regions (shared_arena.hpp). The shared-memory
// transport keeps them in its segment; the UCX transport in one small memfd per rank, mapped
// by the ranks of its machine at creation. Both then probe, map and translate the same way,
// so a UCX group stores rows straight into its machine peers' buffers as the shared-memory
// transport does, and stages only the rows that cross machines.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "fusco/status.hpp"
#include "transport/shared_arena.hpp"
#include "transport/shm_segment.hpp"
#include "transport/transport.hpp"

namespace fusco::transport {

/// Whether processes store into each other's shared receive memory (FUSCO_SHM_DIRECT):
/// when every rank can (auto, unset), never (0), or always, else creation fails (1).
enum class DirectMode { kAuto, kOff, kRequired };
/// The mode of core::shm_direct_from_env's value (-1 unset, 0, 1).
inline DirectMode direct_mode_of(int32_t setting) {
  if (setting < 0) return DirectMode::kAuto;
  return setting == 0 ? DirectMode::kOff : DirectMode::kRequired;
}

/// Control words outside a shared segment (the UCX transport): each rank's in a memfd of its
/// own, which the ranks of its machine map from the file named in its bootstrap record.
class MachineWords {
 public:
  explicit MachineWords(int world_size);
  ~MachineWords();
  MachineWords(const MachineWords&) = delete;
  MachineWords& operator=(const MachineWords&) = delete;

  /// Creates rank `rank`'s words.
  Status create(int rank);
  /// How peers find them (fd -1 when create() failed).
  PeerFile own_file() const { return own_.file; }
  /// Maps rank `peer`'s words from `file`; the error names both ranks and what failed.
  Status map_peer(int peer, const PeerFile& file);
  /// Per rank: its words where this process reaches them (its own, the mapped peers'), else
  /// nullptr.
  const std::vector<ShmRank*>& all() const { return words_; }

 private:
  int rank_ = 0;
  MemfdMapping own_;
  std::vector<ShmRank*> words_;
};

class MachinePeers {
 public:
  /// `words[r]`: rank r's control words as this process maps them, nullptr for a rank it does
  /// not reach (another machine); `words[rank]` is this rank's own.
  MachinePeers(std::vector<ShmRank*> words, int rank);

  /// Collective over `transport` (every rank calls it, whatever its mode): each rank that
  /// wants the direct ability and had no `local` failure publishes a shared region and maps
  /// those of the ranks it reaches. The ability stays when every rank succeeded and none is
  /// kOff (the same verdict everywhere); when it does not and some rank is kRequired,
  /// creation fails on every rank saying why. `spans_machines` (the same on every rank): the
  /// group is not on one machine, so the ability is off.
  Status probe(Transport& transport, DirectMode mode, const Status& local, const Deadline& deadline,
               bool spans_machines = false);

  /// Transport's operations of the direct ability (see transport.hpp); without it, those of a
  /// transport that reaches no peer.
  bool direct() const { return arena_ != nullptr; }
  bool reaches(const void* data, size_t bytes) const;
  Result<std::byte*> shared_region(SharedRegion region, size_t bytes);
  void* peer_address(int rank, const void* published) const;
  /// Maps the peers' regions that changed. A failure breaks the group through `transport`
  /// (the others already store into peers' memory); a peer that died is named as exited.
  Status reach(Transport& transport);

  /// A reached peer among `ranks` (all when empty) whose process exited, described; "" if
  /// none.
  std::string exited_peer(const std::vector<int>& ranks) const;
  /// Marks whether this rank touches peers' memory now. Sequentially consistent with
  /// tell_broken/told_broken: a rank that broke the group and then finds a peer unmarked
  /// knows the peer will see the break before its first store.
  void set_touching(bool touching);
  /// For transports whose break travels as a message (UCX): marks every reached peer's words
  /// as told that this rank broke the group, so that their per-row check sees it at once.
  void tell_broken();
  /// The rank that told this one it broke the group, or -1.
  int told_broken() const {
    return words_[static_cast<size_t>(rank_)]->told_broken.load(std::memory_order_seq_cst) - 1;
  }
  /// Waits until no reached peer touches peers' memory, or `grace` passes; returns the
  /// ranks still marked then ("" if none). A peer whose process exited touches nothing.
  std::string wait_quiet(std::chrono::milliseconds grace) const;

 private:
  std::vector<ShmRank*> words_;
  int rank_;
  std::unique_ptr<SharedArena> arena_;  // the direct ability; null without it
};

}  // namespace fusco::transport
