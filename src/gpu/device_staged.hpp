#pragma once

// The staged (inter-node) hops of a DeviceGroup's plans on its one GPU
// (plan/staged_programme.hpp): logical ranks grouped into nodes run the inter-node path with
// the direct kernels, the transfer between ranks being a device copy on the sender's stream
// (where GIN would put). Lets the staged lists, relays and return sums run and be measured on
// one GPU.

#include <cuda_runtime_api.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/direct_steps.hpp"
#include "fusco/status.hpp"
#include "gpu/device_buffer.hpp"
#include "plan/staged_programme.hpp"

namespace fusco::gpu {

/// A group's staged programme in device memory, shared by its plans.
struct DeviceStaged {
  struct Hop {
    detail::StagedHop shape;  ///< Sizes and offsets (its lists stay on the host too).
    DeviceBuffer storage;
    core::DirectStore* gather = nullptr;
    core::DirectStore* fanout = nullptr;
    int64_t* row_groups = nullptr;  ///< [return_rows + 1]: return row i is group i.
    int64_t* group_term_begin = nullptr;
    core::DirectTerm* terms = nullptr;
    int32_t* weight_rows = nullptr;
  };
  std::vector<Hop> hops;
  std::vector<int64_t> send_rows, arrive_rows, relay_return_rows, return_rows;

  static Result<std::shared_ptr<const DeviceStaged>> upload(const detail::StagedProgramme& staged);
};

/// Device scratch of staged calls, per rank, grown as calls need (freeing synchronises the
/// device, so it only grows).
class StagedScratch {
 public:
  /// At least `bytes` of buffer `which` of rank `rank` (which: 0..kBuffers - 1).
  Result<char*> at_least(int rank, int which, size_t bytes);
  static constexpr int kBuffers = 6;

 private:
  struct Buffer {
    DeviceBuffer memory;
    size_t bytes = 0;
  };
  std::vector<std::vector<Buffer>> buffers_;
};

/// Which scratch buffers a call uses.
enum StagedBuffer : int {
  kSendRows = 0,
  kArriveRows = 1,
  kSendExtra = 2,
  kArriveExtra = 3,
  kRelayReturn = 4,
  kReturned = 5,
};

/// The staged part of a dispatch of rows of `row_bytes` from source[r] (rows `pitch[r]` apart)
/// into the receive table: every hop's gather and transfer on its source's stream, then
/// `barrier`, then every hop's fan-out on its target's stream. `send`/`arrive` name the
/// scratch buffers.
Status staged_dispatch(const DeviceStaged& staged, StagedScratch& scratch,
                       const std::vector<cudaStream_t>& streams,
                       const std::vector<const void*>& source, const std::vector<int64_t>& pitch,
                       int64_t row_bytes, const core::PeerTable& recv, StagedBuffer send,
                       StagedBuffer arrive, const std::function<Status()>& barrier);

/// The staged part of a combine: every hop's return rows on its target's stream (partial sums
/// or rows, weights from its source's topk_weights), transferred into the source's return
/// buffer; then `barrier`. returned[r] receives rank r's return buffer (rows of `row_bytes`).
Status staged_combine(const DeviceStaged& staged, StagedScratch& scratch,
                      const std::vector<cudaStream_t>& streams, const core::PeerTable& expert_out,
                      const std::vector<const float*>& topk_weights, int64_t topk, int64_t hidden,
                      int32_t row_type, int64_t row_bytes, std::vector<char*>& returned,
                      const std::function<Status()>& barrier);

}  // namespace fusco::gpu
