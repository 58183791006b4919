#include "gpu/device_staged.hpp"

#include <numeric>
#include <utility>

#include "direct_combine.hpp"
#include "direct_dispatch.hpp"
#include "gpu/cuda_status.hpp"

namespace fusco::gpu {

namespace {

template <typename T>
std::pair<const void*, size_t> piece(const std::vector<T>& items) {
  return {items.data(), items.size() * sizeof(T)};
}

// Rows [first, first + rows) of `base` (rows of `row_bytes`).
char* rows_at(char* base, int64_t first, int64_t row_bytes) { return base + first * row_bytes; }

// A transfer between ranks on one GPU: what a GIN put does between nodes.
Status transfer(char* to, const char* from, int64_t bytes, cudaStream_t stream,
                const std::string& what) {
  if (bytes <= 0) return Status();
  return cuda_status(
      cudaMemcpyAsync(to, from, static_cast<size_t>(bytes), cudaMemcpyDeviceToDevice, stream),
      what);
}

std::string hop_name(const detail::StagedHop& hop) {
  return "staged rows from rank " + std::to_string(hop.source) + " to rank " +
         std::to_string(hop.target);
}

}  // namespace

Result<std::shared_ptr<const DeviceStaged>> DeviceStaged::upload(
    const detail::StagedProgramme& staged) {
  auto uploaded = std::make_shared<DeviceStaged>();
  for (const detail::StagedHop& shape : staged.hops) {
    Hop hop;
    hop.shape = shape;
    std::vector<int64_t> row_groups(static_cast<size_t>(shape.return_rows) + 1);
    std::iota(row_groups.begin(), row_groups.end(), int64_t{0});
    std::vector<void*> parts;
    Result<DeviceBuffer> storage = DeviceBuffer::upload_parts(
        {piece(shape.gather), piece(shape.fanout), piece(row_groups), piece(shape.group_term_begin),
         piece(shape.terms), piece(shape.weight_rows)},
        parts, "staged programme upload");
    FUSCO_RETURN_IF_ERROR(storage.status());
    hop.storage = std::move(storage).value();
    hop.gather = static_cast<core::DirectStore*>(parts[0]);
    hop.fanout = static_cast<core::DirectStore*>(parts[1]);
    hop.row_groups = static_cast<int64_t*>(parts[2]);
    hop.group_term_begin = static_cast<int64_t*>(parts[3]);
    hop.terms = static_cast<core::DirectTerm*>(parts[4]);
    hop.weight_rows = static_cast<int32_t*>(parts[5]);
    uploaded->hops.push_back(std::move(hop));
  }
  uploaded->send_rows = staged.send_rows;
  uploaded->arrive_rows = staged.arrive_rows;
  uploaded->relay_return_rows = staged.relay_return_rows;
  uploaded->return_rows = staged.return_rows;
  return std::shared_ptr<const DeviceStaged>(std::move(uploaded));
}

Result<char*> StagedScratch::at_least(int rank, int which, size_t bytes) {
  if (buffers_.size() <= static_cast<size_t>(rank)) buffers_.resize(static_cast<size_t>(rank) + 1);
  std::vector<Buffer>& mine = buffers_[static_cast<size_t>(rank)];
  if (mine.empty()) mine.resize(kBuffers);
  Buffer& buffer = mine[static_cast<size_t>(which)];
  if (buffer.bytes < bytes) {
    buffer.memory = DeviceBuffer();  // free first: the peak stays one buffer
    Result<DeviceBuffer> grown = DeviceBuffer::allocate(bytes, "staged rows scratch");
    FUSCO_RETURN_IF_ERROR(grown.status());
    buffer.memory = std::move(grown).value();
    buffer.bytes = bytes;
  }
  return static_cast<char*>(buffer.memory.data());
}

Status staged_dispatch(const DeviceStaged& staged, StagedScratch& scratch,
                       const std::vector<cudaStream_t>& streams,
                       const std::vector<const void*>& source, const std::vector<int64_t>& pitch,
                       int64_t row_bytes, const core::PeerTable& recv, StagedBuffer send,
                       StagedBuffer arrive, const std::function<Status()>& barrier) {
  if (row_bytes <= 0) return barrier();
  const int world = static_cast<int>(streams.size());
  std::vector<char*> send_rows(streams.size()), arrive_rows(streams.size());
  for (int r = 0; r < world; ++r) {
    const auto rr = static_cast<size_t>(r);
    Result<char*> s =
        scratch.at_least(r, send, static_cast<size_t>(staged.send_rows[rr] * row_bytes));
    Result<char*> a =
        scratch.at_least(r, arrive, static_cast<size_t>(staged.arrive_rows[rr] * row_bytes));
    FUSCO_RETURN_IF_ERROR(s.status());
    FUSCO_RETURN_IF_ERROR(a.status());
    send_rows[rr] = s.value();
    arrive_rows[rr] = a.value();
  }
  for (const DeviceStaged::Hop& hop : staged.hops) {  // gather, then transfer
    const detail::StagedHop& h = hop.shape;
    const auto s = static_cast<size_t>(h.source);
    kernels::DirectDispatchArgs gather;
    gather.x = source[s];
    gather.x_pitch = pitch[s];
    gather.row_bytes = row_bytes;
    gather.stores = hop.gather;
    gather.num_stores = h.entries;
    gather.recv.base[0] = send_rows[s];
    gather.recv.pitch[0] = row_bytes;
    FUSCO_RETURN_IF_ERROR(cuda_status(kernels::launch_direct_dispatch(gather, streams[s]),
                                      "gathering " + hop_name(h)));
    FUSCO_RETURN_IF_ERROR(
        transfer(rows_at(arrive_rows[static_cast<size_t>(h.target)], h.arrive_begin, row_bytes),
                 rows_at(send_rows[s], h.send_begin, row_bytes), h.entries * row_bytes, streams[s],
                 "moving " + hop_name(h)));
  }
  FUSCO_RETURN_IF_ERROR(barrier());  // every staged row has arrived
  for (const DeviceStaged::Hop& hop : staged.hops) {
    const detail::StagedHop& h = hop.shape;
    const auto t = static_cast<size_t>(h.target);
    kernels::DirectDispatchArgs fanout;
    fanout.x = rows_at(arrive_rows[t], h.arrive_begin, row_bytes);
    fanout.x_pitch = row_bytes;
    fanout.row_bytes = row_bytes;
    fanout.stores = hop.fanout;
    fanout.num_stores = static_cast<int64_t>(h.fanout.size());
    fanout.recv = recv;
    FUSCO_RETURN_IF_ERROR(cuda_status(kernels::launch_direct_dispatch(fanout, streams[t]),
                                      "fanning out " + hop_name(h)));
  }
  return Status();
}

Status staged_combine(const DeviceStaged& staged, StagedScratch& scratch,
                      const std::vector<cudaStream_t>& streams, const core::PeerTable& expert_out,
                      const std::vector<const float*>& topk_weights, int64_t topk, int64_t hidden,
                      int32_t row_type, int64_t row_bytes, std::vector<char*>& returned,
                      const std::function<Status()>& barrier) {
  const int world = static_cast<int>(streams.size());
  std::vector<char*> relay_rows(streams.size());
  returned.assign(streams.size(), nullptr);
  for (int r = 0; r < world; ++r) {
    const auto rr = static_cast<size_t>(r);
    Result<char*> relay = scratch.at_least(
        r, kRelayReturn, static_cast<size_t>(staged.relay_return_rows[rr] * row_bytes));
    Result<char*> back =
        scratch.at_least(r, kReturned, static_cast<size_t>(staged.return_rows[rr] * row_bytes));
    FUSCO_RETURN_IF_ERROR(relay.status());
    FUSCO_RETURN_IF_ERROR(back.status());
    relay_rows[rr] = relay.value();
    returned[rr] = back.value();
  }
  for (const DeviceStaged::Hop& hop : staged.hops) {  // return rows, then transfer
    const detail::StagedHop& h = hop.shape;
    const auto t = static_cast<size_t>(h.target);
    kernels::DirectCombineArgs sums;
    sums.num_tokens = h.return_rows;
    sums.hidden = hidden;
    sums.row_type = row_type;
    sums.topk = topk;
    sums.token_group_begin = hop.row_groups;
    sums.group_term_begin = hop.group_term_begin;
    sums.terms = hop.terms;
    sums.topk_weights = topk_weights[static_cast<size_t>(h.source)];
    sums.weight_rows = hop.weight_rows;
    sums.expert_out = expert_out;
    sums.out = rows_at(relay_rows[t], h.relay_return_begin, row_bytes);
    FUSCO_RETURN_IF_ERROR(
        cuda_status(kernels::launch_direct_combine(sums, streams[t]), "returning " + hop_name(h)));
    FUSCO_RETURN_IF_ERROR(
        transfer(rows_at(returned[static_cast<size_t>(h.source)], h.return_begin, row_bytes),
                 rows_at(relay_rows[t], h.relay_return_begin, row_bytes), h.return_rows * row_bytes,
                 streams[t], "moving back " + hop_name(h)));
  }
  return barrier();  // every returned row is in its source's buffer
}

}  // namespace fusco::gpu
