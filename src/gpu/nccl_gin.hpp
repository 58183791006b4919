#pragma once

// NcclCommunicator's GPU-initiated transfer between nodes (NcclInterNode::kGin): the staged
// rows of a call (gpu/device_staged.hpp lists) move by ncclGin::put from this rank's part of
// a symmetric staging window straight into the peer's part, with no host NCCL call between
// the kernels. The window is cut into eight equal regions, one per staged buffer
// (StagedBuffer order), the same on every rank, so a put's destination is the peer's region
// plus the row the peer chose for the stream (detail::PutDestinations, learned once per plan).
// Each step of a call (rows, companion rows, weight rows, return rows) has its own signals:
// every chunk put raises the receiver's data signal for the sender, the receiver waits for
// it (dispatch: per chunk, so it fans chunk i out while chunk i+1 is on the wire), uses the
// rows and acknowledges the block with the sender's free signal, which the sender awaits
// before its next block of that step to that peer. The host counts puts and acknowledgements per
// (step, peer) and passes the counts each wait needs. Every wait is bounded (NodeBarrier's fault
// record names the peer).

#include <memory>
#include <vector>

#include "gpu/device_staged.hpp"
#include "gpu/nccl_staged.hpp"
#include "gpu/node_barrier.hpp"
#include "gpu/staged_puts.hpp"

struct ncclDevComm;

namespace fusco::gpu {

/// The steps of a call whose puts are paced apart.
enum class GinStep : int { kRows = 0, kExtra = 1, kWeights = 2, kReturns = 3 };
inline constexpr int kGinSteps = 4;

/// GIN signals a communicator of `world` ranks needs (data and free, per step and peer).
inline int gin_signal_count(int world) { return 2 * kGinSteps * world; }

class GinTransfer {
 public:
  /// This rank's staging window of `window_bytes` (ncclMemAlloc + symmetric registration: the
  /// caller agrees on the verdict, as registration is collective).
  static Result<std::unique_ptr<GinTransfer>> create(ncclComm_t comm, size_t window_bytes, int rank,
                                                     int world);
  ~GinTransfer();
  GinTransfer(const GinTransfer&) = delete;
  GinTransfer& operator=(const GinTransfer&) = delete;

  /// The communicator was aborted (see NcclWatch): its registrations went with it, so the
  /// destructor only frees the window's memory.
  void communicator_aborted() { handle_ = nullptr; }

  /// kInvalidArgument, naming FUSCO_NCCL_WINDOW_BYTES, when a call's staged rows (rows of
  /// `row_bytes`, companion rows of `extra_bytes`, combine rows of `combine_row_bytes`,
  /// weight rows of `topk`) do not fit their regions.
  Status check_fits(const detail::StagedStreams& streams, int64_t row_bytes, int64_t extra_bytes,
                    int64_t combine_row_bytes, int64_t topk) const;

  /// The dispatch of rows of `row_bytes` (x rows `pitch` apart) of `step` (kRows or kExtra):
  /// gather into region `send`, puts in chunks of `chunk_bytes` (PlanOptions::chunk_bytes),
  /// fan-out from region `arrive` into `recv` chunk by chunk as chunks arrive, acks. Every
  /// wait is bounded by the call's timeout (me.lane.timeout_ms).
  Status dispatch(const NcclStagedRank& me, const ncclDevComm& dev,
                  const detail::PutDestinations& to, NodeBarrier& bound, int64_t chunk_bytes,
                  const void* x, int64_t pitch, int64_t row_bytes, const core::PeerTable& recv,
                  GinStep step, StagedBuffer send, StagedBuffer arrive);

  /// Combine, before the barrier: this rank's weight rows of its entries put to their targets,
  /// and the weight rows of the entries that come here awaited.
  Status weights(const NcclStagedRank& me, const ncclDevComm& dev,
                 const detail::PutDestinations& to, NodeBarrier& bound, const float* topk_weights,
                 int64_t topk);

  /// Combine, after the barrier: the return rows of the streams that came here (read from the
  /// node's expert outputs, weighted by the arrived weight rows, which are then acknowledged)
  /// put to their sources; this rank's returned rows awaited. Returns its return region.
  Result<char*> returns(const NcclStagedRank& me, const ncclDevComm& dev,
                        const detail::PutDestinations& to, NodeBarrier& bound,
                        const core::PeerTable& expert_out, int64_t topk, int64_t hidden,
                        int32_t row_type, int64_t row_bytes);

  /// After this rank's combine kernel read its returned rows: acknowledges them.
  Status returned_read(const NcclStagedRank& me, const ncclDevComm& dev, int64_t row_bytes);

  /// Rows [begin, begin + rows) of a region, put into `peer`'s region from row `dst`.
  struct Block {
    int32_t peer;
    int64_t begin;
    int64_t rows;
    int64_t dst;
  };

 private:
  GinTransfer() = default;
  char* region(StagedBuffer which) const;
  int64_t offset(StagedBuffer which) const;
  // The puts of `step`: each block from region `from` to region `to` of its peer, in chunks
  // of `chunk_rows` rows.
  Status put(GinStep step, const std::vector<Block>& blocks, StagedBuffer from, StagedBuffer to,
             int64_t row_bytes, int64_t chunk_rows, const ncclDevComm& dev, NodeBarrier& bound,
             int64_t timeout_ms, cudaStream_t stream);
  // Waits for one more put of `step` from every peer of `blocks` (those with rows).
  Status await(GinStep step, const std::vector<detail::StagedBlock>& blocks, const ncclDevComm& dev,
               NodeBarrier& bound, int64_t timeout_ms, cudaStream_t stream, const char* what);
  // Acknowledges the last put of `step` of every peer of `blocks` (those with rows).
  Status ack(GinStep step, const std::vector<detail::StagedBlock>& blocks, const ncclDevComm& dev,
             cudaStream_t stream);

  ncclComm_t comm_ = nullptr;
  void* window_ = nullptr;
  ncclWindow_t handle_ = nullptr;
  int64_t region_bytes_ = 0;
  int rank_ = 0;
  int world_ = 0;
  detail::PutPacing pacing_{kGinSteps, 1};  ///< Sized for the world at create().
};

/// Collective over the peers this rank shares staged streams with (grouped ncclSend/ncclRecv
/// on `lane`, waited for within its timeout): where its puts land (detail::offsets_to_send /
/// put_destinations).
Result<detail::PutDestinations> exchange_put_destinations(const detail::StagedStreams& streams,
                                                          const NcclLane& lane);

}  // namespace fusco::gpu
