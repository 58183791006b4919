#pragma once

// Where a rank's one-sided puts land (NCCL GIN between nodes): a put names its destination
// offset in the peer's buffer, which the peer chose — the arrival row of a source's stream at
// its target, the return row of a target's stream at its source. Once per plan every rank
// tells each peer it shares a staged stream with the rows it chose for that peer
// (offsets_to_send), and learns from each peer where its own blocks land (put_destinations).

#include <cstdint>
#include <vector>

#include "fusco/status.hpp"
#include "plan/staged_programme.hpp"

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

}  // namespace fusco::detail
