// The CUDA backend of the device operations: the runtime's calls and the kernels.

#include <algorithm>
#include <cstring>

#include "bounded_barrier.hpp"
#include "device_plan.hpp"
#include "direct_combine.hpp"
#include "direct_dispatch.hpp"
#include "gpu/cuda_status.hpp"
#include "gpu/device_ops.hpp"
#include "layout.hpp"
#include "row_gather.hpp"

namespace fusco::gpu {

namespace {

class CudaOps final : public DeviceOps {
 public:
  bool on_host() const override { return false; }
  Status use_device(int device) const override {
    return cuda_status(cudaSetDevice(device), "cudaSetDevice");
  }

  Status allocate(void** data, size_t bytes, const char* what) const override {
    *data = nullptr;
    return bytes == 0 ? Status() : cuda_status(cudaMalloc(data, bytes), what);
  }
  void release(void* data) const override {
    if (data != nullptr) cudaFree(data);
  }
  Status upload(void* device, const void* host, size_t bytes,
                const std::string& what) const override {
    if (bytes == 0) return Status();
    // From pageable memory cudaMemcpy may return before the bytes reach the device, and the
    // engine's non-blocking streams do not wait for it: wait for the legacy stream's DMA.
    FUSCO_RETURN_IF_ERROR(
        cuda_status(cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice), what));
    return cuda_status(cudaStreamSynchronize(cudaStreamLegacy), what);
  }
  Status download(void* host, const void* device, size_t bytes,
                  const std::string& what) const override {
    if (bytes == 0) return Status();
    return cuda_status(cudaMemcpy(host, device, bytes, cudaMemcpyDeviceToHost), what);
  }

  Status allocate_mapped(void** host, void** device, size_t bytes,
                         const char* what) const override {
    FUSCO_RETURN_IF_ERROR(cuda_status(cudaHostAlloc(host, bytes, cudaHostAllocMapped), what));
    std::memset(*host, 0, bytes);
    Status mapped = cuda_status(cudaHostGetDevicePointer(device, *host, 0),
                                std::string(what) + " (device address)");
    if (!mapped.ok()) {
      cudaFreeHost(*host);
      *host = nullptr;
    }
    return mapped;
  }
  void release_mapped(void* host) const override {
    if (host != nullptr) cudaFreeHost(host);
  }

  Status create_stream(cudaStream_t* stream) const override {
    return cuda_status(cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking), "stream");
  }
  void destroy_stream(cudaStream_t stream) const override { cudaStreamDestroy(stream); }
  Status create_event(cudaEvent_t* event) const override {
    return cuda_status(cudaEventCreateWithFlags(event, cudaEventDisableTiming), "event");
  }
  void destroy_event(cudaEvent_t event) const override { cudaEventDestroy(event); }
  Status record(cudaEvent_t event, cudaStream_t stream, const char* what) const override {
    return cuda_status(cudaEventRecord(event, stream), what);
  }
  Status wait(cudaStream_t stream, cudaEvent_t event, const char* what) const override {
    return cuda_status(cudaStreamWaitEvent(stream, event, 0), what);
  }
  Status synchronize(cudaStream_t stream, const std::string& what) const override {
    return cuda_status(cudaStreamSynchronize(stream), what);
  }
  bool reached(cudaEvent_t event) const override {
    return cudaEventQuery(event) != cudaErrorNotReady;
  }
  Result<bool> idle(cudaStream_t stream, const std::string& what) const override {
    const cudaError_t state = cudaStreamQuery(stream);
    if (state == cudaErrorNotReady) return false;
    FUSCO_RETURN_IF_ERROR(cuda_status(state, what));
    return true;
  }
  Result<bool> capturing(cudaStream_t stream, const std::string& what) const override {
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    FUSCO_RETURN_IF_ERROR(cuda_status(cudaStreamIsCapturing(stream, &capture), what));
    return capture != cudaStreamCaptureStatusNone;
  }

  Status copy(void* to, const void* from, size_t bytes, cudaStream_t stream,
              const std::string& what) const override {
    if (bytes == 0) return Status();
    return cuda_status(cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, stream), what);
  }
  Status zero(void* to, size_t bytes, cudaStream_t stream, const std::string& what) const override {
    if (bytes == 0) return Status();
    return cuda_status(cudaMemsetAsync(to, 0, bytes, stream), what);
  }
  Status copy_rows(void* to, int64_t to_pitch, const void* from, int64_t from_pitch,
                   int64_t row_bytes, int64_t rows, cudaStream_t stream,
                   const std::string& what) const override {
    if (rows <= 0 || row_bytes <= 0) return Status();
    return cuda_status(
        cudaMemcpy2DAsync(to, static_cast<size_t>(to_pitch), from, static_cast<size_t>(from_pitch),
                          static_cast<size_t>(row_bytes), static_cast<size_t>(rows),
                          cudaMemcpyDeviceToDevice, stream),
        what);
  }
  Status gather_rows(const kernels::GatherRowsArgs& args, cudaStream_t stream,
                     const std::string& what) const override {
    return cuda_status(kernels::launch_gather_rows(args, stream), what);
  }
  Status zero_ranges(void* rows, int64_t row_bytes, const RowRanges& ranges, cudaStream_t stream,
                     const std::string& what) const override {
    // One launch per 65535 ranges (the kernel's grid holds one range per y index).
    constexpr int64_t kPerLaunch = 65535;
    for (int64_t first = 0; first < ranges.count; first += kPerLaunch) {
      FUSCO_RETURN_IF_ERROR(
          cuda_status(kernels::launch_zero_unfilled_rows(rows, row_bytes, ranges.pairs + 2 * first,
                                                         std::min(kPerLaunch, ranges.count - first),
                                                         ranges.most_rows, stream),
                      what + ": zeroing unfilled rows"));
    }
    return Status();
  }
  Status direct_dispatch(const kernels::DirectDispatchArgs& args, cudaStream_t stream,
                         const std::string& what) const override {
    return cuda_status(kernels::launch_direct_dispatch(args, stream), what);
  }
  Status direct_combine(const kernels::DirectCombineArgs& args, cudaStream_t stream,
                        const std::string& what) const override {
    return cuda_status(kernels::launch_direct_combine(args, stream), what);
  }
  Status layout(const core::LayoutArgs& args, int64_t* bad, cudaStream_t stream,
                const std::string& what) const override {
    FUSCO_RETURN_IF_ERROR(cuda_status(kernels::launch_layout(args, stream), what));
    return cuda_status(
        kernels::launch_record_bad_id(args.topk_idx, args.ids_int64, args.first_bad, bad, stream),
        what);
  }
  Status device_planning(const core::DevicePlanningArgs& args, cudaStream_t stream,
                         const std::string& what) const override {
    return cuda_status(kernels::launch_device_planning(args, stream), what);
  }
  Status publish_row(const int64_t* row, int64_t count, const core::PeerTable& peers, int world,
                     int64_t offset_bytes, cudaStream_t stream,
                     const std::string& what) const override {
    return cuda_status(kernels::launch_publish_row(row, count, peers, world, offset_bytes, stream),
                       what);
  }
  Status bounded_barrier(const kernels::BoundedBarrierArgs& args, cudaStream_t stream,
                         const std::string& what) const override {
    return cuda_status(kernels::launch_bounded_barrier(args, stream), what);
  }
  size_t layout_workspace_bytes(int64_t tokens, int64_t physical) const override {
    return kernels::layout_workspace_bytes(tokens, physical);
  }
  size_t planning_workspace_bytes(int64_t tokens) const override {
    return kernels::device_planning_workspace_bytes(tokens);
  }
};

}  // namespace

const DeviceOps& cuda_ops() {
  static const CudaOps ops;
  return ops;
}

}  // namespace fusco::gpu
