#pragma once

// The memory one rank of a shared-memory group lets the other processes of its machine reach:
// the buffers peers store into or read from during a call (dispatch's receive rows, combine's
// expert outputs and weights). With it, processes move rows as threads do: once, straight
// into place. Each region is a memfd; peers open it through /proc/<owner pid>/fd/<fd> when
// its generation moves and map it, so nothing is left behind in /dev/shm when a process dies.
// A region grows by being replaced (a new memfd, a new generation); peers remap at the start
// of the next call, after the call's agreement, when the owner's words are final.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fusco/status.hpp"
#include "transport/shm_segment.hpp"  // ShmRank, ShmRegionWords
#include "transport/transport.hpp"

namespace fusco::transport {

/// A memfd of a process of this machine, as peers find it.
struct PeerFile {
  int32_t pid = 0;
  int32_t fd = -1;
  uint64_t device = 0;  // its identity: a peer checks the file it opened is this one
  uint64_t inode = 0;
  uint64_t bytes = 0;
};

/// A memfd this process made and mapped.
struct MemfdMapping {
  std::byte* base = nullptr;
  PeerFile file;
};

/// A new memfd of `bytes`, mapped; the error names rank `rank`, the size and the failed call
/// (kOutOfMemory when the machine has no room).
Result<MemfdMapping> create_memfd(size_t bytes, int rank);
/// Maps `file` of a peer process (through /proc/<pid>/fd/<fd>, checking its identity);
/// nullptr and `error` saying what failed when it cannot.
std::byte* map_peer_memfd(const PeerFile& file, std::string* error);

class SharedArena {
 public:
  /// `words[r]`: rank r's control words, where its region descriptors are published (this
  /// rank's own at `rank`); nullptr for a rank this process does not reach.
  SharedArena(std::vector<ShmRank*> words, int rank);
  ~SharedArena();
  SharedArena(const SharedArena&) = delete;
  SharedArena& operator=(const SharedArena&) = delete;

  /// This rank's region `region`, at least `bytes` long. Growing replaces it: its earlier
  /// contents and addresses are gone. kOutOfMemory naming the size when the machine cannot
  /// provide it.
  Result<std::byte*> reserve(SharedRegion region, size_t bytes);
  /// True when [data, data + bytes) lies inside one of this rank's regions.
  bool holds(const void* data, size_t bytes) const;
  /// Maps the reached peers' regions whose generation moved since the last call; an error
  /// names the peer and what failed.
  Status map_peers();
  /// The address in this process of `published`, an address inside one of rank `rank`'s
  /// regions in its own process (this rank: `published` itself); nullptr when it is in none.
  std::byte* translate(int rank, const void* published) const;

 private:
  struct Mapping {
    std::byte* base = nullptr;
    size_t bytes = 0;
    uint64_t generation = 0;
    uint64_t owner_base = 0;
    int fd = -1;  // own regions only
  };
  using Regions = std::array<Mapping, kSharedRegionCount>;

  static void unmap(Mapping& mapping);

  std::vector<ShmRank*> words_;
  int rank_;
  Regions own_;
  std::vector<Regions> peers_;  // by rank; this rank's entry and unreached ranks' unused
};

}  // namespace fusco::transport
