#include "transport/ucx_transport.hpp"

#include <poll.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "transport/shared_arena.hpp"  // PeerFile
#include "transport/shm_segment.hpp"   // process_exited
#include "transport/silent_peers.hpp"

namespace fusco::transport {

namespace {

// Tags: kind (4 bits) | source rank (20 bits) | value (40 bits: slot or collective sequence).
enum class Kind : uint64_t {
  kCollective = 1,
  kChunk = 2,
  kAck = 3,
  kBreak = 4,
  kProbe = 5,   // "do you answer?", sent once a wait ran out
  kAnswer = 6,  // the reply, sent from progress()
};
constexpr ucp_tag_t kFullMask = ~ucp_tag_t{0};
constexpr int kMaxRanks = 1 << 20;

ucp_tag_t make_tag(Kind kind, int source, uint64_t value) {
  return (static_cast<uint64_t>(kind) << 60) | (static_cast<uint64_t>(source) << 40) |
         (value & ((uint64_t{1} << 40) - 1));
}

constexpr auto kSlice = std::chrono::milliseconds(10);
constexpr auto kLivenessPeriod = std::chrono::milliseconds(50);
constexpr size_t kReasonBytes = 1024;
const Bytes kNothing;  // what a rank sends to a destination `send` has no entry for

std::string machine_id() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(boot, id);
  return std::string(host) + "/" + id;
}

std::string ucs_text(ucs_status_t status) { return ucs_status_string(status); }

// What a UCX failure is to fusco's caller: the network or a peer (the group cannot be made or
// used: recreate it), a wait that ran out, a missing device or transport, memory, or else a
// fusco bug. docs/errors.md keeps kInternal for bugs only.
StatusCode code_of(ucs_status_t status) {
  switch (status) {
    case UCS_ERR_TIMED_OUT:
    case UCS_ERR_ENDPOINT_TIMEOUT:
      return StatusCode::kTimeout;
    case UCS_ERR_UNREACHABLE:
    case UCS_ERR_CONNECTION_RESET:
    case UCS_ERR_NOT_CONNECTED:
    case UCS_ERR_REJECTED:
    case UCS_ERR_IO_ERROR:
    case UCS_ERR_SOME_CONNECTS_FAILED:
    case UCS_ERR_CANCELED:
      return StatusCode::kAborted;
    case UCS_ERR_NO_DEVICE:
    case UCS_ERR_UNSUPPORTED:
    case UCS_ERR_INVALID_ADDR:
      return StatusCode::kUnsupported;
    case UCS_ERR_NO_MEMORY:
    case UCS_ERR_EXCEEDS_LIMIT:
      return StatusCode::kOutOfMemory;
    default:
      return StatusCode::kInternal;
  }
}

// UCX's settings that choose its devices, for messages about a network or device failure.
std::string ucx_settings_text() {
  std::string out;
  for (const char* name : {"UCX_TLS", "UCX_NET_DEVICES"}) {
    const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only
    out +=
        std::string(out.empty() ? "" : ", ") + name + "=" + (value != nullptr ? value : "(unset)");
  }
  return out;
}

// `what` failed with `status`: the error with its code, UCX's words, and what to check.
Status ucx_error(ucs_status_t status, const std::string& what) {
  const StatusCode code = code_of(status);
  std::string hint;
  if (code == StatusCode::kAborted || code == StatusCode::kTimeout) {
    hint = "; check the network between the machines and that the peer is alive (" +
           ucx_settings_text() + "), then recreate the group";
  } else if (code == StatusCode::kUnsupported) {
    hint = "; UCX found no usable transport or device (" + ucx_settings_text() + ")";
  }
  return Status(code, what + " (UCX: " + ucs_text(status) + ")" + hint);
}

// The bootstrap record: fixed-size values and length-prefixed byte strings.
class RecordWriter {
 public:
  template <typename T>
  void put(const T& value) {
    text_.append(reinterpret_cast<const char*>(&value), sizeof(T));
  }
  void put_bytes(const void* data, size_t bytes) {
    put(static_cast<uint32_t>(bytes));
    text_.append(static_cast<const char*>(data), bytes);
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

class RecordReader {
 public:
  explicit RecordReader(const std::string& text) : text_(text) {}
  template <typename T>
  bool get(T* value) {
    if (text_.size() - at_ < sizeof(T)) {
      return false;
    }
    std::memcpy(value, text_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  bool get_bytes(std::string* bytes) {
    uint32_t size = 0;
    if (!get(&size) || text_.size() - at_ < size) {
      return false;
    }
    bytes->assign(text_, at_, size);
    at_ += size;
    return true;
  }

 private:
  const std::string& text_;
  size_t at_ = 0;
};

// Peers put into each other's windows at offsets of the slot size, so every rank must have
// the same one; checked on every record (pid, slot bytes, ...) before anyone connects, so all
// ranks fail at the same point with the same verdict.
Status check_slot_sizes(const std::vector<std::string>& records, int rank, size_t slot_bytes) {
  for (size_t r = 0; r < records.size(); ++r) {
    RecordReader reader(records[r]);
    int32_t pid = 0;
    uint64_t theirs = 0;
    if (!reader.get(&pid) || !reader.get(&theirs)) {
      return Status(StatusCode::kInternal,
                    "bootstrap record of rank " + std::to_string(r) + " is truncated");
    }
    if (theirs != slot_bytes) {
      return Status(StatusCode::kMismatch,
                    "FUSCO_SHM_SLOT_BYTES differs across ranks: rank " + std::to_string(rank) +
                        " has " + std::to_string(slot_bytes) + ", rank " + std::to_string(r) +
                        " has " + std::to_string(theirs));
    }
  }
  return Status();
}

// The record of a rank that cannot join: pid -1, then why.
std::string refusal_record(const Status& why) {
  RecordWriter writer;
  writer.put(int32_t{-1});
  writer.put_bytes(why.message().data(), why.message().size());
  return writer.take();
}

Status check_refusals(const std::vector<std::string>& records) {
  for (size_t r = 0; r < records.size(); ++r) {
    RecordReader reader(records[r]);
    int32_t pid = 0;
    std::string why;
    if (reader.get(&pid) && pid == -1 && reader.get_bytes(&why)) {
      return Status(StatusCode::kInvalidArgument,
                    "rank " + std::to_string(r) + " could not join the UCX group (" + why + ")");
    }
  }
  return Status();
}

}  // namespace

// One completion: what a finished UCX request was for.
struct Completion {
  enum class What {
    kChunkArrived,
    kAckArrived,
    kBreakArrived,
    kSent,
    kCollectiveSent,
    kCollectiveArrived,
    kPutFlushed,     // a put chunk reached the peer: send its signal
    kProbeArrived,   // a peer asks whether this rank answers
    kAnswerArrived,  // a peer answered this rank's probe
  };
  UcxTransport::Impl* impl;
  What what;
  int peer;
  int slot;
  bool* done;  // collectives: set when finished
};

struct UcxTransport::Impl {
  struct Peer {
    ucp_ep_h ep = nullptr;
    int32_t pid = 0;
    bool same_machine = false;
    std::string machine;                      // its machine_id()
    std::string failed;                       // set by the endpoint's error handler
    std::unique_ptr<std::byte[]> out_memory;  // local out-slots (when the peer is not mapped)
    std::byte* in_memory = nullptr;           // this rank's in-slots for the peer (registered)
    ucp_rkey_h rkey = nullptr;                // the peer's window region
    std::byte* mapped = nullptr;  // the peer's in-slots for this rank, mapped here (or null)
    bool peer_maps_me = false;    // the peer writes into in_memory and sends only a signal
    bool put = false;             // chunks go by RDMA put into the peer's slots, then a signal
    uint64_t remote_slots = 0;    // the peer's in-slots for this rank (remote address)
    uint64_t ready_out[2] = {0, 0};
    uint64_t ready_in[2] = {0, 0};
    std::unique_ptr<std::atomic<uint32_t>[]> out_full, in_full;
    std::unique_ptr<StagingWindow> out, in;  // this rank -> peer, peer -> this rank
    bool sent[2] = {false, false};           // out slot: sent, waiting for its ack
    bool delivered[2] = {false, false};      // in slot: arrived, not yet acknowledged
    void* chunk_recv[2] = {nullptr, nullptr};
    uint64_t ack_in[2] = {0, 0};
    uint64_t ack_out[2] = {0, 1};
    void* ack_recv[2] = {nullptr, nullptr};
    char break_in[kReasonBytes] = {};
    void* break_recv = nullptr;
    uint64_t probe_in = 0;
    uint64_t answer_in = 0;
    void* probe_recv = nullptr;
    void* answer_recv = nullptr;
    bool answered = false;  // answered this rank's latest probe
  };

  int rank = 0;
  int world = 1;
  size_t slot_bytes = 0;
  uint64_t group_id = 0;
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  ucp_mem_h window_memh = nullptr;  // every in-window: peer s's slots at s * 2 * slot_bytes
  std::byte* window_base = nullptr;
  int efd = -1;
  std::vector<Peer> peers;
  std::mutex mutex;  // UCX calls and the state below (the worker is serialized by it)
  std::atomic<uint64_t> bell{0};
  std::atomic<bool> broken{false};
  std::string reason;  // guarded by mutex
  char break_out[kReasonBytes] = {};
  uint64_t collective_sequence = 0;
  int collective_sends = 0;  // collective messages not yet sent out
  std::vector<std::pair<int, int>> repost_chunk, repost_ack;  // (peer, slot)
  std::vector<std::pair<int, int>> signal_after_put;          // (peer, slot)
  std::vector<int> to_answer;     // peers whose probe arrived: answered from progress()
  const uint64_t probe_word = 0;  // what probes and answers carry (only their tags matter)
  std::chrono::steady_clock::time_point next_liveness_check{};
  // The ranks of this machine: control words, and the direct ability (null until probed).
  std::unique_ptr<MachineWords> machine_words;
  Status machine_failure;  // why this rank cannot reach its machine peers (the probe votes no)
  std::unique_ptr<MachinePeers> machine;

  // --- requests ---------------------------------------------------------------------------
  static void on_recv(void* request, ucs_status_t status, const ucp_tag_recv_info_t* /*info*/,
                      void* user_data) {
    auto* c = static_cast<Completion*>(user_data);
    c->impl->complete(*c, status);
    delete c;
    ucp_request_free(request);
  }
  static void on_send(void* request, ucs_status_t status, void* user_data) {
    auto* c = static_cast<Completion*>(user_data);
    c->impl->complete(*c, status);
    delete c;
    ucp_request_free(request);
  }
  static void on_endpoint_error(void* arg, ucp_ep_h /*ep*/, ucs_status_t status) {
    auto* c = static_cast<Completion*>(arg);  // owned by the Impl (error_args)
    Peer& peer = c->impl->peers[static_cast<size_t>(c->peer)];
    if (peer.failed.empty()) {
      // UCX reports a peer process that died as "Endpoint timeout" or "Connection reset":
      // say what that means for the caller.
      peer.failed = "the connection to rank " + std::to_string(c->peer) + " on " +
                    Transport::machine_name(peer.machine) +
                    " was lost: its process exited or was killed, or the network to its machine "
                    "failed (UCX: " +
                    ucs_text(status) + ")";
    }
    c->impl->bell.fetch_add(1);
  }
  std::vector<std::unique_ptr<Completion>> error_args;

  void complete(const Completion& c, ucs_status_t status) {
    if (status == UCS_ERR_CANCELED) {
      return;
    }
    Peer* peer = c.peer >= 0 ? &peers[static_cast<size_t>(c.peer)] : nullptr;
    if (status != UCS_OK && peer != nullptr && peer->failed.empty()) {
      peer->failed =
          "a transfer with rank " + std::to_string(c.peer) + " failed (" + ucs_text(status) + ")";
    }
    switch (c.what) {
      case Completion::What::kChunkArrived:
        std::atomic_thread_fence(std::memory_order_acquire);  // the peer's direct stores
        peer->chunk_recv[c.slot] = nullptr;
        peer->delivered[c.slot] = true;
        peer->in_full[static_cast<size_t>(c.slot)].store(1, std::memory_order_release);
        break;
      case Completion::What::kAckArrived:
        peer->ack_recv[c.slot] = nullptr;
        peer->sent[c.slot] = false;
        peer->out_full[static_cast<size_t>(c.slot)].store(0, std::memory_order_release);
        repost_ack.emplace_back(c.peer, c.slot);
        break;
      case Completion::What::kBreakArrived:
        peer->break_recv = nullptr;
        if (status == UCS_OK) {
          peer->break_in[kReasonBytes - 1] = '\0';
          mark_broken(peer->break_in);
        }
        break;
      case Completion::What::kSent:
        break;
      case Completion::What::kCollectiveSent:
        --collective_sends;
        break;
      case Completion::What::kCollectiveArrived:
        *c.done = true;
        break;
      case Completion::What::kProbeArrived:
        peer->probe_recv = nullptr;
        if (status == UCS_OK) {
          to_answer.push_back(c.peer);
        }
        break;
      case Completion::What::kAnswerArrived:
        peer->answer_recv = nullptr;
        peer->answered = status == UCS_OK;
        break;
      case Completion::What::kPutFlushed:
        if (status == UCS_OK) {
          signal_after_put.emplace_back(c.peer, c.slot);  // sent from progress(), not here
        }
        break;
    }
    bell.fetch_add(1, std::memory_order_acq_rel);
  }

  ucp_request_param_t recv_param(Completion::What what, int peer, int slot, bool* done) {
    ucp_request_param_t param{};
    param.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    param.cb.recv = on_recv;
    param.user_data = new Completion{this, what, peer, slot, done};
    return param;
  }

  // Posts a tagged receive; false (and the peer marked failed) when UCX refuses it.
  void* post_recv(void* buffer, size_t bytes, ucp_tag_t tag, Completion::What what, int peer,
                  int slot) {
    ucp_request_param_t param = recv_param(what, peer, slot, nullptr);
    ucs_status_ptr_t request = ucp_tag_recv_nbx(worker, buffer, bytes, tag, kFullMask, &param);
    if (UCS_PTR_IS_ERR(request)) {
      delete static_cast<Completion*>(param.user_data);
      peers[static_cast<size_t>(peer)].failed = "cannot receive from rank " + std::to_string(peer) +
                                                " (" + ucs_text(UCS_PTR_STATUS(request)) + ")";
      return nullptr;
    }
    return request;
  }

  void send(int peer, const void* buffer, size_t bytes, ucp_tag_t tag,
            Completion::What what = Completion::What::kSent) {
    Peer& p = peers[static_cast<size_t>(peer)];
    ucp_request_param_t param{};
    param.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    param.cb.send = on_send;
    param.user_data = new Completion{this, what, peer, 0, nullptr};
    ucs_status_ptr_t request = ucp_tag_send_nbx(p.ep, buffer, bytes, tag, &param);
    if (UCS_PTR_IS_ERR(request)) {
      delete static_cast<Completion*>(param.user_data);
      if (p.failed.empty()) {
        p.failed = "cannot send to rank " + std::to_string(peer) + " (" +
                   ucs_text(UCS_PTR_STATUS(request)) + ")";
      }
      return;
    }
    if (what == Completion::What::kCollectiveSent) {
      ++collective_sends;
    }
  }

  // RDMA put of out-slot `slot` into the peer's in-slot, then a flush of the endpoint whose
  // completion (remote: the bytes are in the peer's memory) sends the 8-byte signal.
  void put_chunk(int peer, int slot) {
    Peer& p = peers[static_cast<size_t>(peer)];
    const size_t bytes = p.ready_out[slot];
    if (bytes > 0) {
      ucp_request_param_t param{};
      param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
      param.cb.send = on_send;
      param.user_data = new Completion{this, Completion::What::kSent, peer, slot, nullptr};
      ucs_status_ptr_t request =
          ucp_put_nbx(p.ep, p.out_memory.get() + static_cast<size_t>(slot) * slot_bytes, bytes,
                      p.remote_slots + static_cast<uint64_t>(slot) * slot_bytes, p.rkey, &param);
      if (!UCS_PTR_IS_PTR(request)) {  // done at once, or failed: no callback comes
        delete static_cast<Completion*>(param.user_data);
      }
      if (UCS_PTR_IS_ERR(request)) {
        if (p.failed.empty()) {
          p.failed = "cannot put to rank " + std::to_string(peer) + " (" +
                     ucs_text(UCS_PTR_STATUS(request)) + ")";
        }
        return;
      }
    }
    ucp_request_param_t param{};
    param.op_attr_mask =
        UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
    param.cb.send = on_send;
    param.user_data = new Completion{this, Completion::What::kPutFlushed, peer, slot, nullptr};
    ucs_status_ptr_t request = ucp_ep_flush_nbx(p.ep, &param);
    if (UCS_PTR_IS_ERR(request)) {
      delete static_cast<Completion*>(param.user_data);
      if (p.failed.empty()) {
        p.failed = "cannot flush puts to rank " + std::to_string(peer) + " (" +
                   ucs_text(UCS_PTR_STATUS(request)) + ")";
      }
    }
  }

  void post_chunk_recv(int peer, int slot) {
    Peer& p = peers[static_cast<size_t>(peer)];
    // A peer that maps this rank's slots already wrote the chunk: only its signal comes.
    void* buffer = p.peer_maps_me ? static_cast<void*>(&p.ready_in[slot])
                                  : p.in_memory + static_cast<size_t>(slot) * slot_bytes;
    p.chunk_recv[slot] = post_recv(buffer, p.peer_maps_me ? sizeof(uint64_t) : slot_bytes,
                                   make_tag(Kind::kChunk, peer, static_cast<uint64_t>(slot)),
                                   Completion::What::kChunkArrived, peer, slot);
  }
  void post_ack_recv(int peer, int slot) {
    Peer& p = peers[static_cast<size_t>(peer)];
    p.ack_recv[slot] = post_recv(&p.ack_in[slot], sizeof(uint64_t),
                                 make_tag(Kind::kAck, peer, static_cast<uint64_t>(slot)),
                                 Completion::What::kAckArrived, peer, slot);
  }

  // Drives UCX and re-posts what completions freed. Caller holds `mutex`.
  void progress() {
    for (int spins = 0; spins < 64 && ucp_worker_progress(worker) != 0; ++spins) {
    }
    for (const auto& [peer, slot] : repost_ack) {
      post_ack_recv(peer, slot);
    }
    repost_ack.clear();
    for (const auto& [peer, slot] : signal_after_put) {
      send(peer, &peers[static_cast<size_t>(peer)].ready_out[slot], sizeof(uint64_t),
           make_tag(Kind::kChunk, rank, static_cast<uint64_t>(slot)));
    }
    signal_after_put.clear();
    for (const int peer : to_answer) {
      post_probe_recv(peer);
      send(peer, &probe_word, sizeof(probe_word), make_tag(Kind::kAnswer, rank, 0));
    }
    to_answer.clear();
  }

  // Probes: every rank answers a peer's probe from progress(), that is whenever it is inside
  // fusco (moving rows or waiting). One that is stopped, hung, cut off, or busy outside fusco
  // (it has not come to the call) does not.
  void post_probe_recv(int peer) {
    Peer& p = peers[static_cast<size_t>(peer)];
    p.probe_recv = post_recv(&p.probe_in, sizeof(uint64_t), make_tag(Kind::kProbe, peer, 0),
                             Completion::What::kProbeArrived, peer, 0);
  }

  // The peers that do not answer a probe within kSilenceGrace (lock released while waiting).
  std::vector<int> silent_peers(std::unique_lock<std::mutex>& lock) {
    std::vector<int> asked;
    for (int r = 0; r < world; ++r) {
      Peer& p = peers[static_cast<size_t>(r)];
      if (r == rank || !p.failed.empty()) continue;
      p.answered = false;
      if (p.answer_recv == nullptr) {
        p.answer_recv = post_recv(&p.answer_in, sizeof(uint64_t), make_tag(Kind::kAnswer, r, 0),
                                  Completion::What::kAnswerArrived, r, 0);
      }
      send(r, &probe_word, sizeof(probe_word), make_tag(Kind::kProbe, rank, 0));
      asked.push_back(r);
    }
    const Deadline grace = Deadline::after_ms(kSilenceGrace.count());
    auto silent = [&] {
      std::vector<int> out;
      for (const int r : asked) {
        if (!peers[static_cast<size_t>(r)].answered) out.push_back(r);
      }
      return out;
    };
    while (std::chrono::steady_clock::now() < grace.at && !silent().empty()) {
      progress();
      sleep(lock, grace);
    }
    progress();
    return silent();
  }

  // Sends newly put chunks to `peer` and acknowledges consumed ones. Caller holds `mutex`.
  void flush(int peer) {
    Peer& p = peers[static_cast<size_t>(peer)];
    for (int slot = 0; slot < 2; ++slot) {
      if (!p.sent[slot] && p.out_full[static_cast<size_t>(slot)].load(std::memory_order_acquire)) {
        p.sent[slot] = true;
        const ucp_tag_t tag = make_tag(Kind::kChunk, rank, static_cast<uint64_t>(slot));
        if (p.mapped != nullptr) {
          // The engine gathered straight into the peer's slot: make those stores visible
          // before the signal that hands the slot over.
          std::atomic_thread_fence(std::memory_order_release);
          p.ready_out[slot] = p.out->filled(slot);
          send(peer, &p.ready_out[slot], sizeof(uint64_t), tag);
        } else if (p.put) {
          p.ready_out[slot] = p.out->filled(slot);
          put_chunk(peer, slot);  // the signal follows once the put reached the peer
        } else {
          send(peer, p.out_memory.get() + static_cast<size_t>(slot) * slot_bytes,
               p.out->filled(slot), tag);
        }
      }
      if (p.delivered[slot] &&
          p.in_full[static_cast<size_t>(slot)].load(std::memory_order_acquire) == 0) {
        p.delivered[slot] = false;
        post_chunk_recv(peer, slot);  // before the ack, so the next chunk lands in place
        send(peer, &p.ack_out[slot], sizeof(uint64_t),
             make_tag(Kind::kAck, rank, static_cast<uint64_t>(slot)));
      }
    }
  }

  void mark_broken(const std::string& why) {
    if (!broken.exchange(true)) {
      reason = why;
    }
    bell.fetch_add(1);
  }

  // The first failed or exited peer among `ranks` (all when empty), described; "" if none.
  std::string failed_peer(const std::vector<int>& ranks) {
    auto check = [&](int r) -> std::string {
      if (r == rank) {
        return "";
      }
      Peer& p = peers[static_cast<size_t>(r)];
      if (!p.failed.empty()) {
        return p.failed;
      }
      if (p.same_machine && process_exited(p.pid)) {
        // Sticky: later checks (throttled) still see it.
        p.failed = "rank " + std::to_string(r) + " (process " + std::to_string(p.pid) + ") exited";
        return p.failed;
      }
      return "";
    };
    const auto now = std::chrono::steady_clock::now();
    const bool poll_pids = now >= next_liveness_check;
    if (poll_pids) {
      next_liveness_check = now + kLivenessPeriod;
    }
    for (int r = 0; r < world; ++r) {
      if (!ranks.empty() && std::find(ranks.begin(), ranks.end(), r) == ranks.end()) {
        continue;
      }
      Peer& p = peers[static_cast<size_t>(r)];
      if (r != rank && (!p.failed.empty() || poll_pids)) {
        std::string gone = check(r);
        if (!gone.empty()) {
          return gone;
        }
      }
    }
    return "";
  }

  // Waits (lock released) for UCX events or a slice of the deadline. Caller holds `lock`.
  void sleep(std::unique_lock<std::mutex>& lock, const Deadline& deadline) {
    if (ucp_worker_arm(worker) == UCS_ERR_BUSY) {
      return;  // events pending: progress again
    }
    lock.unlock();
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline.at - std::chrono::steady_clock::now());
    pollfd fd{efd, POLLIN, 0};
    poll(&fd, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 0, kSlice.count())));
    lock.lock();
  }

  Status health_locked() const {
    if (!broken.load()) {
      return Status();
    }
    return Status(StatusCode::kAborted, "the group is unusable after an earlier failure (" +
                                            reason + "); recreate the communicators");
  }

  // Breaks the group and tells every peer (best effort). Caller holds `mutex`.
  void break_group(const std::string& why) {
    const bool first = !broken.load();
    mark_broken(why);
    if (!first) {
      return;
    }
    // Machine peers storing into this rank's memory see the break before their next row; the
    // message with the reason follows.
    if (machine != nullptr && machine->direct()) machine->tell_broken();
    why.copy(break_out, kReasonBytes - 1);
    for (int r = 0; r < world; ++r) {
      if (r != rank && peers[static_cast<size_t>(r)].failed.empty()) {
        send(r, break_out, kReasonBytes, make_tag(Kind::kBreak, rank, 0));
      }
    }
    progress();
  }

  // A failed wait: a failed peer's error if there is one, else the timeout.
  Status wait_failed(std::unique_lock<std::mutex>& lock, const std::vector<int>& waited_for,
                     const std::string& timed_out) {
    // A survivor that failed first told every peer before it exited, and its message may be
    // in by now: the first failure, which names the cause, stands (not "rank s exited").
    progress();
    FUSCO_RETURN_IF_ERROR(health_locked());
    std::string gone = failed_peer(waited_for);
    if (gone.empty()) {
      gone = failed_peer({});
    }
    if (!gone.empty()) {
      const std::string why = gone + " while rank " + std::to_string(rank) + " was " + timed_out +
                              "; the group must be recreated";
      break_group(why);
      return Status(StatusCode::kAborted, why);
    }
    // Which ranks are stuck, and which are only waiting like this one: a rank waiting for a
    // relay that waits for a stopped rank names the stopped rank, not the relay.
    const std::vector<int> silent = silent_peers(lock);
    FUSCO_RETURN_IF_ERROR(health_locked());  // a peer that failed first named the cause
    const std::string why =
        "rank " + std::to_string(rank) + " timed out " + timed_out + silence_text(silent);
    break_group(why);
    return Status(StatusCode::kTimeout, why);
  }

  ~Impl() {
    if (worker != nullptr) {
      std::lock_guard<std::mutex> lock(mutex);
      for (Peer& p : peers) {
        for (void* request : {p.chunk_recv[0], p.chunk_recv[1], p.ack_recv[0], p.ack_recv[1],
                              p.break_recv, p.probe_recv, p.answer_recv}) {
          if (request != nullptr) {
            ucp_request_cancel(worker, request);
          }
        }
      }
      for (int i = 0; i < 1000; ++i) {
        ucp_worker_progress(worker);
      }
      for (Peer& p : peers) {
        if (p.rkey != nullptr) {
          ucp_rkey_destroy(p.rkey);
        }
        if (p.ep != nullptr) {
          ucp_request_param_t param{};
          param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
          param.flags = UCP_EP_CLOSE_FLAG_FORCE;
          ucs_status_ptr_t closing = ucp_ep_close_nbx(p.ep, &param);
          for (int i = 0; i < 1000 && UCS_PTR_IS_PTR(closing) &&
                          ucp_request_check_status(closing) == UCS_INPROGRESS;
               ++i) {
            ucp_worker_progress(worker);
          }
          if (UCS_PTR_IS_PTR(closing)) {
            ucp_request_free(closing);
          }
        }
      }
      ucp_worker_destroy(worker);
    }
    if (window_memh != nullptr) {
      ucp_mem_unmap(context, window_memh);
    }
    if (context != nullptr) {
      ucp_cleanup(context);
    }
  }
};

bool UcxTransport::available() { return true; }

UcxTransport::UcxTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
UcxTransport::~UcxTransport() = default;

namespace {

// Everything before the address exchange: the UCX context, worker and staging windows, and
// this rank's record (pid, slot bytes, machine id, worker address, window base, window rkey).
Result<std::string> local_record(UcxTransport::Impl& impl, int world_size, size_t slot_bytes,
                                 const std::string& machine) {
  if (world_size > kMaxRanks) {
    return Status(StatusCode::kInvalidArgument, "world size " + std::to_string(world_size) +
                                                    " exceeds the UCX transport's " +
                                                    std::to_string(kMaxRanks));
  }
  ucp_config_t* config = nullptr;
  ucs_status_t status = ucp_config_read(nullptr, nullptr, &config);
  if (status != UCS_OK) {
    return ucx_error(status, "cannot read UCX's configuration");
  }
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_RMA | UCP_FEATURE_WAKEUP;
  status = ucp_init(&params, config, &impl.context);
  ucp_config_release(config);
  if (status != UCS_OK) {
    return ucx_error(status, "cannot start UCX (ucp_init)");
  }
  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SERIALIZED;
  status = ucp_worker_create(impl.context, &worker_params, &impl.worker);
  if (status == UCS_OK) {
    status = ucp_worker_get_efd(impl.worker, &impl.efd);
  }
  if (status != UCS_OK) {
    return ucx_error(status, "cannot make a UCX worker");
  }
  // Every in-window in one region that UCX allocates, so that shared-memory transports can
  // map it into the peers (ucp_rkey_ptr) and they gather straight into it.
  ucp_mem_map_params_t map_params{};
  map_params.field_mask = UCP_MEM_MAP_PARAM_FIELD_LENGTH | UCP_MEM_MAP_PARAM_FIELD_FLAGS;
  map_params.length = std::max<size_t>(1, static_cast<size_t>(world_size) * 2 * slot_bytes);
  map_params.flags = UCP_MEM_MAP_ALLOCATE;
  status = ucp_mem_map(impl.context, &map_params, &impl.window_memh);
  ucp_mem_attr_t attr{};
  attr.field_mask = UCP_MEM_ATTR_FIELD_ADDRESS;
  if (status == UCS_OK) {
    status = ucp_mem_query(impl.window_memh, &attr);
  }
  void* rkey_buffer = nullptr;
  size_t rkey_bytes = 0;
  if (status == UCS_OK) {
    impl.window_base = static_cast<std::byte*>(attr.address);
    status = ucp_rkey_pack(impl.context, impl.window_memh, &rkey_buffer, &rkey_bytes);
  }
  if (status != UCS_OK) {
    return Status(StatusCode::kOutOfMemory,
                  "cannot register " + std::to_string(map_params.length) +
                      " bytes of staging windows with UCX: " + ucs_text(status) +
                      " (FUSCO_SHM_SLOT_BYTES sets the slot size)");
  }
  ucp_address_t* address = nullptr;
  size_t address_bytes = 0;
  status = ucp_worker_get_address(impl.worker, &address, &address_bytes);
  if (status != UCS_OK) {
    ucp_rkey_buffer_release(rkey_buffer);
    return ucx_error(status, "cannot read the UCX worker's address");
  }
  // The control words the ranks of this machine map (a failure only turns the direct
  // ability off, unless FUSCO_SHM_DIRECT=1 requires it).
  impl.machine_words = std::make_unique<MachineWords>(world_size);
  impl.machine_failure = impl.machine_words->create(impl.rank);
  const PeerFile words = impl.machine_words->own_file();
  // Record: pid, slot bytes, machine id, worker address, window base address, window rkey,
  // control words (fd, device, inode, bytes).
  RecordWriter writer;
  writer.put(static_cast<int32_t>(getpid()));
  writer.put(static_cast<uint64_t>(slot_bytes));
  writer.put_bytes(machine.data(), machine.size());
  writer.put_bytes(address, address_bytes);
  writer.put(reinterpret_cast<uint64_t>(impl.window_base));
  writer.put_bytes(rkey_buffer, rkey_bytes);
  writer.put(words.fd);
  writer.put(words.device);
  writer.put(words.inode);
  writer.put(words.bytes);
  ucp_worker_release_address(impl.worker, address);
  ucp_rkey_buffer_release(rkey_buffer);
  return writer.take();
}

}  // namespace

Status UcxTransport::refuse(const Allgather& bootstrap, const Status& why) {
  (void)bootstrap(refusal_record(why));
  return why;
}

Result<std::unique_ptr<UcxTransport>> UcxTransport::open(int rank, int world_size,
                                                         const Settings& settings,
                                                         const Allgather& bootstrap,
                                                         const Deadline& deadline) {
  const size_t slot_bytes = settings.slot_bytes;
  const Protocol protocol = settings.protocol;
  auto impl = std::make_unique<Impl>();
  impl->rank = rank;
  impl->world = world_size;
  impl->slot_bytes = slot_bytes;
  const std::string machine = machine_id();
  Result<std::string> mine = local_record(*impl, world_size, slot_bytes, machine);
  // Every rank reaches the exchange: one that failed here sends its reason instead of its
  // record, so the others fail at once naming it (an MPI allgather could wait forever).
  Result<std::vector<std::string>> all =
      bootstrap(mine.ok() ? mine.value() : refusal_record(mine.status()));
  FUSCO_RETURN_IF_ERROR(mine.status());
  FUSCO_RETURN_IF_ERROR(all.status());
  if (all.value().size() != static_cast<size_t>(world_size)) {
    return Status(StatusCode::kMismatch,
                  "the bootstrap returned " + std::to_string(all.value().size()) +
                      " records for a world of " + std::to_string(world_size));
  }
  FUSCO_RETURN_IF_ERROR(check_refusals(all.value()));
  FUSCO_RETURN_IF_ERROR(check_slot_sizes(all.value(), rank, slot_bytes));
  uint64_t id = 1469598103934665603ULL;  // FNV-1a over every record: the same on all ranks
  impl->peers.resize(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    const std::string& record = all.value()[static_cast<size_t>(r)];
    for (const char c : record) {
      id = (id ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    Impl::Peer& peer = impl->peers[static_cast<size_t>(r)];
    RecordReader reader(record);
    std::string their_machine;
    std::string their_address;
    std::string their_rkey;
    uint64_t their_base = 0;
    uint64_t their_slot_bytes = 0;
    PeerFile their_words;
    if (!reader.get(&peer.pid) || !reader.get(&their_slot_bytes) ||
        !reader.get_bytes(&their_machine) || !reader.get_bytes(&their_address) ||
        !reader.get(&their_base) || !reader.get_bytes(&their_rkey) ||
        !reader.get(&their_words.fd) || !reader.get(&their_words.device) ||
        !reader.get(&their_words.inode) || !reader.get(&their_words.bytes)) {
      return Status(StatusCode::kInternal,
                    "bootstrap record of rank " + std::to_string(r) + " is truncated");
    }
    peer.same_machine = their_machine == machine;
    their_words.pid = peer.pid;
    if (r != rank && peer.same_machine && impl->machine_failure.ok()) {
      impl->machine_failure = impl->machine_words->map_peer(r, their_words);
    }
    peer.machine = their_machine;
    peer.in_memory = impl->window_base + static_cast<size_t>(r) * 2 * slot_bytes;
    peer.out_full = std::make_unique<std::atomic<uint32_t>[]>(2);
    peer.in_full = std::make_unique<std::atomic<uint32_t>[]>(2);
    for (size_t s = 0; s < 2; ++s) {
      peer.out_full[s].store(0);
      peer.in_full[s].store(0);
    }
    peer.in = std::make_unique<StagingWindow>(peer.in_memory, slot_bytes, peer.in_full.get());
    if (r == rank) {
      peer.out_memory = std::make_unique<std::byte[]>(2 * slot_bytes);
      peer.out =
          std::make_unique<StagingWindow>(peer.out_memory.get(), slot_bytes, peer.out_full.get());
      continue;
    }
    impl->error_args.push_back(std::make_unique<Completion>(
        Completion{impl.get(), Completion::What::kSent, r, 0, nullptr}));
    ucp_ep_params_t ep_params{};
    ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                           UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep_params.address = reinterpret_cast<const ucp_address_t*>(their_address.data());
    // UCX's peer error mode for peers on other machines. UCX 1.13's shared-memory transports
    // do not offer it; a peer on this machine is watched by its pid instead.
    ep_params.err_mode =
        peer.same_machine ? UCP_ERR_HANDLING_MODE_NONE : UCP_ERR_HANDLING_MODE_PEER;
    ep_params.err_handler.cb = Impl::on_endpoint_error;
    ep_params.err_handler.arg = impl->error_args.back().get();
    const ucs_status_t status = ucp_ep_create(impl->worker, &ep_params, &peer.ep);
    if (status != UCS_OK) {
      return ucx_error(status, "rank " + std::to_string(rank) + " cannot connect to rank " +
                                   std::to_string(r) + " on " +
                                   Transport::machine_name(their_machine));
    }
    // Map the peer's slots for this rank when the transport allows it (shared memory);
    // otherwise chunks travel as messages from local slots.
    // With Protocol::kPut, slots that cannot be mapped take RDMA puts instead.
    void* mapped = nullptr;
    peer.remote_slots = their_base + static_cast<uint64_t>(rank) * 2 * slot_bytes;
    const bool unpacked = ucp_ep_rkey_unpack(peer.ep, their_rkey.data(), &peer.rkey) == UCS_OK;
    if (unpacked && protocol != Protocol::kMessage &&
        ucp_rkey_ptr(peer.rkey, peer.remote_slots, &mapped) == UCS_OK) {
      peer.mapped = static_cast<std::byte*>(mapped);
    } else {
      peer.out_memory = std::make_unique<std::byte[]>(2 * slot_bytes);
      peer.put = unpacked && protocol == Protocol::kPut;
    }
    peer.out = std::make_unique<StagingWindow>(
        peer.mapped != nullptr ? peer.mapped : peer.out_memory.get(), slot_bytes,
        peer.out_full.get());
  }
  impl->group_id = id | (uint64_t{1} << 62);
  auto transport = std::unique_ptr<UcxTransport>(new UcxTransport(std::move(impl)));
  Impl& m = *transport->impl_;
  // Tell every peer whether this rank writes into its slots directly (mapped or by put).
  std::vector<Bytes> maps(static_cast<size_t>(world_size), Bytes(1));
  for (int r = 0; r < world_size; ++r) {
    maps[static_cast<size_t>(r)][0] = std::byte{m.peers[static_cast<size_t>(r)].mapped != nullptr ||
                                                        m.peers[static_cast<size_t>(r)].put
                                                    ? uint8_t{1}
                                                    : uint8_t{0}};
  }
  FUSCO_RETURN_IF_ERROR(transport->alltoallv_consume(
      maps,
      [&m](int source, const Bytes& theirs) {
        m.peers[static_cast<size_t>(source)].peer_maps_me =
            theirs.size() == 1 && theirs[0] == std::byte{1};
        return Status();
      },
      deadline, "UCX group creation (windows)"));
  {
    std::lock_guard<std::mutex> lock(m.mutex);
    for (int r = 0; r < world_size; ++r) {
      if (r == rank) {
        continue;
      }
      Impl::Peer& peer = m.peers[static_cast<size_t>(r)];
      for (int slot = 0; slot < 2; ++slot) {
        m.post_chunk_recv(r, slot);
        m.post_ack_recv(r, slot);
      }
      peer.break_recv = m.post_recv(peer.break_in, kReasonBytes, make_tag(Kind::kBreak, r, 0),
                                    Completion::What::kBreakArrived, r, 0);
      m.post_probe_recv(r);
    }
  }
  // Everyone connected and posted before the first call.
  FUSCO_RETURN_IF_ERROR(transport->barrier(deadline, "UCX group creation"));
  // A relay reads the combine weights of the sources it serves in place; across machines
  // they would have to travel with the call, which the direct path does not do yet.
  m.machine = std::make_unique<MachinePeers>(m.machine_words->all(), rank);
  FUSCO_RETURN_IF_ERROR(m.machine->probe(*transport, settings.direct, m.machine_failure, deadline,
                                         transport->crosses_machines()));
  return transport;
}

int UcxTransport::rank() const { return impl_->rank; }
int UcxTransport::world_size() const { return impl_->world; }
uint64_t UcxTransport::group_id() const { return impl_->group_id; }
size_t UcxTransport::max_chunk_bytes() const { return impl_->slot_bytes; }
bool UcxTransport::crosses_machines() const {
  for (int r = 0; r < impl_->world; ++r) {
    if (r != impl_->rank && !impl_->peers[static_cast<size_t>(r)].same_machine) return true;
  }
  return false;
}
std::vector<std::string> UcxTransport::machines() const {
  std::vector<std::string> out;
  for (const Impl::Peer& peer : impl_->peers) out.push_back(peer.machine);
  return out;
}
bool UcxTransport::broken() const {
  return impl_->broken.load(std::memory_order_seq_cst) ||
         (impl_->machine != nullptr && impl_->machine->direct() &&
          impl_->machine->told_broken() >= 0);
}

Status UcxTransport::health() const {
  std::unique_lock<std::mutex> lock(impl_->mutex);
  Impl& m = *impl_;
  const int teller = m.machine != nullptr && m.machine->direct() ? m.machine->told_broken() : -1;
  if (teller >= 0 && !m.broken.load()) {
    // A machine peer broke the group; its reason travels as a message: wait for it (bounded).
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(200);
    while (!m.broken.load() && std::chrono::steady_clock::now() < until) {
      m.progress();
      lock.unlock();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      lock.lock();
    }
    if (!m.broken.load()) {
      m.mark_broken("rank " + std::to_string(teller) +
                    " broke the group (its reason had not arrived 200 ms later)");
    }
  }
  return m.health_locked();
}

Status UcxTransport::sync(const void* /*mine*/, std::vector<const void*>* /*all*/,
                          const Deadline& /*deadline*/, const char* what) {
  return Status(StatusCode::kUnsupported, std::string(what) +
                                              " needs ranks that reach each other's memory; "
                                              "the UCX transport connects processes");
}

StagingWindow& UcxTransport::window(int from, int to) {
  return from == impl_->rank ? *impl_->peers[static_cast<size_t>(to)].out
                             : *impl_->peers[static_cast<size_t>(from)].in;
}

uint64_t UcxTransport::doorbell() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->progress();
  return impl_->bell.load(std::memory_order_acquire);
}

void UcxTransport::ring(int peer) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->flush(peer);
  impl_->progress();
}

Status UcxTransport::wait_doorbell(uint64_t seen, const Deadline& deadline,
                                   const std::function<std::string()>& waiting_for) {
  Impl& m = *impl_;
  std::unique_lock<std::mutex> lock(m.mutex);
  while (true) {
    m.progress();
    if (m.bell.load(std::memory_order_acquire) != seen) {
      return Status();
    }
    FUSCO_RETURN_IF_ERROR(m.health_locked());
    const std::string gone = m.failed_peer({});
    if (!gone.empty() || std::chrono::steady_clock::now() >= deadline.at) {
      const std::string what =
          !gone.empty() ? waiting_for()
                        : "after " + std::to_string(deadline.timeout_ms) + " ms " + waiting_for();
      return m.wait_failed(lock, {}, what);
    }
    m.sleep(lock, deadline);
  }
}

Status UcxTransport::alltoallv_consume(const std::vector<Bytes>& send, const ConsumeFn& consume,
                                       const Deadline& deadline, const char* what) {
  Impl& m = *impl_;
  const auto world = static_cast<size_t>(m.world);
  std::vector<Bytes> received(world);
  {
    std::unique_lock<std::mutex> lock(m.mutex);
    FUSCO_RETURN_IF_ERROR(m.health_locked());
    const uint64_t sequence = ++m.collective_sequence;
    for (int d = 0; d < m.world; ++d) {
      // A reference into `send` (never a copy): UCX reads it until the send completes.
      const Bytes& bytes =
          static_cast<size_t>(d) < send.size() ? send[static_cast<size_t>(d)] : kNothing;
      if (d == m.rank) {
        received[static_cast<size_t>(d)] = bytes;
      } else {
        m.send(d, bytes.data(), bytes.size(), make_tag(Kind::kCollective, m.rank, sequence),
               Completion::What::kCollectiveSent);
      }
    }
    // Receives: probe for each source's message of this sequence, then receive it in full.
    std::vector<char> probed(world, 0);
    std::unique_ptr<bool[]> arrived(new bool[world]());
    probed[static_cast<size_t>(m.rank)] = 1;
    arrived[static_cast<size_t>(m.rank)] = true;
    while (true) {
      m.progress();
      bool all_in = true;
      std::vector<int> missing;
      for (int s = 0; s < m.world; ++s) {
        const auto ss = static_cast<size_t>(s);
        if (probed[ss] == 0) {
          ucp_tag_recv_info_t info{};
          ucp_tag_message_h message = ucp_tag_probe_nb(
              m.worker, make_tag(Kind::kCollective, s, sequence), kFullMask, 1, &info);
          if (message != nullptr) {
            probed[ss] = 1;
            received[ss].resize(info.length);
            ucp_request_param_t param =
                m.recv_param(Completion::What::kCollectiveArrived, s, 0, &arrived[ss]);
            ucs_status_ptr_t request =
                ucp_tag_msg_recv_nbx(m.worker, received[ss].data(), info.length, message, &param);
            if (UCS_PTR_IS_ERR(request)) {
              delete static_cast<Completion*>(param.user_data);
              return m.wait_failed(
                  lock, {s}, std::string("receiving ") + what + " from rank " + std::to_string(s));
            }
          }
        }
        if (!arrived[ss]) {
          all_in = false;
          missing.push_back(s);
        }
      }
      // This rank's sends must be out too before its buffers may go.
      if (all_in && m.collective_sends == 0) {
        break;
      }
      FUSCO_RETURN_IF_ERROR(m.health_locked());
      const std::string gone = m.failed_peer(missing);
      if (!gone.empty() || std::chrono::steady_clock::now() >= deadline.at) {
        std::string names;
        for (const int s : missing) {
          names += (names.empty() ? "" : ", ") + std::to_string(s);
        }
        const std::string waited =
            std::string("in ") + what + " waiting for rank(s) " +
            (names.empty() ? std::string("to take its messages") : names + " to arrive");
        return m.wait_failed(lock, missing,
                             gone.empty()
                                 ? "after " + std::to_string(deadline.timeout_ms) + " ms " + waited
                                 : waited);
      }
      m.sleep(lock, deadline);
    }
  }
  for (size_t s = 0; s < world; ++s) {
    FUSCO_RETURN_IF_ERROR(consume(static_cast<int>(s), received[s]));
  }
  return Status();
}

Status UcxTransport::allgather(const void* mine, size_t bytes, std::byte* out,
                               const Deadline& deadline, const char* what) {
  return allgather_by_messages(*this, mine, bytes, out, deadline, what);
}

Status UcxTransport::barrier(const Deadline& deadline, const char* what) {
  // With the direct ability, a barrier orders this rank's stores into peers' regions before
  // the peers' loads after it.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  Status done = alltoallv_consume(
      std::vector<Bytes>(static_cast<size_t>(world_size())),
      [](int, const Bytes&) { return Status(); }, deadline, what);
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return done;
}

bool UcxTransport::direct_access() const { return impl_->machine->direct(); }
bool UcxTransport::reaches(const void* data, size_t bytes) const {
  return impl_->machine->reaches(data, bytes);
}
Result<std::byte*> UcxTransport::shared_region(SharedRegion region, size_t bytes) {
  return impl_->machine->shared_region(region, bytes);
}
Status UcxTransport::reach_peers() { return impl_->machine->reach(*this); }
void* UcxTransport::peer_address(int rank, const void* published) const {
  return impl_->machine->peer_address(rank, published);
}
void UcxTransport::set_touching_peers(bool touching) {
  if (impl_->machine->direct()) impl_->machine->set_touching(touching);
}
std::string UcxTransport::wait_peers_quiet(std::chrono::milliseconds grace) {
  return impl_->machine->direct() ? impl_->machine->wait_quiet(grace) : "";
}

void UcxTransport::abort(const std::string& reason) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->break_group(reason);
}

}  // namespace fusco::transport
