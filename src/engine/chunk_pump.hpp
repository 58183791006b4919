#pragma once

// The progress loop shared by dispatch and combine. One thread per rank drives three kinds of
// work without ever blocking on one of them while another could move: chunks arriving in its
// staging windows (consume), chunks it may put into its peers' windows (produce), and its own
// direct stores (local). When nothing can move it sleeps on its doorbell, bounded by the
// deadline; a timeout names the peers it was waiting for.

#include <algorithm>
#include <string>
#include <vector>

#include "core/chunk_steps.hpp"
#include "transport/transport.hpp"

namespace fusco::engine {

/// The chunks of one direction between this rank and one peer.
struct ChunkStream {
  int peer = 0;
  int index = 0;  // position in the plan's staged_out / staged_in list
  transport::StagingWindow* window = nullptr;
  int64_t rows = 0;
  int64_t chunks = 0;
  int64_t next = 0;
};

using core::chunk_count;

/// Runs until every stream is complete and `local` reports no more work.
///   produce(stream, first_row, count, std::byte* slot)
///   consume(stream, first_row, count, const std::byte* slot)
///   local() -> bool: did some local work (false once there is none left)
/// The callbacks check transport.broken() before every row that touches a peer's memory and
/// stop there; the loop then returns the group's failure.
template <typename Produce, typename Consume, typename Local>
Status pump_chunks(transport::Transport& transport, std::vector<ChunkStream>& outgoing,
                   std::vector<ChunkStream>& incoming, int64_t rows_per_chunk, size_t row_bytes,
                   const transport::Deadline& deadline, const char* what, Produce&& produce,
                   Consume&& consume, Local&& local) {
  auto describe = [&]() {
    std::string waits;  // "a, b, c": the caller appends its own punctuation
    auto add = [&waits](const std::string& wait) { waits += (waits.empty() ? "" : ", ") + wait; };
    for (const ChunkStream& s : incoming) {
      if (s.next < s.chunks) {
        add("chunk " + std::to_string(s.next) + "/" + std::to_string(s.chunks) + " from rank " +
            std::to_string(s.peer));
      }
    }
    for (const ChunkStream& s : outgoing) {
      if (s.next < s.chunks) {
        add("rank " + std::to_string(s.peer) + " to free a slot for chunk " +
            std::to_string(s.next) + "/" + std::to_string(s.chunks));
      }
    }
    return std::string("in ") + what + " waiting for " + waits;
  };
  bool local_left = true;
  while (true) {
    // A peer that gave up (timeout) breaks the group: stop touching peers' memory at once.
    FUSCO_RETURN_IF_ERROR(transport.health());
    const uint64_t bell = transport.doorbell();
    bool moved = false;
    bool streams_left = false;
    for (ChunkStream& s : incoming) {
      while (s.next < s.chunks && s.window->can_take(s.next)) {
        const int64_t first = s.next * rows_per_chunk;
        consume(s, first, std::min(rows_per_chunk, s.rows - first), s.window->take_buffer(s.next));
        if (transport.broken()) {
          return transport.health();
        }
        s.window->take_done(s.next);
        transport.ring(s.peer);
        ++s.next;
        moved = true;
      }
      streams_left = streams_left || s.next < s.chunks;
    }
    for (ChunkStream& s : outgoing) {
      while (s.next < s.chunks && s.window->can_put(s.next)) {
        const int64_t first = s.next * rows_per_chunk;
        const int64_t count = std::min(rows_per_chunk, s.rows - first);
        produce(s, first, count, s.window->put_buffer(s.next));
        if (transport.broken()) {
          return transport.health();
        }
        s.window->put_done(s.next, static_cast<size_t>(count) * row_bytes);
        transport.ring(s.peer);
        ++s.next;
        moved = true;
      }
      streams_left = streams_left || s.next < s.chunks;
    }
    if (local_left) {
      local_left = local();
      moved = moved || local_left;
    }
    if (transport.broken()) {
      return transport.health();
    }
    if (!streams_left && !local_left) {
      return Status();
    }
    if (!moved) {
      FUSCO_RETURN_IF_ERROR(transport.wait_doorbell(bell, deadline, describe));
    }
  }
}

}  // namespace fusco::engine
