#include "transport/machine_peers.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <new>
#include <thread>

namespace fusco::transport {

namespace {

constexpr size_t kWordsBytes = (sizeof(ShmRank) + 4095) / 4096 * 4096;

}  // namespace

MachineWords::MachineWords(int world_size) : words_(static_cast<size_t>(world_size), nullptr) {}

MachineWords::~MachineWords() {
  for (ShmRank* words : words_) {
    if (words != nullptr) munmap(words, kWordsBytes);
  }
  if (own_.file.fd >= 0) close(own_.file.fd);
}

Status MachineWords::create(int rank) {
  rank_ = rank;
  Result<MemfdMapping> created = create_memfd(kWordsBytes, rank);
  FUSCO_RETURN_IF_ERROR(created.status());
  own_ = created.value();
  auto* words = new (own_.base) ShmRank();
  words->pid.store(own_.file.pid, std::memory_order_release);
  words_[static_cast<size_t>(rank)] = words;
  return Status();
}

Status MachineWords::map_peer(int peer, const PeerFile& file) {
  std::string error;
  std::byte* base = nullptr;
  if (file.fd < 0) {
    error = "it published none";
  } else if (file.bytes != kWordsBytes) {
    error = "its words take " + std::to_string(file.bytes) + " bytes, this rank's " +
            std::to_string(kWordsBytes) + ": different builds of fusco?";
  } else {
    base = map_peer_memfd(file, &error);
  }
  if (base == nullptr) {
    return Status(StatusCode::kUnsupported,
                  "rank " + std::to_string(rank_) + " cannot map the control words of rank " +
                      std::to_string(peer) + " on its machine (" + error + ")");
  }
  words_[static_cast<size_t>(peer)] = reinterpret_cast<ShmRank*>(base);
  return Status();
}

MachinePeers::MachinePeers(std::vector<ShmRank*> words, int rank)
    : words_(std::move(words)), rank_(rank) {}

Status MachinePeers::probe(Transport& transport, DirectMode mode, const Status& local,
                           const Deadline& deadline, bool spans_machines) {
  // Every rank takes part (the verdict must be the same everywhere), also one that does not
  // want the direct ability (FUSCO_SHM_DIRECT=0 there turns it off for the group). A peer
  // that published no region maps vacuously; its vote decides.
  Status failed = spans_machines ? Status(StatusCode::kUnsupported, "") : local;
  const bool wants = mode != DirectMode::kOff;
  if (wants && failed.ok()) {
    arena_ = std::make_unique<SharedArena>(words_, rank_);
    failed = arena_->reserve(SharedRegion::kWeights, 1).status();
  }
  const char* what = "create (shared memory probe)";
  FUSCO_RETURN_IF_ERROR(transport.barrier(deadline, what));
  if (wants && failed.ok()) failed = arena_->map_peers();
  // Per rank: whether it maps every peer's region it reaches, and whether it requires that.
  const std::array<uint8_t, 2> mine = {static_cast<uint8_t>(wants && failed.ok() ? 1 : 0),
                                       static_cast<uint8_t>(mode == DirectMode::kRequired)};
  std::vector<std::array<uint8_t, 2>> all(static_cast<size_t>(transport.world_size()));
  FUSCO_RETURN_IF_ERROR(transport.allgather(
      mine.data(), mine.size(), reinterpret_cast<std::byte*>(all.data()), deadline, what));
  int without = -1;  // the first rank without the ability
  int requiring = -1;
  for (int r = 0; r < transport.world_size(); ++r) {
    if (without < 0 && all[static_cast<size_t>(r)][0] == 0) without = r;
    if (requiring < 0 && all[static_cast<size_t>(r)][1] != 0) requiring = r;
  }
  if (without < 0) return Status();
  arena_.reset();  // some rank cannot reach its peers: rows take the staged path
  if (requiring < 0) return Status();
  std::string cause = "rank " + std::to_string(without) +
                      " cannot map the others' shared memory, or has FUSCO_SHM_DIRECT=0";
  if (spans_machines) {
    cause = "the group spans machines (the direct ability covers groups on one machine)";
  } else if (without == rank_) {
    cause = wants ? failed.message() : "rank " + std::to_string(rank_) + " has FUSCO_SHM_DIRECT=0";
  }
  return Status(StatusCode::kUnsupported, "FUSCO_SHM_DIRECT=1 (rank " + std::to_string(requiring) +
                                              ") requires shared receive memory, but " + cause);
}

bool MachinePeers::reaches(const void* data, size_t bytes) const {
  return arena_ == nullptr || arena_->holds(data, bytes);
}

Result<std::byte*> MachinePeers::shared_region(SharedRegion region, size_t bytes) {
  if (arena_ == nullptr) return static_cast<std::byte*>(nullptr);
  return arena_->reserve(region, bytes);
}

void* MachinePeers::peer_address(int rank, const void* published) const {
  if (arena_ == nullptr) {
    return rank == rank_ ? const_cast<void*>(published) : nullptr;
  }
  return arena_->translate(rank, published);
}

Status MachinePeers::reach(Transport& transport) {
  if (arena_ == nullptr) return Status();
  Status mapped = arena_->map_peers();
  if (mapped.ok()) return mapped;
  // A killed peer's files go before its process is reported gone (an exiting process closes
  // them, then becomes a zombie): allow it a moment, so that the reason names the exit.
  std::string reason = mapped.message();
  const auto until = Clock::now() + std::chrono::milliseconds(200);
  for (; Clock::now() < until; std::this_thread::sleep_for(std::chrono::milliseconds(2))) {
    const std::string gone = exited_peer({});
    if (!gone.empty()) {
      reason = gone + " while rank " + std::to_string(rank_) +
               " mapped its shared memory; the group must be recreated";
      break;
    }
  }
  // The others already store into peers' memory: the group cannot go on. A failure recorded
  // first names the cause.
  if (transport.broken()) return transport.health();
  transport.abort(reason);
  return Status(StatusCode::kAborted, reason);
}

std::string MachinePeers::exited_peer(const std::vector<int>& ranks) const {
  auto check = [&](int r) -> std::string {
    const ShmRank* words = words_[static_cast<size_t>(r)];
    if (r == rank_ || words == nullptr) return "";
    const int32_t pid = words->pid.load(std::memory_order_acquire);
    if (!process_exited(pid)) return "";
    return "rank " + std::to_string(r) + " (process " + std::to_string(pid) + ") exited";
  };
  if (ranks.empty()) {
    for (int r = 0; r < static_cast<int>(words_.size()); ++r) {
      std::string gone = check(r);
      if (!gone.empty()) return gone;
    }
    return "";
  }
  for (const int r : ranks) {
    std::string gone = check(r);
    if (!gone.empty()) return gone;
  }
  return "";
}

void MachinePeers::set_touching(bool touching) {
  words_[static_cast<size_t>(rank_)]->touching.store(touching ? 1 : 0, std::memory_order_seq_cst);
}

void MachinePeers::tell_broken() {
  for (size_t r = 0; r < words_.size(); ++r) {
    if (words_[r] != nullptr && static_cast<int>(r) != rank_) {
      int32_t expected = 0;
      words_[r]->told_broken.compare_exchange_strong(expected, rank_ + 1,
                                                     std::memory_order_seq_cst);
    }
  }
}

std::string MachinePeers::wait_quiet(std::chrono::milliseconds grace) const {
  const auto until = Clock::now() + grace;
  std::string active;
  while (true) {
    active.clear();
    for (int r = 0; r < static_cast<int>(words_.size()); ++r) {
      const ShmRank* words = words_[static_cast<size_t>(r)];
      if (r != rank_ && words != nullptr && words->touching.load(std::memory_order_seq_cst) != 0 &&
          !process_exited(words->pid.load(std::memory_order_acquire))) {
        active += (active.empty() ? "" : ", ") + std::to_string(r);
      }
    }
    if (active.empty() || Clock::now() >= until) return active;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

}  // namespace fusco::transport
