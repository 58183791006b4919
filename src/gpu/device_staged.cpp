#include "gpu/device_staged.hpp"

#include <numeric>
#include <string>
#include <utility>

#include "direct_combine.hpp"
#include "direct_dispatch.hpp"

namespace fusco::gpu {

namespace {

template <typename T>
std::pair<const void*, size_t> piece(const std::vector<T>& items) {
  return {items.data(), items.size() * sizeof(T)};
}

// Rows [first, first + rows) of `base` (rows of `row_bytes`).
char* rows_at(char* base, int64_t first, int64_t row_bytes) { return base + first * row_bytes; }

// Every copy's rows from the `from` buffers into the `to` buffers, on the sender's stream: a
// transfer between ranks on one GPU, what ncclSend/ncclRecv do between processes.
Status copy_blocks(const StagedGroup& group, const std::vector<detail::StagedCopy>& copies,
                   const std::vector<char*>& from, const std::vector<char*>& to, int64_t row_bytes,
                   const char* what) {
  for (const detail::StagedCopy& copy : copies) {
    const auto sender = static_cast<size_t>(copy.from);
    FUSCO_RETURN_IF_ERROR(
        group.ops->copy(rows_at(to[static_cast<size_t>(copy.to)], copy.to_begin, row_bytes),
                        rows_at(from[sender], copy.from_begin, row_bytes),
                        static_cast<size_t>(copy.rows * row_bytes), (*group.streams)[sender],
                        std::string(what) + " from rank " + std::to_string(copy.from) +
                            " to rank " + std::to_string(copy.to)));
  }
  return Status();
}

// Scratch buffer `which` of every rank, each holding its streams' rows of `row_bytes`.
Result<std::vector<char*>> every_rank(const StagedGroup& group, StagedBuffer which,
                                      int64_t row_bytes) {
  std::vector<char*> buffers;
  buffers.reserve(group.ranks.size());
  for (size_t r = 0; r < group.ranks.size(); ++r) {
    Result<char*> buffer =
        group.scratch->holding(static_cast<int>(r), group.ranks[r]->streams, which, row_bytes);
    FUSCO_RETURN_IF_ERROR(buffer.status());
    buffers.push_back(buffer.value());
  }
  return buffers;
}

// Every rank gathers its rows into its `send` buffer; every stream's block is copied into its
// target's `arrive` buffer on the source's stream. Returns the arrive buffers.
Result<std::vector<char*>> gather_and_copy(const StagedGroup& group, const GroupRows& rows,
                                           StagedBuffer send, StagedBuffer arrive) {
  Result<std::vector<char*>> sent = every_rank(group, send, rows.row_bytes);
  Result<std::vector<char*>> arrived = every_rank(group, arrive, rows.row_bytes);
  FUSCO_RETURN_IF_ERROR(sent.status());
  FUSCO_RETURN_IF_ERROR(arrived.status());
  for (size_t r = 0; r < group.ranks.size(); ++r) {
    FUSCO_RETURN_IF_ERROR(gather_staged(
        *group.ranks[r], rows.source[r], rows.pitch[r], rows.row_bytes, sent.value()[r],
        {group.ops, (*group.streams)[r],
         "gathering the staged rows of rank " + std::to_string(r)}));
  }
  FUSCO_RETURN_IF_ERROR(copy_blocks(group, group.copies->dispatch, sent.value(), arrived.value(),
                                    rows.row_bytes, "moving staged rows"));
  return arrived;
}

}  // namespace

Result<std::shared_ptr<const DeviceStaged>> DeviceStaged::upload(const detail::RankStaged& staged,
                                                                 const DeviceOps& ops) {
  auto uploaded = std::make_shared<DeviceStaged>();
  uploaded->streams = staged.streams;
  uploaded->gathers = static_cast<int64_t>(staged.gather.size());
  uploaded->fanouts = static_cast<int64_t>(staged.fanout.size());
  std::vector<int64_t> row_groups(static_cast<size_t>(staged.streams.relay_return_rows) + 1);
  std::iota(row_groups.begin(), row_groups.end(), int64_t{0});
  std::vector<void*> parts;
  Result<DeviceBuffer> storage = DeviceBuffer::upload_parts(
      {piece(staged.gather), piece(staged.fanout), piece(row_groups),
       piece(staged.group_term_begin), piece(staged.relay_terms), piece(staged.weight_rows)},
      parts, "staged lists upload", ops);
  FUSCO_RETURN_IF_ERROR(storage.status());
  uploaded->storage = std::move(storage).value();
  uploaded->gather = static_cast<core::DirectStore*>(parts[0]);
  uploaded->fanout = static_cast<core::DirectStore*>(parts[1]);
  uploaded->row_groups = static_cast<int64_t*>(parts[2]);
  uploaded->group_term_begin = static_cast<int64_t*>(parts[3]);
  uploaded->relay_terms = static_cast<core::DirectTerm*>(parts[4]);
  uploaded->weight_rows = static_cast<int32_t*>(parts[5]);
  return std::shared_ptr<const DeviceStaged>(std::move(uploaded));
}

Result<std::shared_ptr<const StagedGroupCopies>> StagedGroupCopies::match(
    const std::vector<detail::RankStaged>& ranks) {
  std::vector<detail::StagedBlocks> dispatch, back;
  dispatch.reserve(ranks.size());
  back.reserve(ranks.size());
  for (const detail::RankStaged& rank : ranks) {
    dispatch.push_back(detail::dispatch_blocks(rank.streams));
    back.push_back(detail::return_blocks(rank.streams));
  }
  Result<std::vector<detail::StagedCopy>> forth = detail::match_blocks(dispatch);
  FUSCO_RETURN_IF_ERROR(forth.status());
  Result<std::vector<detail::StagedCopy>> returned = detail::match_blocks(back);
  FUSCO_RETURN_IF_ERROR(returned.status());
  auto copies = std::make_shared<StagedGroupCopies>();
  copies->dispatch = std::move(forth).value();
  copies->back = std::move(returned).value();
  return std::shared_ptr<const StagedGroupCopies>(std::move(copies));
}

int64_t staged_rows(const detail::StagedStreams& streams, StagedBuffer which) {
  switch (which) {
    case kSendRows:
    case kSendExtra:
    case kSendWeights:
      return streams.send_rows;
    case kArriveRows:
    case kArriveExtra:
    case kArriveWeights:
      return streams.arrive_rows;
    case kRelayReturn:
      return streams.relay_return_rows;
    case kReturned:
      return streams.return_rows;
  }
  return 0;
}

std::array<StagedNeed, kStagedBuffers> staged_needs(const detail::StagedStreams& streams,
                                                    int64_t row_bytes, int64_t extra_bytes,
                                                    int64_t combine_row_bytes, int64_t topk) {
  const int64_t weight_bytes = weight_row_bytes(topk);
  const std::array<std::pair<const char*, int64_t>, kStagedBuffers> buffers = {{
      {"send staging", row_bytes},
      {"arrival", row_bytes},
      {"companion send staging", extra_bytes},
      {"companion arrival", extra_bytes},
      {"weight send staging", weight_bytes},
      {"weight arrival", weight_bytes},
      {"return staging", combine_row_bytes},
      {"return", combine_row_bytes},
  }};
  std::array<StagedNeed, kStagedBuffers> needs{};
  for (int i = 0; i < kStagedBuffers; ++i) {
    const auto which = static_cast<StagedBuffer>(i);
    const auto& [name, bytes] = buffers[static_cast<size_t>(i)];
    needs[static_cast<size_t>(i)] = {which, name, staged_rows(streams, which), bytes};
  }
  return needs;
}

Result<char*> StagedScratch::holding(int rank, const detail::StagedStreams& streams,
                                     StagedBuffer which, int64_t row_bytes) {
  const auto bytes = static_cast<size_t>(staged_rows(streams, which) * row_bytes);
  if (buffers_.size() <= static_cast<size_t>(rank)) buffers_.resize(static_cast<size_t>(rank) + 1);
  std::vector<Buffer>& mine = buffers_[static_cast<size_t>(rank)];
  if (mine.empty()) mine.resize(kStagedBuffers);
  Buffer& buffer = mine[static_cast<size_t>(which)];
  if (buffer.bytes < bytes) {
    buffer.memory = DeviceBuffer();  // free first: the peak stays one buffer
    Result<DeviceBuffer> grown = DeviceBuffer::allocate(bytes, "staged rows scratch", *ops_);
    FUSCO_RETURN_IF_ERROR(grown.status());
    buffer.memory = std::move(grown).value();
    buffer.bytes = bytes;
  }
  return static_cast<char*>(buffer.memory.data());
}

namespace {

// Rows one step reads: `data`, rows `pitch` apart, of `row_bytes`.
struct RowSource {
  const void* data = nullptr;
  int64_t pitch = 0;
  int64_t row_bytes = 0;
};

// The dispatch kernel over `count` stores: rows of x into table `to`.
Status store_rows(const core::DirectStore* stores, int64_t count, const RowSource& x,
                  const core::PeerTable& to, const Launch& on) {
  if (count == 0 || x.row_bytes <= 0) return Status();
  kernels::DirectDispatchArgs args;
  args.x = x.data;
  args.x_pitch = x.pitch;
  args.row_bytes = x.row_bytes;
  args.stores = stores;
  args.num_stores = count;
  args.recv = to;
  return on.ops->direct_dispatch(args, on.stream, on.what);
}

}  // namespace

Status gather_staged(const DeviceStaged& staged, const void* x, int64_t pitch, int64_t row_bytes,
                     char* send, const Launch& on) {
  core::PeerTable staging{};  // the send staging as table entry 0
  staging.base[0] = send;
  staging.pitch[0] = row_bytes;
  return store_rows(staged.gather, staged.gathers, {x, pitch, row_bytes}, staging, on);
}

Status fan_out_staged(const DeviceStaged& staged, const char* arrive, int64_t row_bytes,
                      const core::PeerTable& recv, const Launch& on) {
  return store_rows(staged.fanout, staged.fanouts, {arrive, row_bytes, row_bytes}, recv, on);
}

Status return_staged(const DeviceStaged& staged, const core::PeerTable& expert_out,
                     const float* weights, const CombineRows& rows, char* relay_return,
                     const Launch& on) {
  if (staged.streams.relay_return_rows == 0) return Status();
  kernels::DirectCombineArgs sums;
  sums.num_tokens = staged.streams.relay_return_rows;
  sums.hidden = rows.hidden;
  sums.row_type = rows.row_type;
  sums.topk = rows.topk;
  sums.token_group_begin = staged.row_groups;
  sums.group_term_begin = staged.group_term_begin;
  sums.terms = staged.relay_terms;
  sums.topk_weights = weights;
  sums.weight_rows = staged.weight_rows;
  sums.expert_out = expert_out;
  sums.out = relay_return;
  return on.ops->direct_combine(sums, on.stream, on.what);
}

Status staged_group_dispatch(const StagedGroup& group, const GroupRows& rows,
                             const core::PeerTable& recv, StagedBuffer send, StagedBuffer arrive) {
  if (rows.row_bytes <= 0) return group.barrier();
  Result<std::vector<char*>> arrived = gather_and_copy(group, rows, send, arrive);
  FUSCO_RETURN_IF_ERROR(arrived.status());
  FUSCO_RETURN_IF_ERROR(group.barrier());  // every staged row has arrived
  for (size_t r = 0; r < group.ranks.size(); ++r) {
    FUSCO_RETURN_IF_ERROR(
        fan_out_staged(*group.ranks[r], arrived.value()[r], rows.row_bytes, recv,
                       {group.ops, (*group.streams)[r],
                        "fanning out the rows arrived at rank " + std::to_string(r)}));
  }
  return Status();
}

Status staged_group_weights(const StagedGroup& group, const std::vector<const float*>& topk_weights,
                            int64_t topk) {
  const int64_t weight_bytes = weight_row_bytes(topk);
  const GroupRows rows{std::vector<const void*>(topk_weights.begin(), topk_weights.end()),
                       std::vector<int64_t>(group.ranks.size(), weight_bytes), weight_bytes};
  return gather_and_copy(group, rows, kSendWeights, kArriveWeights).status();
}

Status staged_group_combine(const StagedGroup& group, const core::PeerTable& expert_out,
                            const CombineRows& rows, std::vector<char*>& returned) {
  const int64_t row_bytes = rows.row_bytes();
  Result<std::vector<char*>> weights =
      every_rank(group, kArriveWeights, weight_row_bytes(rows.topk));
  Result<std::vector<char*>> relay = every_rank(group, kRelayReturn, row_bytes);
  Result<std::vector<char*>> back = every_rank(group, kReturned, row_bytes);
  for (const Status& status : {weights.status(), relay.status(), back.status()}) {
    FUSCO_RETURN_IF_ERROR(status);
  }
  returned = back.value();
  for (size_t r = 0; r < group.ranks.size(); ++r) {
    FUSCO_RETURN_IF_ERROR(return_staged(
        *group.ranks[r], expert_out, reinterpret_cast<const float*>(weights.value()[r]), rows,
        relay.value()[r],
        {group.ops, (*group.streams)[r], "return rows of rank " + std::to_string(r)}));
  }
  FUSCO_RETURN_IF_ERROR(copy_blocks(group, group.copies->back, relay.value(), returned, row_bytes,
                                    "moving back return rows"));
  return group.barrier();  // every returned row is in its source's buffer
}

}  // namespace fusco::gpu
