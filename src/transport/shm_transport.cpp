#include "transport/shm_transport.hpp"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <climits>
#include <cstring>
#include <thread>

#include "transport/silent_peers.hpp"

namespace fusco::transport {

namespace {

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) &&
                  std::atomic<uint32_t>::is_always_lock_free,
              "futex words must be plain 32-bit words");

// Wait slices: a sleeping rank rechecks the group at least this often.
constexpr auto kSlice = std::chrono::milliseconds(10);
// How often a waiting rank checks that the peers it waits for still run.
constexpr auto kLivenessPeriod = std::chrono::milliseconds(50);
constexpr int kYieldsBeforeSleep = 16;

uint32_t* futex_word(std::atomic<uint32_t>& word) {
  return reinterpret_cast<uint32_t*>(&word);  // layout checked above
}

void futex_wait(std::atomic<uint32_t>& word, uint32_t expected, Clock::duration timeout) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  syscall(SYS_futex, futex_word(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
}

void futex_wake_all(std::atomic<uint32_t>& word) {
  syscall(SYS_futex, futex_word(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

uint64_t name_hash(const std::string& name) {
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a
  for (const char c : name) {
    hash = (hash ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  }
  return hash | (uint64_t{1} << 63);  // never equal to an in-process group's small id
}

std::vector<ShmRank*> every_rank_words(const ShmSegment& segment) {
  std::vector<ShmRank*> words(static_cast<size_t>(segment.geometry().world_size));
  for (size_t r = 0; r < words.size(); ++r) words[r] = &segment.rank_words(static_cast<int>(r));
  return words;
}

enum class WaitEnd { kReady, kBroken, kExpired, kPeerExited };

// Waits until ready() holds, sleeping on `word` while it still reads `seen`; bounded by
// `deadline`; every kLivenessPeriod asks peer_exited() whether a peer it waits for is gone.
template <typename Ready, typename Broken, typename PeerExited>
WaitEnd wait_for(std::atomic<uint32_t>& word, uint32_t seen, std::atomic<uint32_t>* sleepers,
                 const Deadline& deadline, Ready&& ready, Broken&& broken,
                 PeerExited&& peer_exited) {
  for (int spin = 0; spin < kYieldsBeforeSleep && !ready() && !broken(); ++spin) {
    std::this_thread::yield();
  }
  auto next_check = Clock::now() + kLivenessPeriod;
  while (true) {
    if (ready()) {
      return WaitEnd::kReady;
    }
    if (broken()) {
      return WaitEnd::kBroken;
    }
    const auto now = Clock::now();
    if (now >= deadline.at) {
      return WaitEnd::kExpired;
    }
    if (now >= next_check) {
      if (peer_exited()) {
        return WaitEnd::kPeerExited;
      }
      next_check = now + kLivenessPeriod;
    }
    if (sleepers != nullptr) {
      sleepers->fetch_add(1, std::memory_order_seq_cst);
    }
    if (!ready() && !broken()) {
      futex_wait(word, seen, std::min<Clock::duration>(deadline.at - now, kSlice));
    }
    if (sleepers != nullptr) {
      sleepers->fetch_sub(1, std::memory_order_seq_cst);
    }
  }
}

}  // namespace

Result<std::unique_ptr<ShmTransport>> ShmTransport::open(const std::string& name, int rank,
                                                         int world_size, size_t slot_bytes,
                                                         DirectMode direct,
                                                         const Deadline& deadline) {
  ShmGeometry geometry;
  geometry.world_size = world_size;
  geometry.slot_bytes = slot_bytes;
  geometry.mailbox_bytes = kMailboxBytes;
  Result<ShmSegment> segment = ShmSegment::open(name, rank, geometry, deadline);
  FUSCO_RETURN_IF_ERROR(segment.status());
  std::unique_ptr<ShmTransport> transport(
      new ShmTransport(std::move(segment).value(), rank, name_hash(name)));
  FUSCO_RETURN_IF_ERROR(transport->peers_.probe(*transport, direct, Status(), deadline));
  return transport;
}

ShmTransport::ShmTransport(ShmSegment segment, int rank, uint64_t group_id)
    : segment_(std::move(segment)),
      rank_(rank),
      group_id_(group_id),
      peers_(every_rank_words(segment_), rank) {
  const int world = world_size();
  windows_.resize(2 * static_cast<size_t>(world));
  const size_t slot = segment_.geometry().slot_bytes;
  for (int peer = 0; peer < world; ++peer) {
    windows_[2 * static_cast<size_t>(peer)] = std::make_unique<StagingWindow>(
        segment_.window_slots(rank_, peer), slot, segment_.window_flags(rank_, peer).full);
    windows_[2 * static_cast<size_t>(peer) + 1] = std::make_unique<StagingWindow>(
        segment_.window_slots(peer, rank_), slot, segment_.window_flags(peer, rank_).full);
  }
}

StagingWindow& ShmTransport::window(int from, int to) {
  // The engine only asks for windows this rank sends into or receives from.
  return from == rank_ ? *windows_[2 * static_cast<size_t>(to)]
                       : *windows_[2 * static_cast<size_t>(from) + 1];
}

Status ShmTransport::sync(const void* /*mine*/, std::vector<const void*>* /*all*/,
                          const Deadline& /*deadline*/, const char* what) {
  return Status(StatusCode::kUnsupported, std::string(what) +
                                              " needs ranks that reach each other's memory; the " +
                                              "shared-memory transport connects processes");
}

Status ShmTransport::barrier(const Deadline& deadline, const char* what) {
  FUSCO_RETURN_IF_ERROR(health());
  ShmHeader& header = segment_.header();
  const int world = world_size();
  const uint32_t generation = header.barrier_generation.load(std::memory_order_acquire);
  segment_.rank_words(rank_).arrived.store(generation + 1, std::memory_order_release);
  if (header.barrier_count.fetch_add(1, std::memory_order_acq_rel) + 1 ==
      static_cast<uint32_t>(world)) {
    header.barrier_count.store(0, std::memory_order_relaxed);
    header.barrier_generation.store(generation + 1, std::memory_order_release);
    futex_wake_all(header.barrier_generation);
    return Status();
  }
  auto missing = [&] {
    std::vector<int> ranks;
    for (int r = 0; r < world; ++r) {
      if (segment_.rank_words(r).arrived.load(std::memory_order_acquire) != generation + 1) {
        ranks.push_back(r);
      }
    }
    return ranks;
  };
  const WaitEnd end = wait_for(
      header.barrier_generation, generation, nullptr, deadline,
      [&] { return header.barrier_generation.load(std::memory_order_acquire) != generation; },
      [&] { return broken(); }, [&] { return peer_exited_while_waiting(missing()); });
  if (end == WaitEnd::kReady) {
    return Status();
  }
  if (end == WaitEnd::kBroken) {
    return health();
  }
  std::string names;
  for (const int r : missing()) {
    names += (names.empty() ? "" : ", ") + std::to_string(r);
  }
  if (end == WaitEnd::kPeerExited) {
    const std::string reason = peers_.exited_peer(missing()) + " while rank " +
                               std::to_string(rank_) + " waited for it in " + what +
                               "; the group must be recreated";
    if (!break_group(reason)) {
      return health();  // a survivor that failed first (and perhaps exited since) named the cause
    }
    return Status(StatusCode::kAborted, reason);
  }
  return timed_out(deadline,
                   std::string("in ") + what + " waiting for rank(s) " + names + " to arrive");
}

Status ShmTransport::alltoallv_consume(const std::vector<Bytes>& send, const ConsumeFn& consume,
                                       const Deadline& deadline, const char* what) {
  const auto world = static_cast<size_t>(world_size());
  const auto me = static_cast<size_t>(rank_);
  // A round's mailbox: [more, length for each destination] then the payloads in order.
  const size_t head = (world + 1) * sizeof(uint64_t);
  const size_t capacity = kMailboxBytes - head;
  std::vector<size_t> sent(world, 0);
  std::vector<Bytes> received(world);
  std::vector<uint64_t> words(world + 1);
  std::byte* box = segment_.mailbox(rank_);
  bool any_more = true;
  while (any_more) {
    size_t used = 0;
    uint64_t more = 0;
    for (size_t d = 0; d < world; ++d) {
      const size_t size = d < send.size() ? send[d].size() : 0;
      const size_t n = std::min(size - sent[d], capacity - used);
      if (n > 0) {
        std::memcpy(box + head + used, send[d].data() + sent[d], n);
      }
      words[d + 1] = n;
      sent[d] += n;
      used += n;
      more |= sent[d] < size ? 1 : 0;
    }
    words[0] = more;
    std::memcpy(box, words.data(), head);
    FUSCO_RETURN_IF_ERROR(barrier(deadline, what));
    any_more = false;
    for (size_t s = 0; s < world; ++s) {
      const std::byte* theirs = segment_.mailbox(static_cast<int>(s));
      std::memcpy(words.data(), theirs, head);
      size_t offset = head;
      for (size_t d = 0; d < me; ++d) {
        offset += words[d + 1];
      }
      received[s].insert(received[s].end(), theirs + offset, theirs + offset + words[me + 1]);
      any_more = any_more || words[0] != 0;
    }
    // Nobody refills its mailbox before every rank has read this round.
    FUSCO_RETURN_IF_ERROR(barrier(deadline, what));
  }
  for (size_t s = 0; s < world; ++s) {
    FUSCO_RETURN_IF_ERROR(consume(static_cast<int>(s), received[s]));
  }
  return Status();
}

Status ShmTransport::allgather(const void* mine, size_t bytes, std::byte* out,
                               const Deadline& deadline, const char* what) {
  return allgather_by_messages(*this, mine, bytes, out, deadline, what);
}

uint64_t ShmTransport::doorbell() const {
  return segment_.rank_words(rank_).doorbell.load(std::memory_order_acquire);
}

void ShmTransport::ring(int peer) {
  ShmRank& words = segment_.rank_words(peer);
  words.doorbell.fetch_add(1, std::memory_order_seq_cst);
  if (words.sleepers.load(std::memory_order_seq_cst) > 0) {
    futex_wake_all(words.doorbell);
  }
}

Status ShmTransport::wait_doorbell(uint64_t seen, const Deadline& deadline,
                                   const std::function<std::string()>& waiting_for) {
  ShmRank& words = segment_.rank_words(rank_);
  const auto value = static_cast<uint32_t>(seen);
  const WaitEnd end = wait_for(
      words.doorbell, value, &words.sleepers, deadline,
      [&] { return words.doorbell.load(std::memory_order_acquire) != value; },
      [&] { return broken(); }, [&] { return peer_exited_while_waiting({}); });
  switch (end) {
    case WaitEnd::kReady:
      return Status();
    case WaitEnd::kBroken:
      return health();
    case WaitEnd::kPeerExited: {
      const std::string reason = peers_.exited_peer({}) + " while rank " + std::to_string(rank_) +
                                 " was " + waiting_for() + "; the group must be recreated";
      if (!break_group(reason)) {
        return health();  // as in barrier(): the first failure's reason names the cause
      }
      return Status(StatusCode::kAborted, reason);
    }
    case WaitEnd::kExpired:
      break;
  }
  return timed_out(deadline, waiting_for());
}

bool ShmTransport::peer_exited_while_waiting(const std::vector<int>& ranks) const {
  segment_.rank_words(rank_).heartbeat.fetch_add(1, std::memory_order_relaxed);
  return !peers_.exited_peer(ranks).empty();
}

std::vector<int> ShmTransport::silent_peers() const {
  std::vector<uint32_t> before(static_cast<size_t>(world_size()));
  for (int r = 0; r < world_size(); ++r) {
    before[static_cast<size_t>(r)] =
        segment_.rank_words(r).heartbeat.load(std::memory_order_relaxed);
  }
  const auto end = Clock::now() + kSilenceGrace;
  std::vector<int> silent;
  while (Clock::now() < end && !broken()) {
    std::this_thread::sleep_for(kLivenessPeriod);
    peer_exited_while_waiting({});  // this rank is waiting too
    silent.clear();
    for (int r = 0; r < world_size(); ++r) {
      const bool moved = segment_.rank_words(r).heartbeat.load(std::memory_order_relaxed) !=
                         before[static_cast<size_t>(r)];
      if (r != rank_ && !moved) silent.push_back(r);
    }
    if (silent.empty()) break;
  }
  return silent;
}

Status ShmTransport::timed_out(const Deadline& deadline, const std::string& waited) {
  const std::vector<int> silent = silent_peers();
  const std::string reason = "rank " + std::to_string(rank_) + " timed out after " +
                             std::to_string(deadline.timeout_ms) + " ms " + waited +
                             silence_text(silent);
  if (!break_group(reason)) {
    return health();  // a peer that failed first named the cause
  }
  return Status(StatusCode::kTimeout, reason);
}

bool ShmTransport::broken() const {
  return segment_.header().broken.load(std::memory_order_seq_cst) != 0;
}

Status ShmTransport::health() const {
  const ShmHeader& header = segment_.header();
  if (header.broken.load(std::memory_order_acquire) == 0) {
    return Status();
  }
  return Status(StatusCode::kAborted, "the group is unusable after an earlier failure (" +
                                          break_status(header).message() +
                                          "); recreate the communicators");
}

bool ShmTransport::break_group(const std::string& reason) {
  ShmHeader& header = segment_.header();
  const bool first = record_break(header, reason);
  futex_wake_all(header.barrier_generation);
  for (int r = 0; r < world_size(); ++r) {
    futex_wake_all(segment_.rank_words(r).doorbell);
  }
  return first;
}

}  // namespace fusco::transport
