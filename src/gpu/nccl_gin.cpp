#include "gpu/nccl_gin.hpp"

#include <algorithm>
#include <string>

#include "core/chunk_steps.hpp"
#include "gin_puts.hpp"
#include "gpu/cuda_status.hpp"
#include "gpu/nccl_send_recv.hpp"
#include "gpu/nccl_status.hpp"

namespace fusco::gpu {

namespace {

kernels::GinSignals signals_of(GinStep step, int world) {
  const auto base = static_cast<uint32_t>(2 * static_cast<int>(step) * world);
  return {base, base + static_cast<uint32_t>(world)};
}

kernels::GinBound bound_of(NodeBarrier& bound, int64_t timeout_ms, const std::string& what) {
  return {timeout_ms * 1000000, bound.name_wait(what, timeout_ms), bound.fault()};
}

}  // namespace

Result<std::unique_ptr<GinTransfer>> GinTransfer::create(ncclComm_t comm, size_t window_bytes,
                                                         int rank, int world) {
  std::unique_ptr<GinTransfer> gin(new GinTransfer());
  gin->comm_ = comm;
  gin->rank_ = rank;
  gin->world_ = world;
  gin->region_bytes_ = static_cast<int64_t>(window_bytes / kStagedBuffers / 256 * 256);
  gin->pacing_ = detail::PutPacing(kGinSteps, world);
  FUSCO_RETURN_IF_ERROR(
      nccl_status(ncclMemAlloc(&gin->window_, window_bytes), "ncclMemAlloc (staging window)"));
  FUSCO_RETURN_IF_ERROR(nccl_status(ncclCommWindowRegister(comm, gin->window_, window_bytes,
                                                           &gin->handle_, NCCL_WIN_COLL_SYMMETRIC),
                                    "ncclCommWindowRegister (staging window)"));
  return gin;
}

GinTransfer::~GinTransfer() {
  if (handle_ != nullptr) ncclCommWindowDeregister(comm_, handle_);
  if (window_ != nullptr) ncclMemFree(window_);
}

char* GinTransfer::region(StagedBuffer which) const {
  return static_cast<char*>(window_) + offset(which);
}

int64_t GinTransfer::offset(StagedBuffer which) const {
  return static_cast<int64_t>(which) * region_bytes_;
}

Status GinTransfer::check_fits(const detail::StagedStreams& streams, int64_t row_bytes,
                               int64_t extra_bytes, int64_t combine_row_bytes, int64_t topk) const {
  for (const StagedNeed& need :
       staged_needs(streams, row_bytes, extra_bytes, combine_row_bytes, topk)) {
    if (need.row_bytes > 0 && need.rows > region_bytes_ / need.row_bytes) {
      return Status(StatusCode::kInvalidArgument,
                    std::string("the staged rows between nodes need ") + std::to_string(need.rows) +
                        " rows of " + std::to_string(need.row_bytes) + " bytes in the " +
                        need.name + " region, more than its " + std::to_string(region_bytes_) +
                        " bytes (an eighth of the staging " +
                        "window: NcclOptions::window_bytes, FUSCO_NCCL_WINDOW_BYTES)");
    }
  }
  return Status();
}

Status GinTransfer::put(GinStep step, const std::vector<Block>& blocks, StagedBuffer from,
                        StagedBuffer to, int64_t row_bytes, int64_t chunk_rows,
                        const ncclDevComm& dev, NodeBarrier& bound, int64_t timeout_ms,
                        cudaStream_t stream) {
  kernels::GinPutArgs args;
  args.window = handle_;
  args.rank = rank_;
  args.signals = signals_of(step, world_);
  for (const Block& block : blocks) {
    kernels::GinPut& put = args.puts[args.count++];
    put.peer = block.peer;
    put.acks_needed = pacing_.next_block(static_cast<int>(step), block.peer);
    put.src_offset = offset(from) + block.begin * row_bytes;
    put.dst_offset = offset(to) + block.dst * row_bytes;
    put.bytes = block.rows * row_bytes;
    put.chunk_bytes = chunk_rows * row_bytes;
  }
  args.bound = bound_of(bound, timeout_ms, "a GIN put (waiting for the peer to free its region)");
  return cuda_status(kernels::launch_gin_puts(dev, args, stream), "GIN puts");
}

Status GinTransfer::await(GinStep step, const std::vector<detail::StagedBlock>& blocks,
                          const ncclDevComm& dev, NodeBarrier& bound, int64_t timeout_ms,
                          cudaStream_t stream, const char* what) {
  kernels::GinWaitArgs args;
  args.signals = signals_of(step, world_);
  for (const detail::StagedBlock& block : blocks) {  // one chunk each
    args.peers[args.count] = block.peer;
    args.needed[args.count] = pacing_.next_arrival(static_cast<int>(step), block.peer, 1) + 1;
    ++args.count;
  }
  args.bound = bound_of(bound, timeout_ms, what);
  return cuda_status(kernels::launch_gin_waits(dev, args, stream), what);
}

Status GinTransfer::ack(GinStep step, const std::vector<detail::StagedBlock>& blocks,
                        const ncclDevComm& dev, cudaStream_t stream) {
  kernels::GinAckArgs args;
  args.rank = rank_;
  args.signals = signals_of(step, world_);
  for (const detail::StagedBlock& block : blocks) args.peers[args.count++] = block.peer;
  return cuda_status(kernels::launch_gin_acks(dev, args, stream), "GIN acknowledgements");
}

namespace {

// The put blocks of dispatch (and weights): each Out stream's send staging rows to its
// target's arrival rows.
std::vector<GinTransfer::Block> dispatch_puts(const detail::StagedStreams& streams,
                                              const detail::PutDestinations& to) {
  std::vector<GinTransfer::Block> blocks;
  for (size_t i = 0; i < streams.out.size(); ++i) {
    const detail::StagedStreams::Out& out = streams.out[i];
    if (out.entries > 0) {
      blocks.push_back({out.target, out.send_begin, out.entries, to.out_arrive[i]});
    }
  }
  return blocks;
}

}  // namespace

Status GinTransfer::dispatch(const NcclStagedRank& me, const ncclDevComm& dev,
                             const detail::PutDestinations& to, NodeBarrier& bound,
                             int64_t chunk_bytes, const void* x, int64_t pitch, int64_t row_bytes,
                             const core::PeerTable& recv, GinStep step, StagedBuffer send,
                             StagedBuffer arrive) {
  if (row_bytes <= 0) return Status();
  const detail::StagedStreams& streams = me.staged.streams;
  const int64_t timeout_ms = me.lane.timeout_ms;
  const int64_t chunk_rows = core::rows_per_chunk(chunk_bytes, row_bytes);
  FUSCO_RETURN_IF_ERROR(
      gather_staged(me.staged, x, pitch, row_bytes, region(send),
                    {&cuda_ops(), me.lane.stream, "dispatch: gathering staged rows"}));
  FUSCO_RETURN_IF_ERROR(put(step, dispatch_puts(streams, to), send, arrive, row_bytes, chunk_rows,
                            dev, bound, timeout_ms, me.lane.stream));
  // Fan-out chunk by chunk as they arrive: stream i's chunk c has arrived once its source's
  // data signal passed what earlier calls awaited plus c + 1.
  kernels::GinFanOutArgs args;
  args.stores = me.staged.fanout;
  args.count = me.staged.fanouts;
  args.arrive = region(arrive);
  args.row_bytes = row_bytes;
  args.chunk_rows = chunk_rows;
  args.recv = recv;
  args.signals = signals_of(step, world_);
  for (const detail::StagedStreams::In& in : streams.in) {
    if (in.entries == 0) continue;
    const uint64_t before = pacing_.next_arrival(static_cast<int>(step), in.source,
                                                 core::chunk_count(in.entries, chunk_rows));
    args.arrivals[args.streams++] = {in.arrive_begin, in.entries, before, in.source};
  }
  args.bound = bound_of(bound, timeout_ms, "dispatch (rows from other nodes)");
  FUSCO_RETURN_IF_ERROR(cuda_status(kernels::launch_gin_fan_out(dev, args, me.lane.stream),
                                    "dispatch: fanning out rows from other nodes"));
  return ack(step, detail::dispatch_blocks(streams).recvs, dev, me.lane.stream);
}

Status GinTransfer::weights(const NcclStagedRank& me, const ncclDevComm& dev,
                            const detail::PutDestinations& to, NodeBarrier& bound,
                            const float* topk_weights, int64_t topk) {
  const int64_t timeout_ms = me.lane.timeout_ms;
  const int64_t weight_bytes = weight_row_bytes(topk);
  const detail::StagedStreams& streams = me.staged.streams;
  FUSCO_RETURN_IF_ERROR(
      gather_staged(me.staged, topk_weights, weight_bytes, weight_bytes, region(kSendWeights),
                    {&cuda_ops(), me.lane.stream, "combine: gathering weight rows"}));
  const int64_t whole = std::max<int64_t>(1, streams.send_rows);  // one chunk per block
  FUSCO_RETURN_IF_ERROR(put(GinStep::kWeights, dispatch_puts(streams, to), kSendWeights,
                            kArriveWeights, weight_bytes, whole, dev, bound, timeout_ms,
                            me.lane.stream));
  return await(GinStep::kWeights, detail::dispatch_blocks(streams).recvs, dev, bound, timeout_ms,
               me.lane.stream, "combine (weight rows from other nodes)");
}

Result<char*> GinTransfer::returns(const NcclStagedRank& me, const ncclDevComm& dev,
                                   const detail::PutDestinations& to, NodeBarrier& bound,
                                   const core::PeerTable& expert_out, int64_t topk, int64_t hidden,
                                   int32_t row_type, int64_t row_bytes) {
  const detail::StagedStreams& streams = me.staged.streams;
  const int64_t timeout_ms = me.lane.timeout_ms;
  if (row_bytes > 0) {
    FUSCO_RETURN_IF_ERROR(return_staged(
        me.staged, expert_out, reinterpret_cast<const float*>(region(kArriveWeights)),
        {topk, hidden, row_type}, region(kRelayReturn),
        {&cuda_ops(), me.lane.stream, "combine: return rows of other nodes' tokens"}));
  }
  // The arrived weight rows are used (also when there are no rows to return).
  FUSCO_RETURN_IF_ERROR(
      ack(GinStep::kWeights, detail::dispatch_blocks(streams).recvs, dev, me.lane.stream));
  if (row_bytes <= 0) return region(kReturned);
  std::vector<Block> blocks;
  for (size_t i = 0; i < streams.in.size(); ++i) {
    const detail::StagedStreams::In& in = streams.in[i];
    if (in.return_rows > 0) {
      blocks.push_back({in.source, in.relay_return_begin, in.return_rows, to.in_return[i]});
    }
  }
  const int64_t whole = std::max<int64_t>(1, streams.relay_return_rows);  // one chunk per block
  FUSCO_RETURN_IF_ERROR(put(GinStep::kReturns, blocks, kRelayReturn, kReturned, row_bytes, whole,
                            dev, bound, timeout_ms, me.lane.stream));
  FUSCO_RETURN_IF_ERROR(await(GinStep::kReturns, detail::return_blocks(streams).recvs, dev, bound,
                              timeout_ms, me.lane.stream, "combine (sums from other nodes)"));
  return region(kReturned);
}

Status GinTransfer::returned_read(const NcclStagedRank& me, const ncclDevComm& dev,
                                  int64_t row_bytes) {
  if (row_bytes <= 0) return Status();
  return ack(GinStep::kReturns, detail::return_blocks(me.staged.streams).recvs, dev,
             me.lane.stream);
}

Result<detail::PutDestinations> exchange_put_destinations(const detail::StagedStreams& streams,
                                                          const NcclLane& lane) {
  const std::vector<detail::PutOffsets> messages = detail::offsets_to_send(streams);
  std::vector<int64_t> payload;
  std::vector<detail::StagedBlock> blocks;
  for (size_t i = 0; i < messages.size(); ++i) {
    payload.push_back(messages[i].arrive_begin);
    payload.push_back(messages[i].return_begin);
    blocks.push_back({messages[i].peer, static_cast<int64_t>(i), 1});
  }
  Result<std::vector<int64_t>> answers =
      exchange_values(payload, blocks, payload.size(), blocks, 2, lane, "plan: put offsets");
  FUSCO_RETURN_IF_ERROR(answers.status());
  std::vector<detail::PutOffsets> received;
  for (size_t i = 0; i < messages.size(); ++i) {
    received.push_back({messages[i].peer, answers.value()[2 * i], answers.value()[2 * i + 1]});
  }
  return detail::put_destinations(streams, received);
}

}  // namespace fusco::gpu
