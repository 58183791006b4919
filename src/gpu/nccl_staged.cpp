#include "gpu/nccl_staged.hpp"

#include <string>

#include "gpu/nccl_send_recv.hpp"

namespace fusco::gpu {

namespace {

// Buffer `which` of this rank, holding its streams' rows of `row_bytes`.
Result<char*> buffer(const NcclStagedRank& me, StagedBuffer which, int64_t row_bytes) {
  return me.scratch.holding(me.rank, me.staged.streams, which, row_bytes);
}

// Gathers this rank's staged rows of x into `send` and exchanges every stream's block;
// returns the arrival buffer.
Result<char*> gather_and_exchange(const NcclStagedRank& me, const void* x, int64_t pitch,
                                  int64_t row_bytes, StagedBuffer send, StagedBuffer arrive,
                                  const char* what) {
  const detail::StagedStreams& streams = me.staged.streams;
  Result<char*> sent = buffer(me, send, row_bytes);
  Result<char*> arrived = buffer(me, arrive, row_bytes);
  FUSCO_RETURN_IF_ERROR(sent.status());
  FUSCO_RETURN_IF_ERROR(arrived.status());
  FUSCO_RETURN_IF_ERROR(gather_staged(
      me.staged, x, pitch, row_bytes, sent.value(),
      {&me.lane.nccl->device(), me.lane.stream, std::string(what) + ": gathering staged rows"}));
  const detail::StagedBlocks blocks = detail::dispatch_blocks(streams);
  FUSCO_RETURN_IF_ERROR(exchange_blocks(sent.value(), blocks.sends, arrived.value(), blocks.recvs,
                                        static_cast<size_t>(row_bytes), me.lane,
                                        std::string(what) + ": ncclSend/ncclRecv between nodes"));
  return arrived;
}

}  // namespace

Status reserve_staged(const NcclStagedRank& me, int64_t row_bytes, int64_t extra_bytes,
                      int64_t combine_row_bytes, int64_t topk) {
  for (const StagedNeed& need :
       staged_needs(me.staged.streams, row_bytes, extra_bytes, combine_row_bytes, topk)) {
    FUSCO_RETURN_IF_ERROR(buffer(me, need.which, need.row_bytes).status());
  }
  return Status();
}

Status nccl_staged_dispatch(const NcclStagedRank& me, const void* x, int64_t pitch,
                            int64_t row_bytes, const core::PeerTable& recv, StagedBuffer send,
                            StagedBuffer arrive) {
  if (row_bytes <= 0) return Status();
  Result<char*> arrived = gather_and_exchange(me, x, pitch, row_bytes, send, arrive, "dispatch");
  FUSCO_RETURN_IF_ERROR(arrived.status());
  return fan_out_staged(
      me.staged, arrived.value(), row_bytes, recv,
      {&me.lane.nccl->device(), me.lane.stream, "dispatch: fanning out rows from other nodes"});
}

Status nccl_staged_weights(const NcclStagedRank& me, const float* topk_weights, int64_t topk) {
  const int64_t weight_bytes = weight_row_bytes(topk);
  return gather_and_exchange(me, topk_weights, weight_bytes, weight_bytes, kSendWeights,
                             kArriveWeights, "combine (weights)")
      .status();
}

Result<char*> nccl_staged_return(const NcclStagedRank& me, const core::PeerTable& expert_out,
                                 int64_t topk, int64_t hidden, int32_t row_type,
                                 int64_t row_bytes) {
  const detail::StagedStreams& streams = me.staged.streams;
  const int64_t weight_bytes = weight_row_bytes(topk);
  // The arrived weights: the buffer nccl_staged_weights filled (same size, so not regrown).
  Result<char*> weights = buffer(me, kArriveWeights, weight_bytes);
  Result<char*> relay = buffer(me, kRelayReturn, row_bytes);
  Result<char*> returned = buffer(me, kReturned, row_bytes);
  for (const Status& status : {weights.status(), relay.status(), returned.status()}) {
    FUSCO_RETURN_IF_ERROR(status);
  }
  if (row_bytes <= 0) return returned;
  FUSCO_RETURN_IF_ERROR(return_staged(
      me.staged, expert_out, reinterpret_cast<const float*>(weights.value()),
      {topk, hidden, row_type}, relay.value(),
      {&me.lane.nccl->device(), me.lane.stream, "combine: return rows of other nodes' tokens"}));
  const detail::StagedBlocks blocks = detail::return_blocks(streams);
  FUSCO_RETURN_IF_ERROR(exchange_blocks(relay.value(), blocks.sends, returned.value(), blocks.recvs,
                                        static_cast<size_t>(row_bytes), me.lane,
                                        "combine: ncclSend/ncclRecv between nodes"));
  return returned;
}

}  // namespace fusco::gpu
