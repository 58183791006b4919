#pragma once

// The staged (inter-node) streams of a rank's plan on the GPU (gpu/staged_programme.hpp):
// its lists in device memory and the steps it runs on its stream with the direct kernels —
// gather into send staging, fan-out of arrived rows, return rows of a combine. Between the
// steps a transport moves each stream's block between its two ranks: grouped
// ncclSend/ncclRecv between processes (gpu/nccl_staged.hpp), or a device copy between the
// logical ranks of one GPU (staged_group_dispatch/combine below: the blocks matched as
// messages match, each pair a copy on the sender's stream), which lets the inter-node
// path, relays and return sums run and be measured on one GPU with the very same lists.

#include <cuda_runtime_api.h>

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/direct_steps.hpp"
#include "core/reduce_steps.hpp"
#include "fusco/status.hpp"
#include "gpu/device_buffer.hpp"
#include "gpu/device_ops.hpp"
#include "gpu/staged_programme.hpp"

namespace fusco::gpu {

/// One rank's staged lists in device memory (their sizes and offsets on the host).
struct DeviceStaged {
  detail::StagedStreams streams;
  int64_t gathers = 0;  ///< Stores of `gather`.
  int64_t fanouts = 0;  ///< Stores of `fanout`.
  DeviceBuffer storage;
  core::DirectStore* gather = nullptr;
  core::DirectStore* fanout = nullptr;
  int64_t* row_groups = nullptr;  ///< [relay_return_rows + 1]: return row i is group i.
  int64_t* group_term_begin = nullptr;
  core::DirectTerm* relay_terms = nullptr;
  int32_t* weight_rows = nullptr;

  static Result<std::shared_ptr<const DeviceStaged>> upload(const detail::RankStaged& staged,
                                                            const DeviceOps& ops);
};

/// Which scratch buffer of a rank a staged call uses.
enum StagedBuffer : int {
  kSendRows = 0,
  kArriveRows = 1,
  kSendExtra = 2,
  kArriveExtra = 3,
  kSendWeights = 4,
  kArriveWeights = 5,
  kRelayReturn = 6,
  kReturned = 7,
};
inline constexpr int kStagedBuffers = 8;

/// What one staged buffer of a rank holds in a call: its name, rows and row bytes.
struct StagedNeed {
  StagedBuffer which;
  const char* name;
  int64_t rows;
  int64_t row_bytes;
};

/// Rows of staged buffer `which` of a rank with `streams`.
int64_t staged_rows(const detail::StagedStreams& streams, StagedBuffer which);

/// Bytes of a staged weight row: the top-k weights of an entry, fp32.
inline int64_t weight_row_bytes(int64_t topk) { return topk * static_cast<int64_t>(sizeof(float)); }

/// Every staged buffer of a rank with `streams` for a call moving rows of `row_bytes`,
/// companion rows of `extra_bytes`, combine rows of `combine_row_bytes` and weight rows of
/// `topk` floats, in StagedBuffer order.
std::array<StagedNeed, kStagedBuffers> staged_needs(const detail::StagedStreams& streams,
                                                    int64_t row_bytes, int64_t extra_bytes,
                                                    int64_t combine_row_bytes, int64_t topk);

/// Device scratch of staged calls, per rank, grown as calls need (freeing synchronises the
/// device, so it only grows).
class StagedScratch {
 public:
  explicit StagedScratch(const DeviceOps& ops = cuda_ops()) : ops_(&ops) {}
  /// Buffer `which` of rank `rank`, large enough for the staged_rows of `streams` in it, each
  /// of `row_bytes`.
  Result<char*> holding(int rank, const detail::StagedStreams& streams, StagedBuffer which,
                        int64_t row_bytes);

 private:
  const DeviceOps* ops_;
  struct Buffer {
    DeviceBuffer memory;
    size_t bytes = 0;
  };
  std::vector<std::vector<Buffer>> buffers_;
};

/// Dispatch, as a source: x[token] (rows `pitch` apart, of `row_bytes`) -> `send` staging.
Status gather_staged(const DeviceStaged& staged, const void* x, int64_t pitch, int64_t row_bytes,
                     char* send, const Launch& on);
/// Dispatch, as a target: every arrived row (`arrive`, contiguous) into its destination rows.
Status fan_out_staged(const DeviceStaged& staged, const char* arrive, int64_t row_bytes,
                      const core::PeerTable& recv, const Launch& on);

/// The rows a combine sums: `hidden` elements of core::RowType `row_type`, weighted by top-k
/// weight rows of `topk` floats.
struct CombineRows {
  int64_t topk = 0;
  int64_t hidden = 0;
  int32_t row_type = 0;
  int64_t row_bytes() const {
    return hidden * core::row_type_bytes(static_cast<core::RowType>(row_type));
  }
};

/// Combine, as a target: the return rows of every incoming stream into `relay_return`
/// (contiguous rows), read from the node's expert outputs and weighted by the arrived weight
/// rows (`weights`).
Status return_staged(const DeviceStaged& staged, const core::PeerTable& expert_out,
                     const float* weights, const CombineRows& rows, char* relay_return,
                     const Launch& on);

/// A one-GPU group's staged blocks matched into copies (detail::match_blocks), shared by the
/// plans of one plan() call: the dispatch direction (rows and weight rows) and the return.
struct StagedGroupCopies {
  std::vector<detail::StagedCopy> dispatch;
  std::vector<detail::StagedCopy> back;

  static Result<std::shared_ptr<const StagedGroupCopies>> match(
      const std::vector<detail::RankStaged>& ranks);
};

/// The ranks of a one-GPU group as its staged steps use them: the backend, every rank's
/// stream, the scratch, every rank's staged lists and their copies, and the group's barrier.
struct StagedGroup {
  const DeviceOps* ops = nullptr;
  const std::vector<cudaStream_t>* streams = nullptr;
  StagedScratch* scratch = nullptr;
  std::vector<const DeviceStaged*> ranks;
  const StagedGroupCopies* copies = nullptr;
  std::function<Status()> barrier;
};

/// Rows every rank of a group reads: source[r], rows `pitch[r]` apart, of `row_bytes`.
struct GroupRows {
  std::vector<const void*> source;
  std::vector<int64_t> pitch;
  int64_t row_bytes = 0;
};

/// The staged part of a one-GPU group's dispatch of `rows` into the receive table `recv`:
/// every rank's gather on its stream and every dispatch copy on its sender's stream, then the
/// barrier, then every rank's fan-out. `send`/`arrive` name the scratch buffers.
Status staged_group_dispatch(const StagedGroup& group, const GroupRows& rows,
                             const core::PeerTable& recv, StagedBuffer send, StagedBuffer arrive);

/// The sources' top-k weight rows to their streams' targets (before the combine's barrier).
Status staged_group_weights(const StagedGroup& group, const std::vector<const float*>& topk_weights,
                            int64_t topk);

/// After the weights and a barrier: every rank's return rows on its stream, every return copy
/// on its sender's stream; then the barrier. returned[r] receives rank r's return buffer.
Status staged_group_combine(const StagedGroup& group, const core::PeerTable& expert_out,
                            const CombineRows& rows, std::vector<char*>& returned);

}  // namespace fusco::gpu
