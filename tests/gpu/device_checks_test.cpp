// The GPU engine's argument checks (src/gpu/device_checks.cpp) run on the host before anything
// is enqueued, so they are tested here with device views that are never dereferenced: every
// error names the argument, its rank and the expected shape or dtype.

#include "gpu/device_checks.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/layout.hpp"
#include "gpu/host_routing.hpp"

namespace fusco::gpu {
namespace {

// A device view of a fake (never dereferenced) 256-byte aligned address.
TensorView device_view(DType dtype, int64_t rows, int64_t cols) {
  TensorView view =
      TensorView::host(reinterpret_cast<void*>(uintptr_t{1} << 20), dtype, {rows, cols});
  view.device = Device::kCuda;
  return view;
}

detail::PlanData plan_of(int64_t tokens, int64_t recv_rows, int topk) {
  detail::PlanData plan;
  plan.num_tokens = tokens;
  plan.num_recv_rows = recv_rows;
  plan.topk = topk;
  return plan;
}

void expect_error(const Status& status, StatusCode code, const std::string& text) {
  EXPECT_EQ(status.code(), code) << status.to_string();
  EXPECT_NE(status.message().find(text), std::string::npos) << status.message();
}

TEST(DeviceChecks, Dispatch_NamesTheRankTheArgumentAndTheExpectedShape) {
  const detail::PlanData a = plan_of(4, 10, 2);
  const detail::PlanData b = plan_of(3, 7, 2);
  const std::vector<const detail::PlanData*> plans = {&a, &b};
  const DType bf16 = DType::kBFloat16;
  EXPECT_TRUE(check_device_dispatch(plans, {device_view(bf16, 4, 8), device_view(bf16, 3, 8)},
                                    {device_view(bf16, 10, 8), device_view(bf16, 7, 8)})
                  .ok());
  expect_error(check_device_dispatch(plans, {device_view(bf16, 4, 8)}, {}),
               StatusCode::kInvalidArgument, "x has 1 entries but the group has 2 ranks");
  expect_error(check_device_dispatch(plans, {device_view(bf16, 4, 8), device_view(bf16, 3, 8)},
                                     {device_view(bf16, 10, 8), device_view(bf16, 8, 8)}),
               StatusCode::kInvalidArgument, "recv[1] is [8, 8] bf16 cuda but must be [7, 8]");
  expect_error(check_device_dispatch(plans, {device_view(bf16, 4, 8), device_view(bf16, 3, 9)},
                                     {device_view(bf16, 10, 8), device_view(bf16, 7, 8)}),
               StatusCode::kInvalidArgument, "x[1] is [3, 9] bf16 cuda but must be [3, 8]");
  TensorView on_host = device_view(bf16, 4, 8);
  on_host.device = Device::kHost;
  expect_error(check_device_dispatch(plans, {on_host, device_view(bf16, 3, 8)},
                                     {device_view(bf16, 10, 8), device_view(bf16, 7, 8)}),
               StatusCode::kInvalidArgument, "x[0] must be CUDA device memory");
  expect_error(
      check_device_dispatch(plans, {device_view(bf16, 4, 8), device_view(bf16, 3, 8)},
                            {device_view(bf16, 10, 8), device_view(DType::kFloat16, 7, 8)}),
      StatusCode::kInvalidArgument, "recv[1] is [7, 8] fp16 cuda but must have dtype bf16");
}

TEST(DeviceChecks, Combine_RequiresFp32WeightsAndACombinableDtype) {
  const detail::PlanData a = plan_of(4, 10, 2);
  const std::vector<const detail::PlanData*> plans = {&a};
  const DType fp16 = DType::kFloat16;
  EXPECT_TRUE(check_device_combine(plans, {device_view(fp16, 10, 8)},
                                   {device_view(DType::kFloat32, 4, 2)}, {device_view(fp16, 4, 8)})
                  .ok());
  expect_error(
      check_device_combine(plans, {device_view(fp16, 10, 8)}, {device_view(DType::kFloat64, 4, 2)},
                           {device_view(fp16, 4, 8)}),
      StatusCode::kInvalidArgument, "topk_weights[0] is [4, 2] fp64 cuda but must have dtype fp32");
  expect_error(check_device_combine(plans, {device_view(DType::kFloat64, 10, 8)},
                                    {device_view(DType::kFloat32, 4, 2)},
                                    {device_view(DType::kFloat64, 4, 8)}),
               StatusCode::kUnsupported, "combine on the GPU sums fp32, fp16 or bf16");
  expect_error(
      check_device_combine(plans, {device_view(fp16, 10, 8)}, {device_view(DType::kFloat32, 4, 3)},
                           {device_view(fp16, 4, 8)}),
      StatusCode::kInvalidArgument, "topk_weights[0] is [4, 3] fp32 cuda but must be [4, 2]");
}

TEST(DeviceChecks, Companion_RowsMatchThePlanAndOneDtype) {
  const detail::PlanData a = plan_of(4, 10, 2);
  EXPECT_TRUE(check_rank_companion(a, device_view(DType::kFloat32, 4, 3),
                                   device_view(DType::kFloat32, 10, 3), 3, DType::kFloat32, "[0]")
                  .ok());
  expect_error(check_rank_companion(a, device_view(DType::kFloat32, 4, 3),
                                    device_view(DType::kFloat32, 9, 3), 3, DType::kFloat32, "[0]"),
               StatusCode::kInvalidArgument,
               "extra_recv[0] is [9, 3] fp32 cuda but must be [10, 3]");
}

TEST(DeviceChecks, ExpertOutInsideTheWindowInAnotherLayout_IsRefused) {
  // Review defect 13: combine's copy into the window would have copied it onto itself.
  const TensorView window = device_view(DType::kBFloat16, 8, 16);  // rows of 32 bytes
  const size_t window_bytes = 8 * 32;
  EXPECT_TRUE(check_outside_window(window, window.data, window_bytes).ok());
  TensorView strided = window;
  strided.shape[0] = 4;
  strided.row_stride = 32;  // every other row of the window
  expect_error(check_outside_window(strided, window.data, window_bytes),
               StatusCode::kInvalidArgument, "rows 64 bytes apart inside the expert-output window");
  TensorView shifted = window;
  shifted.shape[0] = 2;
  shifted.data = static_cast<char*>(window.data) + 32;  // starts at the window's second row
  expect_error(check_outside_window(shifted, window.data, window_bytes),
               StatusCode::kInvalidArgument, "expert_out_buffer()'s own view");
  TensorView outside = window;
  outside.data = static_cast<char*>(window.data) + window_bytes;  // right after it
  EXPECT_TRUE(check_outside_window(outside, window.data, window_bytes).ok());
  outside.data = static_cast<char*>(window.data) - 8 * 32;  // right before it
  EXPECT_TRUE(check_outside_window(outside, window.data, window_bytes).ok());
  TensorView straddling = window;
  straddling.data = static_cast<char*>(window.data) - 4 * 32;  // its last half inside
  expect_error(check_outside_window(straddling, window.data, window_bytes),
               StatusCode::kInvalidArgument, "inside the expert-output window");
}

TEST(HostRouting, HostViewsPassThrough_DeviceViewsMustBeContiguousIdMatrices) {
  std::vector<int32_t> ids = {0, 1, 2, 3};
  std::vector<std::byte> storage;
  const TensorView host = TensorView::host(ids.data(), DType::kInt32, {2, 2});
  Result<TensorView> same = host_routing(gpu::cuda_ops(), host, storage, "topk_idx");
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same.value().data, ids.data());
  EXPECT_TRUE(storage.empty());
  expect_error(
      host_routing(gpu::cuda_ops(), device_view(DType::kFloat32, 2, 2), storage, "topk_idx[1]")
          .status(),
      StatusCode::kInvalidArgument,
      "topk_idx[1] is [2, 2] fp32 cuda but must be a contiguous 2-D int32 or int64");
  TensorView strided = device_view(DType::kInt64, 2, 2);
  strided.row_stride = 4;
  expect_error(host_routing(gpu::cuda_ops(), strided, storage, "topk_idx").status(),
               StatusCode::kInvalidArgument,
               "must be a contiguous 2-D int32 or int64 tensor [T, k]");
}

TEST(DeviceChecks, PlanningOnTheDevice_ExpertMajorOrDroppingCapacity_NoReplicas) {
  const core::ResolvedExpertMap plain = core::resolve_expert_map({}, 8, 2).value();
  PlanOptions options;
  options.layout = RecvLayout::capacity_bounded(16);
  EXPECT_TRUE(check_device_planning(options, plain, 0).ok());
  options.layout = RecvLayout::expert_major(4);
  EXPECT_TRUE(check_device_planning(options, plain, 0).ok());
  EXPECT_TRUE(check_device_planning(options, plain, 100).ok());
  expect_error(check_device_planning(options, plain, -1), StatusCode::kInvalidArgument,
               "plan_on_device: max_recv_rows = -1 must be 0 (the most that can arrive) or");
  options.layout = RecvLayout::rank_major();
  expect_error(check_device_planning(options, plain, 0), StatusCode::kUnsupported,
               "plan_on_device: options.layout is rank-major, which the device planner does not "
               "lay out (it plans expert-major and capacity layouts); DeviceGroup::plan() has it");
  options.layout = RecvLayout::capacity_bounded(16);
  expect_error(check_device_planning(options, plain, 100), StatusCode::kInvalidArgument,
               "a capacity layout's are local experts x capacity");
  options.layout = RecvLayout::capacity_bounded(16, RecvLayout::Overflow::kError);
  expect_error(check_device_planning(options, plain, 0), StatusCode::kUnsupported,
               "options.layout.overflow = error needs the counts on the host");
  options.layout = RecvLayout::capacity_bounded(16);
  options.layout.capacity = -1;
  expect_error(check_device_planning(options, plain, 0), StatusCode::kInvalidArgument, "capacity");
  const std::vector<std::vector<int32_t>> copies = {{0, 1}, {1}};
  const core::ResolvedExpertMap replicated =
      core::resolve_expert_map(ExpertMap::with_replicas(copies), 2, 2).value();
  options.layout = RecvLayout::capacity_bounded(16);
  expect_error(check_device_planning(options, replicated, 0), StatusCode::kUnsupported,
               "expert_map has replicated experts");
}

TEST(DeviceChecks, PlanningOnTheDevice_RoutingIsDeviceIdsWithOneK) {
  EXPECT_TRUE(
      check_device_routing({device_view(DType::kInt32, 5, 8), device_view(DType::kInt64, 0, 8)})
          .ok());
  expect_error(
      check_device_routing({device_view(DType::kInt64, 5, 8), device_view(DType::kFloat32, 5, 8)}),
      StatusCode::kInvalidArgument, "topk_idx[1] is [5, 8] fp32 cuda but must be int32 or int64");
  expect_error(
      check_device_routing({device_view(DType::kInt64, 5, 8), device_view(DType::kInt64, 5, 6)}),
      StatusCode::kInvalidArgument,
      "topk_idx[1] is [5, 6] int64 cuda but topk_idx[0] has k = 8 (k must agree)");
  expect_error(check_device_routing({device_view(DType::kInt64, 5, 0)}),
               StatusCode::kInvalidArgument, "k must be in [1, 1024]");
  std::vector<int64_t> ids(8);
  expect_error(check_device_routing({TensorView::host(ids.data(), DType::kInt64, {1, 8})}),
               StatusCode::kInvalidArgument, "topk_idx[0] must be CUDA device memory");
}

}  // namespace
}  // namespace fusco::gpu
