#include "baseline/unfused_device.hpp"

#include <string>

#include "direct_combine.hpp"
#include "gpu/cuda_status.hpp"
#include "gpu/device_plan_impl.hpp"
#include "gpu/row_moves.hpp"
#include "gpu/stream_barrier.hpp"

namespace fusco::baseline {

namespace {

Status launched(cudaError_t error, const char* step, size_t rank) {
  return gpu::cuda_status(error,
                          std::string("unfused ") + step + " of rank " + std::to_string(rank));
}

// One block of the all-to-all: `rows` rows from row `from_row` of `from` to row `to_row` of
// `to`, a device-to-device copy on `stream` (what ncclAllToAllv does over NVLink).
Status copy_block(void* to, int64_t to_row, const void* from, int64_t from_row, int64_t rows,
                  int64_t row_bytes, cudaStream_t stream, const char* step, size_t rank) {
  if (rows == 0 || row_bytes == 0) return Status();
  return launched(
      cudaMemcpyAsync(static_cast<char*>(to) + to_row * row_bytes,
                      static_cast<const char*>(from) + from_row * row_bytes,
                      static_cast<size_t>(rows * row_bytes), cudaMemcpyDeviceToDevice, stream),
      step, rank);
}

Status gather(const void* src, void* dst, const gpu::DeviceBuffer& moves, size_t count,
              int64_t row_bytes, cudaStream_t stream, const char* step, size_t rank) {
  return launched(gpu::launch_moves(src, row_bytes, dst, moves, count, row_bytes, stream), step,
                  rank);
}

}  // namespace

Result<std::unique_ptr<UnfusedDevice>> UnfusedDevice::create(
    gpu::DeviceGroup& group, const std::vector<gpu::DevicePlan>& plans, int64_t row_bytes) {
  if (group.on_host()) {
    return Status(StatusCode::kUnsupported,
                  "the unfused GPU baseline runs on a CUDA device, not on the host backend "
                  "(DeviceGroup::create_on_host)");
  }
  std::vector<const detail::PlanData*> data;
  data.reserve(plans.size());
  for (size_t r = 0; r < plans.size(); ++r) {
    if (!plans[r].valid() || !plans[r].host().valid()) {
      return Status(StatusCode::kInvalidArgument,
                    "plans[" + std::to_string(r) +
                        "] is not a plan from DeviceGroup::plan(): the unfused baseline runs host "
                        "plans (plan_on_device's stay on the device)");
    }
    data.push_back(&plans[r].host().data());
  }
  Result<std::vector<gpu::UnfusedDeviceLists>> lists = gpu::unfused_device_lists(data);
  FUSCO_RETURN_IF_ERROR(lists.status());
  std::unique_ptr<UnfusedDevice> baseline(new UnfusedDevice());
  baseline->group_ = &group;
  baseline->plans_ = plans;
  baseline->lists_ = std::move(lists).value();
  baseline->max_row_bytes_ = row_bytes;
  FUSCO_RETURN_IF_ERROR(gpu::cuda_status(cudaSetDevice(group.device()), "cudaSetDevice"));
  const size_t world = plans.size();
  for (size_t r = 0; r < world; ++r) {
    const gpu::UnfusedDeviceLists& mine = baseline->lists_[r];
    Result<gpu::DeviceBuffer> permute = gpu::DeviceBuffer::upload(mine.permute, "baseline lists");
    Result<gpu::DeviceBuffer> resort = gpu::DeviceBuffer::upload(mine.resort, "baseline lists");
    Result<gpu::DeviceBuffer> unsort =
        gpu::DeviceBuffer::upload(gpu::inverse_moves(mine.resort), "baseline lists");
    Result<gpu::DeviceBuffer> terms =
        gpu::DeviceBuffer::upload(mine.return_terms, "baseline lists");
    Result<gpu::DeviceBuffer> token_groups =
        gpu::DeviceBuffer::upload(data[r]->token_group_begin, "baseline lists");
    Result<gpu::DeviceBuffer> group_terms =
        gpu::DeviceBuffer::upload(data[r]->group_term_begin, "baseline lists");
    Result<gpu::DeviceBuffer> send = gpu::DeviceBuffer::allocate(
        mine.permute.size() * static_cast<size_t>(row_bytes), "baseline send buffer");
    Result<gpu::DeviceBuffer> stage = gpu::DeviceBuffer::allocate(
        static_cast<size_t>(mine.stage_offsets[world] * row_bytes), "baseline staging buffer");
    for (const Status& status :
         {permute.status(), resort.status(), unsort.status(), terms.status(), token_groups.status(),
          group_terms.status(), send.status(), stage.status()}) {
      FUSCO_RETURN_IF_ERROR(status);
    }
    baseline->permute_.push_back(std::move(permute).value());
    baseline->resort_.push_back(std::move(resort).value());
    baseline->unsort_.push_back(std::move(unsort).value());
    baseline->terms_.push_back(std::move(terms).value());
    baseline->token_groups_.push_back(std::move(token_groups).value());
    baseline->group_terms_.push_back(std::move(group_terms).value());
    baseline->send_.push_back(std::move(send).value());
    baseline->stage_.push_back(std::move(stage).value());
    cudaEvent_t event = nullptr;
    FUSCO_RETURN_IF_ERROR(gpu::cuda_status(cudaEventCreateWithFlags(&event, cudaEventDisableTiming),
                                           "baseline event"));
    baseline->events_.push_back(event);
    baseline->streams_.push_back(group.stream(static_cast<int>(r)));
  }
  return baseline;
}

UnfusedDevice::~UnfusedDevice() {
  for (cudaEvent_t event : events_) cudaEventDestroy(event);
}

Status UnfusedDevice::barrier() {
  return gpu::stream_barrier(gpu::cuda_ops(), streams_, events_, "baseline barrier");
}

Status UnfusedDevice::dispatch(const std::vector<TensorView>& x,
                               const std::vector<TensorView>& recv) {
  const size_t world = lists_.size();
  const int64_t row_bytes = x.front().shape[1] * static_cast<int64_t>(dtype_size(x.front().dtype));
  if (row_bytes > max_row_bytes_) {
    return Status(StatusCode::kInvalidArgument,
                  "x rows are " + std::to_string(row_bytes) + " bytes, more than the " +
                      std::to_string(max_row_bytes_) + " the baseline was created for");
  }
  for (size_t r = 0; r < world; ++r) {  // permute
    FUSCO_RETURN_IF_ERROR(gather(x[r].data, send_[r].data(), permute_[r], lists_[r].permute.size(),
                                 row_bytes, group_->stream(static_cast<int>(r)), "permute", r));
  }
  FUSCO_RETURN_IF_ERROR(barrier());
  for (size_t d = 0; d < world; ++d) {  // all-to-all: every receiver pulls its blocks
    cudaStream_t stream = group_->stream(static_cast<int>(d));
    for (size_t s = 0; s < world; ++s) {
      FUSCO_RETURN_IF_ERROR(copy_block(stage_[d].data(), lists_[d].stage_offsets[s],
                                       send_[s].data(), lists_[s].send_offsets[d],
                                       lists_[d].stage_offsets[s + 1] - lists_[d].stage_offsets[s],
                                       row_bytes, stream, "all-to-all", d));
    }
    FUSCO_RETURN_IF_ERROR(
        gpu::cuda_ops().zero_ranges(recv[d].data, row_bytes, plans_[d].impl().programme.padding,
                                    stream, "unfused dispatch of rank " + std::to_string(d)));
    FUSCO_RETURN_IF_ERROR(gather(stage_[d].data(), recv[d].data, resort_[d],
                                 lists_[d].resort.size(), row_bytes, stream, "re-sort", d));
  }
  return barrier();  // no rank refills its send buffer while a peer still reads it
}

Status UnfusedDevice::combine(const std::vector<TensorView>& expert_out,
                              const std::vector<TensorView>& topk_weights,
                              const std::vector<TensorView>& out) {
  const size_t world = lists_.size();
  const TensorView& first = expert_out.front();
  const int64_t row_bytes = first.shape[1] * static_cast<int64_t>(dtype_size(first.dtype));
  if (row_bytes > max_row_bytes_) {
    return Status(StatusCode::kInvalidArgument, "expert_out rows exceed the baseline's buffers");
  }
  for (size_t d = 0; d < world; ++d) {  // un-sort into staging order
    FUSCO_RETURN_IF_ERROR(gather(expert_out[d].data, stage_[d].data(), unsort_[d],
                                 lists_[d].resort.size(), row_bytes,
                                 group_->stream(static_cast<int>(d)), "un-sort", d));
  }
  FUSCO_RETURN_IF_ERROR(barrier());
  for (size_t s = 0; s < world; ++s) {  // blocks back, then unpermute with the weighted sum
    cudaStream_t stream = group_->stream(static_cast<int>(s));
    for (size_t d = 0; d < world; ++d) {
      FUSCO_RETURN_IF_ERROR(copy_block(send_[s].data(), lists_[s].send_offsets[d], stage_[d].data(),
                                       lists_[d].stage_offsets[s],
                                       lists_[s].send_offsets[d + 1] - lists_[s].send_offsets[d],
                                       row_bytes, stream, "all-to-all back", s));
    }
    const detail::PlanData& plan = plans_[s].host().data();
    kernels::DirectCombineArgs args;
    args.num_tokens = plan.num_tokens;
    args.hidden = first.shape[1];
    args.row_type = static_cast<int32_t>(first.dtype);
    args.topk = plan.topk;
    args.token_group_begin = token_groups_[s].as<int64_t>();
    args.group_term_begin = group_terms_[s].as<int64_t>();
    args.terms = terms_[s].as<core::DirectTerm>();
    args.topk_weights = static_cast<const float*>(topk_weights[s].data);
    args.expert_out.base[0] = static_cast<char*>(send_[s].data());
    args.expert_out.pitch[0] = row_bytes;
    args.out = out[s].data;
    FUSCO_RETURN_IF_ERROR(launched(kernels::launch_direct_combine(args, stream), "unpermute", s));
  }
  return barrier();
}

}  // namespace fusco::baseline
