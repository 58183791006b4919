#include "gpu/staged_puts.hpp"

#include <map>
#include <string>

namespace fusco::detail {

std::vector<PutOffsets> offsets_to_send(const StagedStreams& streams) {
  std::map<int32_t, PutOffsets> by_peer;
  for (const StagedStreams::In& in : streams.in) {
    PutOffsets& message = by_peer[in.source];
    message.peer = in.source;
    message.arrive_begin = in.arrive_begin;
  }
  for (const StagedStreams::Out& out : streams.out) {
    PutOffsets& message = by_peer[out.target];
    message.peer = out.target;
    message.return_begin = out.return_begin;
  }
  std::vector<PutOffsets> messages;
  messages.reserve(by_peer.size());
  for (const auto& [peer, message] : by_peer) messages.push_back(message);
  return messages;
}

Result<PutDestinations> put_destinations(const StagedStreams& streams,
                                         const std::vector<PutOffsets>& received) {
  std::map<int32_t, const PutOffsets*> from;
  for (const PutOffsets& message : received) from[message.peer] = &message;
  const auto missing = [](int32_t peer, const char* what) {
    return Status(StatusCode::kInternal, "rank " + std::to_string(peer) + " sent no " + what +
                                             " for the staged stream it shares with this rank");
  };
  PutDestinations destinations;
  for (const StagedStreams::Out& out : streams.out) {
    const auto found = from.find(out.target);
    if (found == from.end() || found->second->arrive_begin < 0) {
      return missing(out.target, "arrival row");
    }
    destinations.out_arrive.push_back(found->second->arrive_begin);
  }
  for (const StagedStreams::In& in : streams.in) {
    const auto found = from.find(in.source);
    if (found == from.end() || found->second->return_begin < 0) {
      return missing(in.source, "return row");
    }
    destinations.in_return.push_back(found->second->return_begin);
  }
  return destinations;
}

PutPacing::PutPacing(int steps, int world)
    : blocks_(static_cast<size_t>(steps), std::vector<uint64_t>(static_cast<size_t>(world), 0)),
      chunks_(blocks_) {}

uint64_t PutPacing::next_block(int step, int32_t peer) {
  return blocks_[static_cast<size_t>(step)][static_cast<size_t>(peer)]++;
}

uint64_t PutPacing::next_arrival(int step, int32_t peer, int64_t chunks) {
  uint64_t& seen = chunks_[static_cast<size_t>(step)][static_cast<size_t>(peer)];
  const uint64_t before = seen;
  seen += static_cast<uint64_t>(chunks);
  return before;
}

}  // namespace fusco::detail
