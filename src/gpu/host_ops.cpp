// The host backend of the device operations (gpu/device_ops.hpp): host memory stands for
// device memory, streams are lazy queues (gpu/host_streams.hpp), and the kernels run the same
// per-row step functions as the CUDA kernels, lane by lane.

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/direct_steps.hpp"
#include "core/host_planning.hpp"
#include "core/reduce_steps.hpp"
#include "direct_combine.hpp"
#include "direct_dispatch.hpp"
#include "gpu/device_ops.hpp"
#include "gpu/host_barrier.hpp"
#include "gpu/host_streams.hpp"
#include "row_gather.hpp"

namespace fusco::gpu {

namespace {

// The lanes of the dispatch kernel's warp, run one after the other.
constexpr int kWarpLanes = 32;

HostStream* stream_of(cudaStream_t stream) { return reinterpret_cast<HostStream*>(stream); }

// The null stream (CUDA's legacy stream) has no host counterpart.
Status not_null(cudaStream_t stream, const std::string& what) {
  if (stream != nullptr) return Status();
  return Status(StatusCode::kInvalidArgument,
                what + ": the null stream on the host backend (only streams it made run work)");
}
HostEvent* event_of(cudaEvent_t event) { return reinterpret_cast<HostEvent*>(event); }

void dispatch_rows(const kernels::DirectDispatchArgs& args) {
  for (int64_t i = 0; i < args.num_stores; ++i) {
    const core::DirectStore store = args.stores[i];
    if (store.rank == core::DirectStore::kNothing) continue;
    for (int lane = 0; lane < kWarpLanes; ++lane) {
      core::copy_row_part(core::store_destination(args.recv, store),
                          static_cast<const char*>(args.x) + store.token * args.x_pitch,
                          args.row_bytes, lane, kWarpLanes);
      if (args.extra_row_bytes > 0) {
        core::copy_row_part(core::store_destination(args.extra_recv, store),
                            static_cast<const char*>(args.extra) + store.token * args.extra_pitch,
                            args.extra_row_bytes, lane, kWarpLanes);
      }
    }
  }
}

// One accumulator per element, as the kernel's threads keep them, fed term by term (the
// kernel's order per element; one pass over each term's row).
void combine_rows(const kernels::DirectCombineArgs& args) {
  const auto type = static_cast<core::RowType>(args.row_type);
  const int64_t row_bytes = args.hidden * core::row_type_bytes(type);
  std::vector<core::CombineAccumulator> sums(static_cast<size_t>(args.hidden));
  for (int64_t t = 0; t < args.num_tokens; ++t) {
    const int64_t weights_row = args.weight_rows == nullptr ? t : args.weight_rows[t];
    const int64_t* group_begin = args.group_term_begin + args.token_group_begin[t];
    const int64_t groups = args.token_group_begin[t + 1] - args.token_group_begin[t];
    std::fill(sums.begin(), sums.end(), core::CombineAccumulator{});
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t i = group_begin[g]; i < group_begin[g + 1]; ++i) {
        const float weight =
            core::term_weight(args.topk_weights, args.topk, weights_row, args.terms[i]);
        const char* row = core::term_source(args.expert_out, args.terms[i]);
        for (int64_t h = 0; h < args.hidden; ++h) {
          sums[static_cast<size_t>(h)].add(weight, core::load_element(row, h, type),
                                           i == group_begin[g]);
        }
      }
      for (core::CombineAccumulator& sum : sums) sum.close_group(g, groups, type);
    }
    char* out_row = static_cast<char*>(args.out) + t * row_bytes;
    for (int64_t h = 0; h < args.hidden; ++h) {
      core::store_element(out_row, h, sums[static_cast<size_t>(h)].total, type);
    }
  }
}

class HostOps final : public DeviceOps {
 public:
  bool on_host() const override { return true; }
  Status use_device(int /*device*/) const override { return Status(); }

  Status allocate(void** data, size_t bytes, const char* what) const override {
    *data = nullptr;
    if (bytes == 0) return Status();
    *data = std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
    if (*data == nullptr) {
      return Status(StatusCode::kOutOfMemory,
                    std::string(what) + ": no host memory for " + std::to_string(bytes) + " bytes");
    }
    return Status();
  }
  void release(void* data) const override {
    // Freed once the work queued on every stream so far has run (queued work may still read
    // or write `data`; cudaFree waits for it), without forcing it: a stream may belong to
    // another rank whose work waits for this one.
    if (data == nullptr) return;
    std::lock_guard<HostLock> lock(host_streams_lock());
    PendingFree pending{data, {}};
    for (const std::shared_ptr<HostStream>& stream : owned_) {
      if (stream->done() < stream->queued()) pending.after.emplace_back(stream, stream->queued());
    }
    pending_.push_back(std::move(pending));
    free_what_ran();
  }
  Status upload(void* device, const void* host, size_t bytes,
                const std::string& /*what*/) const override {
    if (bytes > 0) std::memcpy(device, host, bytes);
    return Status();
  }
  Status download(void* host, const void* device, size_t bytes,
                  const std::string& /*what*/) const override {
    if (bytes > 0) std::memcpy(host, device, bytes);
    return Status();
  }

  Status allocate_mapped(void** host, void** device, size_t bytes,
                         const char* what) const override {
    FUSCO_RETURN_IF_ERROR(allocate(host, bytes, what));
    if (bytes > 0) std::memset(*host, 0, bytes);
    *device = *host;
    return Status();
  }
  void release_mapped(void* host) const override { release(host); }

  Status create_stream(cudaStream_t* stream) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    auto* made = new HostStream;
    // Owned by itself until destroy_stream; events that mark it share it.
    owned_.emplace_back(made);
    *stream = reinterpret_cast<cudaStream_t>(made);
    return Status();
  }
  void destroy_stream(cudaStream_t stream) const override {
    if (stream == nullptr) return;
    std::lock_guard<HostLock> lock(host_streams_lock());
    stream_of(stream)->run_all();  // queued work completes, as on a device
    for (auto it = owned_.begin(); it != owned_.end(); ++it) {
      if (it->get() == stream_of(stream)) {
        owned_.erase(it);
        break;
      }
    }
    free_what_ran();
  }
  Status create_event(cudaEvent_t* event) const override {
    *event = reinterpret_cast<cudaEvent_t>(new HostEvent);
    return Status();
  }
  void destroy_event(cudaEvent_t event) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    delete event_of(event);
  }
  Status record(cudaEvent_t event, cudaStream_t stream, const char* what) const override {
    FUSCO_RETURN_IF_ERROR(not_null(stream, what));
    std::lock_guard<HostLock> lock(host_streams_lock());
    event_of(event)->stream = stream_of(stream)->shared_from_this();
    event_of(event)->position = stream_of(stream)->queued();
    return Status();
  }
  Status wait(cudaStream_t stream, cudaEvent_t event, const char* what) const override {
    FUSCO_RETURN_IF_ERROR(not_null(stream, what));
    std::lock_guard<HostLock> lock(host_streams_lock());
    HostEvent marked = *event_of(event);
    if (marked.stream != nullptr) {
      stream_of(stream)->enqueue([marked] { marked.stream->run_until(marked.position); });
    }
    return Status();
  }
  Status synchronize(cudaStream_t stream, const std::string& what) const override {
    FUSCO_RETURN_IF_ERROR(not_null(stream, what));
    std::lock_guard<HostLock> lock(host_streams_lock());
    stream_of(stream)->run_all();
    free_what_ran();
    return Status();
  }
  bool reached(cudaEvent_t event) const override {
    std::lock_guard<HostLock> lock(host_streams_lock());
    const HostEvent marked = *event_of(event);
    if (marked.stream != nullptr) marked.stream->run_until(marked.position);
    return true;
  }
  Result<bool> idle(cudaStream_t stream, const std::string& what) const override {
    FUSCO_RETURN_IF_ERROR(synchronize(stream, what));
    return true;
  }
  Result<bool> capturing(cudaStream_t stream, const std::string& what) const override {
    FUSCO_RETURN_IF_ERROR(not_null(stream, what));
    return false;
  }

  Status copy(void* to, const void* from, size_t bytes, cudaStream_t stream,
              const std::string& what) const override {
    if (bytes == 0) return Status();
    return enqueue(stream, what, [to, from, bytes] { std::memcpy(to, from, bytes); });
  }
  Status zero(void* to, size_t bytes, cudaStream_t stream, const std::string& what) const override {
    if (bytes == 0) return Status();
    return enqueue(stream, what, [to, bytes] { std::memset(to, 0, bytes); });
  }
  Status copy_rows(void* to, int64_t to_pitch, const void* from, int64_t from_pitch,
                   int64_t row_bytes, int64_t rows, cudaStream_t stream,
                   const std::string& what) const override {
    if (rows <= 0 || row_bytes <= 0) return Status();
    return enqueue(stream, what, [=] {
      for (int64_t r = 0; r < rows; ++r) {
        std::memmove(static_cast<char*>(to) + r * to_pitch,
                     static_cast<const char*>(from) + r * from_pitch,
                     static_cast<size_t>(row_bytes));
      }
    });
  }
  Status gather_rows(const kernels::GatherRowsArgs& args, cudaStream_t stream,
                     const std::string& what) const override {
    if (args.num_rows <= 0 || args.row_bytes <= 0) return Status();
    return enqueue(stream, what, [args] {
      const int64_t pitch = args.src_pitch != 0 ? args.src_pitch : args.row_bytes;
      for (int64_t i = 0; i < args.num_rows; ++i) {
        const kernels::GatherRow move = args.rows[i];
        std::memcpy(static_cast<char*>(args.dst) + move.row * args.row_bytes,
                    static_cast<const char*>(args.src) + move.token * pitch,
                    static_cast<size_t>(args.row_bytes));
      }
    });
  }
  Status zero_ranges(void* rows, int64_t row_bytes, const RowRanges& ranges, cudaStream_t stream,
                     const std::string& what) const override {
    if (ranges.count <= 0 || ranges.most_rows <= 0 || row_bytes <= 0) return Status();
    return enqueue(stream, what, [rows, row_bytes, ranges] {
      for (int64_t i = 0; i < ranges.count; ++i) {
        const int64_t begin = ranges.pairs[2 * i];
        const int64_t end = ranges.pairs[2 * i + 1];
        if (end > begin) {
          std::memset(static_cast<char*>(rows) + begin * row_bytes, 0,
                      static_cast<size_t>((end - begin) * row_bytes));
        }
      }
    });
  }
  Status direct_dispatch(const kernels::DirectDispatchArgs& args, cudaStream_t stream,
                         const std::string& what) const override {
    if (args.num_stores <= 0 || (args.row_bytes <= 0 && args.extra_row_bytes <= 0)) {
      return Status();
    }
    return enqueue(stream, what, [args] { dispatch_rows(args); });
  }
  Status direct_combine(const kernels::DirectCombineArgs& args, cudaStream_t stream,
                        const std::string& what) const override {
    if (args.num_tokens <= 0 || args.hidden <= 0) return Status();
    if (args.row_type < 0 || args.row_type > static_cast<int32_t>(core::RowType::kBFloat16)) {
      return Status(StatusCode::kInternal,
                    what + ": row type " + std::to_string(args.row_type) + " has no combine");
    }
    return enqueue(stream, what, [args] { combine_rows(args); });
  }
  Status layout(const core::LayoutArgs& args, int64_t* bad, cudaStream_t stream,
                const std::string& what) const override {
    return enqueue(stream, what, [args, bad] {
      core::layout_on_host(args);
      core::record_bad_id_on_host(args, bad);
    });
  }
  Status device_planning(const core::DevicePlanningArgs& args, cudaStream_t stream,
                         const std::string& what) const override {
    return enqueue(stream, what, [args] { core::planning_on_host(args); });
  }
  Status publish_row(const int64_t* row, int64_t count, const core::PeerTable& peers, int world,
                     int64_t offset_bytes, cudaStream_t stream,
                     const std::string& what) const override {
    if (count <= 0) return Status();
    return enqueue(stream, what, [=] {
      for (int p = 0; p < world; ++p) {
        auto* to = reinterpret_cast<int64_t*>(peers.base[p] + offset_bytes);
        if (to != row) std::memcpy(to, row, static_cast<size_t>(count) * sizeof(int64_t));
      }
    });
  }
  Status bounded_barrier(const kernels::BoundedBarrierArgs& args, cudaStream_t stream,
                         const std::string& what) const override {
    FUSCO_RETURN_IF_ERROR(not_null(stream, what));
    if (args.count <= 0 || args.count > core::kMaxDirectPeers) {
      return Status(StatusCode::kInternal,
                    what + ": a barrier of " + std::to_string(args.count) + " members");
    }
    std::lock_guard<HostLock> lock(host_streams_lock());
    enqueue_host_barrier(args, *stream_of(stream));
    return Status();
  }
  size_t layout_workspace_bytes(int64_t /*tokens*/, int64_t /*physical*/) const override {
    return 0;  // the host runs keep their scratch in host vectors
  }
  size_t planning_workspace_bytes(int64_t /*tokens*/) const override { return 0; }

 private:
  static constexpr size_t kAlign = 256;  // as cudaMalloc's

  static Status enqueue(cudaStream_t stream, const std::string& what, std::function<void()> work) {
    FUSCO_RETURN_IF_ERROR(not_null(stream, what));
    std::lock_guard<HostLock> lock(host_streams_lock());
    stream_of(stream)->enqueue(std::move(work));
    return Status();
  }

  // Memory to free once every stream it waits for has run to its position.
  struct PendingFree {
    void* data;
    std::vector<std::pair<std::weak_ptr<HostStream>, uint64_t>> after;
  };

  // Frees the pending memory whose streams have run far enough (or are gone). Under the lock.
  void free_what_ran() const {
    auto ran = [](const PendingFree& pending) {
      return std::all_of(pending.after.begin(), pending.after.end(), [](const auto& point) {
        const std::shared_ptr<HostStream> stream = point.first.lock();
        return stream == nullptr || stream->done() >= point.second;
      });
    };
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (ran(*it)) {
        std::free(it->data);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }

  // Streams not yet destroyed, and memory not yet freed (changed under host_streams_lock).
  mutable std::vector<std::shared_ptr<HostStream>> owned_;
  mutable std::vector<PendingFree> pending_;
};

}  // namespace

const DeviceOps& host_ops() {
  static const HostOps ops;
  return ops;
}

}  // namespace fusco::gpu
