#pragma once

// Where a rank's one-sided puts land (NCCL GIN between nodes): a put names its destination
// offset in the peer's buffer, which the peer chose — the arrival row of a source's stream at
// its target, the return row of a target's stream at its source. Once per plan every rank
// tells each peer it shares a staged stream with the rows it chose for that peer
// (offsets_to_send), and learns from each peer where its own blocks land (put_destinations);
// PutPacing keeps the counts the puts' signals are awaited by.

#include <cstdint>
#include <vector>

#include "fusco/status.hpp"
#include "gpu/staged_programme.hpp"

namespace fusco::detail {

/// What a rank tells one peer: the first arrival row it gave the peer's stream to it, and the
/// first return row it gave its own stream to the peer (-1 where there is no such stream).
struct PutOffsets {
  int32_t peer = 0;
  int64_t arrive_begin = -1;
  int64_t return_begin = -1;
};

/// One message per peer this rank shares a staged stream with (targets of its Out streams,
/// sources of its In streams), peers ascending: what it sends to that peer.
std::vector<PutOffsets> offsets_to_send(const StagedStreams& streams);

/// Where this rank's puts land: per Out stream (in order) the target's arrival row of its
/// first entry, per In stream the source's return row of its first return row.
struct PutDestinations {
  std::vector<int64_t> out_arrive;
  std::vector<int64_t> in_return;
};

/// From what every peer of offsets_to_send(streams) sent back (received[i] from the i-th
/// peer, its `peer` field naming the sender). kInternal when a peer's answer lacks a row a
/// stream needs, naming the peer.
Result<PutDestinations> put_destinations(const StagedStreams& streams,
                                         const std::vector<PutOffsets>& received);

/// How one rank paces its one-sided puts across calls (GIN): signals only count up, so each
/// wait needs a count, which each rank keeps on its own — per (step, peer) — and which both
/// ends of a stream arrive at alike. A sender's block to a peer may overwrite the peer's
/// region once the peer acknowledged (one acknowledgement per block) every earlier block of
/// that step; a receiver's stream of chunks has chunk c once the sender's data signal (one
/// per chunk) passed the chunks of earlier streams plus c + 1.
class PutPacing {
 public:
  PutPacing(int steps, int world);
  /// Before this rank puts a block of `step` to `peer`: the acknowledgements it must have
  /// seen from the peer. Counts the block.
  uint64_t next_block(int step, int32_t peer);
  /// A stream of `chunks` chunks of `step` arrives from `peer`: the peer's data signal before
  /// it. Counts its chunks.
  uint64_t next_arrival(int step, int32_t peer, int64_t chunks);

 private:
  std::vector<std::vector<uint64_t>> blocks_;  ///< [step][peer]: blocks put so far.
  std::vector<std::vector<uint64_t>> chunks_;  ///< [step][peer]: chunks awaited so far.
};

}  // namespace fusco::detail
