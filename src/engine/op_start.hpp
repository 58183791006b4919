#pragma once

// The start of every dispatch and combine: ranks publish what they are about to do and check,
// all of them on the same data, that they agree. Any disagreement or rejected argument makes
// every rank return an error before a byte moves, and leaves the group usable.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "transport/agreement.hpp"
#include "transport/transport.hpp"

namespace fusco::engine {

enum class OpKind : int32_t { kDispatch = 1, kCombine = 2 };

/// Most rounds one combine may take (PlanOptions::combine_buffer_bytes).
inline constexpr int kMaxCombineRounds = 64;

/// A rank's part of a dispatch or combine, gathered by every rank at the call's start (the
/// payload of transport::agree; the shape fields are also agreed).
struct OpHeader {
  int32_t kind = 0;  // OpKind
  uint64_t group_id = 0;
  uint64_t plan_sequence = 0;
  int64_t hidden = 0;
  int32_t dtype = 0;
  const std::byte* src = nullptr;  // x (dispatch) or expert_out (combine)
  int64_t src_pitch = 0;           // bytes between src rows
  std::byte* dst = nullptr;        // recv (dispatch)
  int64_t extra_hidden = -1;       // dispatch's companion tensor: columns (-1: none)
  int32_t extra_dtype = 0;
  std::byte* extra_dst = nullptr;             // extra_recv (dispatch)
  const void* weights = nullptr;              // topk_weights (combine)
  int32_t rounds = 1;                         // combine: this rank's rounds, over its tokens
  int32_t round_end[kMaxCombineRounds] = {};  // combine: the token each round ends before
};

static_assert(std::is_trivially_copyable_v<OpHeader> &&
              sizeof(OpHeader) <= transport::kMaxAgreementPayload);

/// Marks this rank as touching peers' memory while it lives. When the call fails, fail()
/// stops touching and waits (bounded) until the other ranks stopped too, so the caller's
/// buffers are no longer written once the error is returned.
class PeerAccess {
 public:
  PeerAccess(transport::Transport& transport, int64_t timeout_ms);
  ~PeerAccess() { transport_.set_touching_peers(false); }
  PeerAccess(const PeerAccess&) = delete;
  PeerAccess& operator=(const PeerAccess&) = delete;

  /// This rank is done with peers' memory.
  void done() { transport_.set_touching_peers(false); }
  /// Returns `failure`, after the other ranks stopped touching memory (or a grace period).
  Status fail(const Status& failure);

 private:
  transport::Transport& transport_;
  std::chrono::milliseconds grace_;
};

/// Gathers every rank's header and agrees on the call (transport::agree: the same
/// collective, every rank's arguments accepted, the same plan, shape and dtype). On success
/// `all` holds every rank's header with the peers' addresses as this rank reaches them
/// (Transport::peer_address: null without the direct ability).
Status start_op(transport::Transport& transport, OpHeader& mine, const Status& local,
                std::vector<OpHeader>* all, const transport::Deadline& deadline, const char* what);

/// The address and row pitch at which peers read the rows of `view` (a matrix) during this
/// call: the view itself when they reach it there, else a packed copy in this rank's shared
/// `region` (Transport::reaches), made now.
Status publish_rows(transport::Transport& transport, transport::SharedRegion region,
                    const TensorView& view, const std::byte** at, int64_t* pitch);

}  // namespace fusco::engine
