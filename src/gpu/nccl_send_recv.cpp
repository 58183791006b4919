#include "gpu/nccl_send_recv.hpp"

#include <algorithm>
#include <string>

#include "direct_combine.hpp"
#include "gpu/row_moves.hpp"

namespace fusco::gpu {

namespace {

// The blocks of per-peer offsets ([W + 1]: peer p's items are [offsets[p], offsets[p + 1])).
std::vector<detail::StagedBlock> blocks_of(const std::vector<int64_t>& offsets) {
  std::vector<detail::StagedBlock> blocks;
  for (size_t p = 0; p + 1 < offsets.size(); ++p) {
    blocks.push_back({static_cast<int32_t>(p), offsets[p], offsets[p + 1] - offsets[p]});
  }
  return blocks;
}

// exchange_blocks over per-peer offsets of send and recv.
Status exchange_per_peer(const void* send, const std::vector<int64_t>& send_offsets, void* recv,
                         const std::vector<int64_t>& recv_offsets, size_t item_bytes,
                         const NcclLane& lane, const char* what) {
  return exchange_blocks(send, blocks_of(send_offsets), recv, blocks_of(recv_offsets), item_bytes,
                         lane, what);
}

// The ranks of the non-empty blocks, each once, in order.
std::vector<int> peers_of(const std::vector<detail::StagedBlock>& sends,
                          const std::vector<detail::StagedBlock>& recvs) {
  std::vector<int> peers;
  for (const auto* list : {&sends, &recvs}) {
    for (const detail::StagedBlock& block : *list) {
      if (block.rows > 0) peers.push_back(block.peer);
    }
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  return peers;
}

std::vector<int64_t> ones(size_t world) {
  std::vector<int64_t> offsets;
  for (size_t p = 0; p <= world; ++p) offsets.push_back(static_cast<int64_t>(p));
  return offsets;
}

Status gather(const void* src, int64_t src_pitch, void* dst, const DeviceBuffer& moves,
              size_t count, int64_t row_bytes, const Launch& on) {
  return on.ops->gather_rows(moves_args(src, src_pitch, dst, moves, count, row_bytes), on.stream,
                             on.what);
}

}  // namespace

Status exchange_blocks(const void* send, const std::vector<detail::StagedBlock>& sends, void* recv,
                       const std::vector<detail::StagedBlock>& recvs, size_t item_bytes,
                       const NcclLane& lane, const std::string& what) {
  if (item_bytes == 0) return Status();
  FUSCO_RETURN_IF_ERROR(lane.watch->check());  // an aborted communicator takes no calls
  auto blocks = [item_bytes](const void* base, const std::vector<detail::StagedBlock>& list) {
    std::vector<PeerBlock> out;
    for (const detail::StagedBlock& block : list) {
      if (block.rows <= 0) continue;
      out.push_back({block.peer,
                     const_cast<char*>(static_cast<const char*>(base)) + block.begin * item_bytes,
                     static_cast<size_t>(block.rows) * item_bytes});
    }
    return out;
  };
  FUSCO_RETURN_IF_ERROR(lane.nccl->exchange(lane.comm, blocks(send, sends), blocks(recv, recvs),
                                            lane.stream, lane.timeout_ms, what));
  return lane.watch->mark(lane.stream, what, peers_of(sends, recvs), lane.timeout_ms);
}

Result<std::vector<int64_t>> exchange_values(const std::vector<int64_t>& mine,
                                             const std::vector<detail::StagedBlock>& sends,
                                             size_t incoming,
                                             const std::vector<detail::StagedBlock>& recvs,
                                             size_t per_item, const NcclLane& lane,
                                             const std::string& what) {
  const DeviceOps& ops = lane.nccl->device();
  Result<DeviceBuffer> out = DeviceBuffer::upload(mine, "plan exchange", ops);
  Result<DeviceBuffer> in =
      DeviceBuffer::allocate(incoming * sizeof(int64_t), "plan exchange", ops);
  FUSCO_RETURN_IF_ERROR(out.status());
  FUSCO_RETURN_IF_ERROR(in.status());
  FUSCO_RETURN_IF_ERROR(exchange_blocks(out.value().data(), sends, in.value().data(), recvs,
                                        per_item * sizeof(int64_t), lane, what));
  FUSCO_RETURN_IF_ERROR(lane.watch->wait(lane.stream, lane.timeout_ms, what));
  std::vector<int64_t> values(incoming);
  FUSCO_RETURN_IF_ERROR(
      ops.download(values.data(), in.value().data(), values.size() * sizeof(int64_t), what));
  return values;
}

Result<SendRecvProgramme> SendRecvProgramme::build(const detail::PlanData& plan, int world,
                                                   const NcclLane& lane) {
  const DeviceOps& ops = lane.nccl->device();
  Result<UnfusedDeviceLists> built = send_side_lists(plan, world);
  FUSCO_RETURN_IF_ERROR(built.status());
  UnfusedDeviceLists lists = std::move(built).value();
  const auto w = static_cast<size_t>(world);
  // Counts: one int64 to and from every peer.
  std::vector<int64_t> send_counts(w);
  for (size_t p = 0; p < w; ++p) send_counts[p] = lists.send_offsets[p + 1] - lists.send_offsets[p];
  const std::vector<detail::StagedBlock> one_each = blocks_of(ones(w));
  Result<std::vector<int64_t>> counts =
      exchange_values(send_counts, one_each, w, one_each, 1, lane, "plan exchange (counts)");
  FUSCO_RETURN_IF_ERROR(counts.status());
  const std::vector<int64_t>& recv_counts = counts.value();
  // Rows: the receive row of every row each peer sends here.
  std::vector<int64_t> recv_offsets(w + 1, 0);
  for (size_t p = 0; p < w; ++p) recv_offsets[p + 1] = recv_offsets[p] + recv_counts[p];
  std::vector<int64_t> send_rows;
  for (const detail::DirectRow& row : plan.direct) send_rows.push_back(row.row);
  Result<std::vector<int64_t>> rows = exchange_values(
      send_rows, blocks_of(lists.send_offsets), static_cast<size_t>(recv_offsets[w]),
      blocks_of(recv_offsets), 1, lane, "plan exchange (rows)");
  FUSCO_RETURN_IF_ERROR(rows.status());
  const std::vector<int64_t>& incoming = rows.value();
  FUSCO_RETURN_IF_ERROR(set_receive_side(lists, recv_counts, incoming, plan.num_recv_rows));

  SendRecvProgramme programme;
  programme.send_offsets = lists.send_offsets;
  programme.stage_offsets = lists.stage_offsets;
  programme.send_rows = lists.send_offsets[w];
  programme.stage_rows = lists.stage_offsets[w];
  Result<DeviceBuffer> permute = DeviceBuffer::upload(lists.permute, "plan upload", ops);
  Result<DeviceBuffer> resort = DeviceBuffer::upload(lists.resort, "plan upload", ops);
  Result<DeviceBuffer> unsort =
      DeviceBuffer::upload(inverse_moves(lists.resort), "plan upload", ops);
  Result<DeviceBuffer> terms = DeviceBuffer::upload(lists.return_terms, "plan upload", ops);
  for (const Status& status :
       {permute.status(), resort.status(), unsort.status(), terms.status()}) {
    FUSCO_RETURN_IF_ERROR(status);
  }
  programme.permute = std::move(permute).value();
  programme.resort = std::move(resort).value();
  programme.unsort = std::move(unsort).value();
  programme.return_terms = std::move(terms).value();
  return programme;
}

Status SendRecvBuffers::reserve(size_t send_needed, size_t stage_needed) {
  if (send_needed > send_bytes) {
    Result<DeviceBuffer> grown = DeviceBuffer::allocate(send_needed, "send buffer", *ops);
    FUSCO_RETURN_IF_ERROR(grown.status());
    send = std::move(grown).value();
    send_bytes = send_needed;
  }
  if (stage_needed > stage_bytes) {
    Result<DeviceBuffer> grown = DeviceBuffer::allocate(stage_needed, "staging buffer", *ops);
    FUSCO_RETURN_IF_ERROR(grown.status());
    stage = std::move(grown).value();
    stage_bytes = stage_needed;
  }
  return Status();
}

Status send_recv_dispatch(const RowRanges& padding, const SendRecvProgramme& programme,
                          SendRecvBuffers& buffers, const TensorView& x, void* recv,
                          const NcclLane& lane) {
  const DeviceOps& ops = lane.nccl->device();
  const int64_t row_bytes = x.shape[1] * static_cast<int64_t>(dtype_size(x.dtype));
  if (row_bytes == 0) return Status();
  FUSCO_RETURN_IF_ERROR(buffers.reserve(static_cast<size_t>(programme.send_rows * row_bytes),
                                        static_cast<size_t>(programme.stage_rows * row_bytes)));
  FUSCO_RETURN_IF_ERROR(gather(x.data, x.row_pitch_bytes(), buffers.send.data(), programme.permute,
                               static_cast<size_t>(programme.send_rows), row_bytes,
                               {&ops, lane.stream, "dispatch: gathering rows by destination"}));
  FUSCO_RETURN_IF_ERROR(exchange_per_peer(
      buffers.send.data(), programme.send_offsets, buffers.stage.data(), programme.stage_offsets,
      static_cast<size_t>(row_bytes), lane, "dispatch: ncclSend/ncclRecv"));
  FUSCO_RETURN_IF_ERROR(ops.zero_ranges(recv, row_bytes, padding, lane.stream, "dispatch"));
  return gather(buffers.stage.data(), row_bytes, recv, programme.resort,
                static_cast<size_t>(programme.stage_rows), row_bytes,
                {&ops, lane.stream, "dispatch: placing rows"});
}

Status send_recv_combine(const detail::PlanData& plan, const DeviceProgramme& groups,
                         const SendRecvProgramme& programme, SendRecvBuffers& buffers,
                         const TensorView& expert_out, const TensorView& topk_weights,
                         const TensorView& out, const NcclLane& lane) {
  const DeviceOps& ops = lane.nccl->device();
  const int64_t hidden = expert_out.shape[1];
  const int64_t row_bytes = hidden * static_cast<int64_t>(dtype_size(expert_out.dtype));
  if (row_bytes > 0) {
    FUSCO_RETURN_IF_ERROR(buffers.reserve(static_cast<size_t>(programme.send_rows * row_bytes),
                                          static_cast<size_t>(programme.stage_rows * row_bytes)));
    FUSCO_RETURN_IF_ERROR(gather(expert_out.data, expert_out.row_pitch_bytes(),
                                 buffers.stage.data(), programme.unsort,
                                 static_cast<size_t>(programme.stage_rows), row_bytes,
                                 {&ops, lane.stream, "combine: gathering rows by source"}));
    FUSCO_RETURN_IF_ERROR(exchange_per_peer(
        buffers.stage.data(), programme.stage_offsets, buffers.send.data(), programme.send_offsets,
        static_cast<size_t>(row_bytes), lane, "combine: ncclSend/ncclRecv"));
  }
  kernels::DirectCombineArgs args;
  args.num_tokens = plan.num_tokens;
  args.hidden = hidden;
  args.row_type = static_cast<int32_t>(expert_out.dtype);
  args.topk = plan.topk;
  args.token_group_begin = groups.token_group_begin;
  args.group_term_begin = groups.group_term_begin;
  args.terms = programme.return_terms.as<core::DirectTerm>();
  args.topk_weights = static_cast<const float*>(topk_weights.data);
  args.expert_out.base[0] = static_cast<char*>(buffers.send.data());
  args.expert_out.pitch[0] = row_bytes;
  args.out = out.data;
  return ops.direct_combine(args, lane.stream, "combine: summing rows");
}

}  // namespace fusco::gpu
