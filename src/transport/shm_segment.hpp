#pragma once

// The POSIX shared-memory segment of a process group on one machine: control words (barrier,
// doorbells, failure flag), one mailbox per rank for collectives, and the staging windows of
// every (from, to) pair. Rank 0 creates and lays it out; the others attach by name; rank 0
// unlinks the name once all are attached, so a crash leaves nothing behind in /dev/shm.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "fusco/status.hpp"
#include "transport/deadline.hpp"

namespace fusco::transport {

/// Control words shared by the group. Lives at offset 0 of the segment.
struct ShmHeader {
  std::atomic<uint64_t> magic;  // kShmReady once rank 0 has laid the segment out
  int32_t world_size;
  std::atomic<int32_t> creator_pid;  // rank 0's process: a segment whose creator is gone is stale
  uint64_t slot_bytes;
  uint64_t mailbox_bytes;
  uint64_t total_bytes;
  alignas(64) std::atomic<uint32_t> attached;
  alignas(64) std::atomic<uint32_t> barrier_count;
  alignas(64) std::atomic<uint32_t> barrier_generation;  // futex word
  alignas(64) std::atomic<uint32_t> broken;
  std::atomic<uint32_t> reason_ready;
  int32_t reason_code;  // the StatusCode of the break, written before reason_ready
  char reason[1024];
};

/// The shared regions one rank publishes (shared_arena.hpp); the same order everywhere.
inline constexpr int kSharedRegionCount = 5;

/// Where peers find one of a rank's shared regions: they open /proc/<pid>/fd/<fd> when
/// `generation` moved (written last, with release) and map `bytes` of it.
struct ShmRegionWords {
  std::atomic<uint64_t> generation;  // 0: none yet
  uint64_t owner_base;               // the region's address in its owner's process
  uint64_t bytes;
  uint64_t device;  // the memfd's identity: a peer checks the file it opened is this one
  uint64_t inode;   // (processes in another PID namespace would open their own fd N)
  int32_t fd;
};

/// Per-rank control words.
struct alignas(64) ShmRank {
  std::atomic<int32_t> pid;          // the attached process, 0 before attach
  std::atomic<uint32_t> arrived;     // barrier generation + 1 this rank last arrived at
  std::atomic<uint32_t> touching;    // 1 while this rank may touch peers' windows
  std::atomic<uint32_t> sleepers;    // > 0 while this rank may sleep on its doorbell
  std::atomic<uint32_t> heartbeat;   // moves while this rank waits inside fusco
  std::atomic<int32_t> told_broken;  // UCX: 1 + the rank that broke the group (its message follows)
  alignas(64) std::atomic<uint32_t> doorbell;  // futex word
  alignas(64) ShmRegionWords regions[kSharedRegionCount];
};

/// The two slot flags of one staging window, on their own cache line.
struct alignas(64) ShmWindowFlags {
  std::atomic<uint32_t> full[2];
};

/// Sizes of a segment, the same on every rank (checked at attach).
struct ShmGeometry {
  int world_size = 1;
  size_t slot_bytes = 0;     // one staging slot (a chunk)
  size_t mailbox_bytes = 0;  // one rank's collective mailbox

  size_t ranks_offset() const;
  size_t flags_offset() const;
  size_t mailboxes_offset() const;
  size_t slots_offset() const;
  size_t total_bytes() const;
};

/// One process's mapping of the group's segment.
class ShmSegment {
 public:
  /// Rank 0 creates `name` (which must not exist), the other ranks attach to it, waiting for
  /// it to appear until `deadline`; then every rank waits until all world_size ranks are
  /// attached. Errors name the segment, the rank and what was missing.
  static Result<ShmSegment> open(const std::string& name, int rank, const ShmGeometry& geometry,
                                 const Deadline& deadline);
  /// For a rank whose own arguments failed (`why`): joins the group at `name` only to record
  /// "rank r rejected its arguments to create_shared_memory (why)" as the group's broken
  /// reason, so the ranks waiting for it fail at once naming it instead of timing out. Rank 0
  /// creates a segment holding only the header for that, and removes it once the others saw
  /// it (or at `deadline`). Returns `why`.
  static Status refuse(const std::string& name, int rank, int world_size, const Status& why,
                       const Deadline& deadline);

  ShmSegment() = default;
  ShmSegment(ShmSegment&& other) noexcept;
  ShmSegment& operator=(ShmSegment&& other) noexcept;
  ShmSegment(const ShmSegment&) = delete;
  ShmSegment& operator=(const ShmSegment&) = delete;
  ~ShmSegment();

  const ShmGeometry& geometry() const { return geometry_; }
  ShmHeader& header() const { return *reinterpret_cast<ShmHeader*>(base_); }
  ShmRank& rank_words(int rank) const;
  ShmWindowFlags& window_flags(int from, int to) const;
  std::byte* mailbox(int rank) const;
  /// The kSlots slots of the window from `from` to `to`, back to back.
  std::byte* window_slots(int from, int to) const;

 private:
  std::byte* base_ = nullptr;
  size_t mapped_bytes_ = 0;
  ShmGeometry geometry_;
};

/// True when process `pid` has exited (gone, or a zombie waiting to be reaped).
bool process_exited(int32_t pid);

/// Raises the group's broken flag and records `reason` (with its code) when it is the first;
/// true if it was.
bool record_break(ShmHeader& header, const std::string& reason,
                  StatusCode code = StatusCode::kAborted);
/// The recorded reason of a broken group as a Status of its recorded code, waiting up to 1 s
/// for its writer (on a loaded machine it may be descheduled between raising the flag and
/// writing), else kAborted "reason not recorded".
Status break_status(const ShmHeader& header);

}  // namespace fusco::transport
