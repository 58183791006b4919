#include "gpu/host_nccl_world.hpp"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace fusco::gpu {

namespace {

// The worlds by unique id, while one of their ranks lives.
std::map<std::string, std::weak_ptr<HostNcclWorld>>& worlds() {
  static std::map<std::string, std::weak_ptr<HostNcclWorld>> all;
  return all;
}

}  // namespace

Result<std::shared_ptr<HostNcclWorld>> HostNcclWorld::join(const ncclUniqueId& id, int size,
                                                           int rank) {
  static std::mutex lock;
  std::lock_guard<std::mutex> guard(lock);
  if (size < 1 || rank < 0 || rank >= size) {
    return Status(StatusCode::kInvalidArgument, "ncclCommInitRank (host): rank " +
                                                    std::to_string(rank) + " of " +
                                                    std::to_string(size) + " ranks");
  }
  const std::string key(id.internal, sizeof(id.internal));
  std::shared_ptr<HostNcclWorld> world = worlds()[key].lock();
  if (world == nullptr) {
    world = std::make_shared<HostNcclWorld>(size);
    worlds()[key] = world;
  }
  if (world->size_ != size) {
    return Status(StatusCode::kInvalidArgument,
                  "ncclCommInitRank (host): rank " + std::to_string(rank) + " asks for " +
                      std::to_string(size) + " ranks, its peers for " +
                      std::to_string(world->size_));
  }
  return world;
}

HostNcclWorld::~HostNcclWorld() {
  for (const std::vector<void*>& window : parts_) {
    for (void* part : window) std::free(part);
  }
}

ncclWindow_t HostNcclWorld::register_part(size_t index, int rank, void* part) {
  if (parts_.size() <= index) {
    parts_.resize(index + 1, std::vector<void*>(static_cast<size_t>(size_), nullptr));
  }
  while (handles_.size() <= index) handles_.push_back(HostWindow{this, handles_.size()});
  std::free(parts_[index][static_cast<size_t>(rank)]);
  parts_[index][static_cast<size_t>(rank)] = part;
  return reinterpret_cast<ncclWindow_t>(&handles_[index]);
}

void* HostNcclWorld::part(ncclWindow_t handle, int rank) {
  const auto* window = reinterpret_cast<const HostWindow*>(handle);
  const std::vector<void*>& parts = window->world->parts_[window->index];
  return rank < 0 || rank >= static_cast<int>(parts.size()) ? nullptr
                                                            : parts[static_cast<size_t>(rank)];
}

void HostNcclWorld::enqueue_exchange(HostNcclComm& comm, const std::vector<PeerBlock>& sends,
                                     const std::vector<PeerBlock>& recvs, HostStream& stream,
                                     int64_t timeout_ms, const std::string& what) {
  comm.sent.resize(static_cast<size_t>(size_), 0);
  comm.awaited.resize(static_cast<size_t>(size_), 0);
  const uint64_t position = stream.queued() + 1;  // the exchange's work, queued below
  std::vector<Message> out;
  out.reserve(sends.size());
  for (const PeerBlock& block : sends) {
    const uint64_t number = comm.sent[static_cast<size_t>(block.peer)]++;
    posted_[{comm.rank, block.peer}][number] = HostEvent{stream.shared_from_this(), position};
    out.push_back({block.peer, block.data, block.bytes, number});
  }
  std::vector<Message> in;
  in.reserve(recvs.size());
  for (const PeerBlock& block : recvs) {
    in.push_back(
        {block.peer, block.data, block.bytes, comm.awaited[static_cast<size_t>(block.peer)]++});
  }
  // The work holds the world and the rank's state: both outlive an abort of the handle.
  std::shared_ptr<HostNcclWorld> world = comm.world;
  std::shared_ptr<HostRankState> state = comm.state;
  stream.enqueue([world, state, rank = comm.rank, out, in, timeout_ms, what] {
    world->run_exchange(rank, out, in, *state, timeout_ms, what);
  });
}

void HostNcclWorld::run_exchange(int rank, const std::vector<Message>& sends,
                                 const std::vector<Message>& recvs, HostRankState& state,
                                 int64_t timeout_ms, const std::string& what) {
  if (state.aborted || !state.error.empty()) return;  // NCCL's calls end after an abort
  for (const Message& send : sends) {
    const char* bytes = static_cast<const char*>(send.data);
    mailbox_[{rank, send.peer}][send.number].assign(bytes, bytes + send.bytes);
  }
  for (const Message& recv : recvs) {
    if (!receive(rank, recv, state, timeout_ms, what)) return;
  }
}

bool HostNcclWorld::receive(int rank, const Message& recv, HostRankState& state, int64_t timeout_ms,
                            const std::string& what) {
  const Pair pair{recv.peer, rank};
  const bool arrived =
      wait_for_peer([&] { return state.aborted || mailbox_[pair].count(recv.number) > 0; },
                    [&] {
                      const auto it = posted_[pair].find(recv.number);
                      return it == posted_[pair].end() ? HostEvent{} : it->second;
                    },
                    std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms));
  if (state.aborted) return false;
  if (!arrived) {
    state.error = what + ": rank " + std::to_string(rank) + " waited more than " +
                  std::to_string(timeout_ms) + " ms for message " + std::to_string(recv.number) +
                  " from rank " + std::to_string(recv.peer) + " (host backend)";
    return false;
  }
  std::vector<char> message = std::move(mailbox_[pair][recv.number]);
  mailbox_[pair].erase(recv.number);
  posted_[pair].erase(recv.number);
  if (message.size() != recv.bytes) {
    state.error = what + ": rank " + std::to_string(rank) + " expected " +
                  std::to_string(recv.bytes) + " bytes from rank " + std::to_string(recv.peer) +
                  ", which sent " + std::to_string(message.size()) + " (host backend)";
    return false;
  }
  if (!message.empty()) std::memcpy(recv.data, message.data(), message.size());
  return true;
}

}  // namespace fusco::gpu
