#pragma once

// The leaf operations the GPU engine asks of a device: memory, streams and events, copies and
// zeroing on a stream, and the kernels. Everything above them (which kernel on which stream,
// which barrier, which buffer) is shared orchestration. Two backends:
//   - cuda_ops(): the CUDA runtime and the kernels of kernels/;
//   - host_ops(): host memory as device memory, and the kernels' per-row step functions
//     (core/*_steps.hpp) run on the CPU. Its streams run their work lazily, only when the
//     host waits for them or another stream waits for an event recorded on them, so that
//     work that reads a buffer without waiting for the stream that writes it reads stale
//     bytes in every run: a missed barrier shows as wrong bits, not as a rare race.
// Stream and event handles are the CUDA types; the host backend's are its own objects behind
// them (never passed to CUDA).

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fusco/status.hpp"

namespace fusco::core {
struct LayoutArgs;
struct DevicePlanningArgs;
}  // namespace fusco::core

namespace fusco::core {
struct PeerTable;
}  // namespace fusco::core

namespace fusco::kernels {
struct BoundedBarrierArgs;
struct GatherRowsArgs;
struct DirectDispatchArgs;
struct DirectCombineArgs;
}  // namespace fusco::kernels

namespace fusco::gpu {

/// Row ranges in device memory: [pairs[2i], pairs[2i + 1]) for i < count, none longer than
/// `most_rows` rows.
struct RowRanges {
  const int64_t* pairs = nullptr;
  int64_t count = 0;
  int64_t most_rows = 0;
};

class DeviceOps {
 public:
  virtual ~DeviceOps() = default;

  /// True for the host backend.
  virtual bool on_host() const = 0;
  /// Makes `device` current for the calling thread (nothing on the host).
  virtual Status use_device(int device) const = 0;

  /// `bytes` of device memory (*data = nullptr for 0).
  virtual Status allocate(void** data, size_t bytes, const char* what) const = 0;
  virtual void release(void* data) const = 0;
  /// Synchronous copies between host and device memory. They do not wait for work queued on
  /// the engine's streams (non-blocking streams do not order with them).
  virtual Status upload(void* device, const void* host, size_t bytes,
                        const std::string& what) const = 0;
  virtual Status download(void* host, const void* device, size_t bytes,
                          const std::string& what) const = 0;
  /// `bytes` of host memory the device can write (zeroed): its host address and the device's.
  virtual Status allocate_mapped(void** host, void** device, size_t bytes,
                                 const char* what) const = 0;
  virtual void release_mapped(void* host) const = 0;

  virtual Status create_stream(cudaStream_t* stream) const = 0;
  virtual void destroy_stream(cudaStream_t stream) const = 0;
  virtual Status create_event(cudaEvent_t* event) const = 0;
  virtual void destroy_event(cudaEvent_t event) const = 0;
  /// `event` marks the work queued on `stream` so far.
  virtual Status record(cudaEvent_t event, cudaStream_t stream, const char* what) const = 0;
  /// Work queued on `stream` from now on runs after the work `event` last marked.
  virtual Status wait(cudaStream_t stream, cudaEvent_t event, const char* what) const = 0;
  /// Waits until the work queued on `stream` has run; reports its first error.
  virtual Status synchronize(cudaStream_t stream, const std::string& what) const = 0;
  /// Without waiting: whether the work `event` marks has run (also true on a device error,
  /// which the stream reports). The host backend runs that work now, as a device progresses
  /// on its own.
  virtual bool reached(cudaEvent_t event) const = 0;
  /// Without waiting: whether everything queued on `stream` has run, or its first error (the
  /// host backend runs it now).
  virtual Result<bool> idle(cudaStream_t stream, const std::string& what) const = 0;
  /// Whether `stream` is being captured into a CUDA graph (never on the host).
  virtual Result<bool> capturing(cudaStream_t stream, const std::string& what) const = 0;

  /// Device-to-device copy and zeroing, queued on `stream`.
  virtual Status copy(void* to, const void* from, size_t bytes, cudaStream_t stream,
                      const std::string& what) const = 0;
  virtual Status zero(void* to, size_t bytes, cudaStream_t stream,
                      const std::string& what) const = 0;
  /// `rows` rows of `row_bytes` from `from` (rows `from_pitch` bytes apart) to `to` (rows
  /// `to_pitch` apart), queued on `stream`.
  virtual Status copy_rows(void* to, int64_t to_pitch, const void* from, int64_t from_pitch,
                           int64_t row_bytes, int64_t rows, cudaStream_t stream,
                           const std::string& what) const = 0;
  /// The row gather kernel (kernels/row_gather.hpp): row moves of the send/recv path.
  virtual Status gather_rows(const kernels::GatherRowsArgs& args, cudaStream_t stream,
                             const std::string& what) const = 0;
  /// Zeroes `ranges` of `rows` (contiguous rows of `row_bytes`) on `stream`: one kernel launch
  /// for all of them (one per 65535 ranges on CUDA) — padding rows, or a capacity block's
  /// unfilled rows.
  virtual Status zero_ranges(void* rows, int64_t row_bytes, const RowRanges& ranges,
                             cudaStream_t stream, const std::string& what) const = 0;
  /// The direct kernels (kernels/direct_dispatch.hpp, kernels/direct_combine.hpp).
  virtual Status direct_dispatch(const kernels::DirectDispatchArgs& args, cudaStream_t stream,
                                 const std::string& what) const = 0;
  virtual Status direct_combine(const kernels::DirectCombineArgs& args, cudaStream_t stream,
                                const std::string& what) const = 0;
  /// The planning kernels (kernels/layout.hpp, kernels/device_plan.hpp): one rank's layout,
  /// then the record of its first bad id into bad[0..1]; its planning over the count matrix.
  virtual Status layout(const core::LayoutArgs& args, int64_t* bad, cudaStream_t stream,
                        const std::string& what) const = 0;
  virtual Status device_planning(const core::DevicePlanningArgs& args, cudaStream_t stream,
                                 const std::string& what) const = 0;
  /// kernels/device_plan.hpp's launch_publish_row: `count` int64 from `row` to `offset_bytes`
  /// into every rank's buffer of `peers` (ranks [0, world)).
  virtual Status publish_row(const int64_t* row, int64_t count, const core::PeerTable& peers,
                             int world, int64_t offset_bytes, cudaStream_t stream,
                             const std::string& what) const = 0;
  /// The bounded barrier of a node's ranks (kernels/bounded_barrier.hpp). On the host backend
  /// a member that has not arrived yet has its stream run up to its arrival, once its rank's
  /// thread queued it.
  virtual Status bounded_barrier(const kernels::BoundedBarrierArgs& args, cudaStream_t stream,
                                 const std::string& what) const = 0;
  /// Scratch bytes the planning kernels need in device memory (0 on the host).
  virtual size_t layout_workspace_bytes(int64_t tokens, int64_t physical) const = 0;
  virtual size_t planning_workspace_bytes(int64_t tokens) const = 0;
};

/// Where a step's work goes: a backend's stream, and the step's name in errors.
struct Launch {
  const DeviceOps* ops = nullptr;
  cudaStream_t stream = nullptr;
  std::string what;
};

/// The CUDA backend.
const DeviceOps& cuda_ops();
/// The host backend (one for the process; its streams are separate objects).
const DeviceOps& host_ops();

}  // namespace fusco::gpu
