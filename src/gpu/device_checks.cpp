#include "gpu/device_checks.hpp"

#include "core/layout.hpp"

namespace fusco::gpu {

namespace {

Status check_shape(const std::string& name, const TensorView& view, int64_t rows, int64_t cols,
                   bool strided_rows_ok) {
  FUSCO_RETURN_IF_ERROR(check_matrix(view, name.c_str(), strided_rows_ok, Device::kCuda));
  if (view.shape[0] != rows || view.shape[1] != cols) {
    return Status(StatusCode::kInvalidArgument, name + " is " + view.describe() + " but must be [" +
                                                    std::to_string(rows) + ", " +
                                                    std::to_string(cols) + "]");
  }
  return Status();
}

Status check_dtype(const std::string& name, const TensorView& view, DType want) {
  if (view.dtype != want) {
    return Status(StatusCode::kInvalidArgument,
                  name + " is " + view.describe() + " but must have dtype " + dtype_name(want));
  }
  return Status();
}

}  // namespace

Status check_rank_count(const char* arg, size_t count, int world) {
  if (count != static_cast<size_t>(world)) {
    return Status(StatusCode::kInvalidArgument, std::string(arg) + " has " + std::to_string(count) +
                                                    " entries but the group has " +
                                                    std::to_string(world) + " ranks");
  }
  return Status();
}

Status check_rank_dispatch(const detail::PlanData& plan, const TensorView& x,
                           const TensorView& recv, int64_t hidden, DType dtype,
                           const std::string& suffix) {
  const std::string x_name = "x" + suffix;
  const std::string recv_name = "recv" + suffix;
  FUSCO_RETURN_IF_ERROR(check_shape(x_name, x, plan.num_tokens, hidden, true));
  FUSCO_RETURN_IF_ERROR(check_dtype(x_name, x, dtype));
  FUSCO_RETURN_IF_ERROR(check_shape(recv_name, recv, plan.num_recv_rows, hidden, false));
  return check_dtype(recv_name, recv, dtype);
}

Status check_rank_companion(const detail::PlanData& plan, const TensorView& extra,
                            const TensorView& extra_recv, int64_t cols, DType dtype,
                            const std::string& suffix) {
  FUSCO_RETURN_IF_ERROR(check_shape("extra" + suffix, extra, plan.num_tokens, cols, true));
  FUSCO_RETURN_IF_ERROR(check_dtype("extra" + suffix, extra, dtype));
  FUSCO_RETURN_IF_ERROR(
      check_shape("extra_recv" + suffix, extra_recv, plan.num_recv_rows, cols, false));
  return check_dtype("extra_recv" + suffix, extra_recv, dtype);
}

Status check_rank_combine(const detail::PlanData& plan, const TensorView& expert_out,
                          const TensorView& topk_weights, const TensorView& out, int64_t hidden,
                          DType dtype, const std::string& suffix) {
  if (!dtype_supports_combine(dtype) || dtype == DType::kFloat64) {
    return Status(StatusCode::kUnsupported, "expert_out" + suffix + " is " + expert_out.describe() +
                                                ": combine on the GPU sums fp32, fp16 or bf16");
  }
  const std::string y_name = "expert_out" + suffix;
  const std::string w_name = "topk_weights" + suffix;
  const std::string out_name = "out" + suffix;
  FUSCO_RETURN_IF_ERROR(check_shape(y_name, expert_out, plan.num_recv_rows, hidden, true));
  FUSCO_RETURN_IF_ERROR(check_dtype(y_name, expert_out, dtype));
  FUSCO_RETURN_IF_ERROR(check_shape(w_name, topk_weights, plan.num_tokens, plan.topk, false));
  FUSCO_RETURN_IF_ERROR(check_dtype(w_name, topk_weights, DType::kFloat32));
  FUSCO_RETURN_IF_ERROR(check_shape(out_name, out, plan.num_tokens, hidden, false));
  return check_dtype(out_name, out, dtype);
}

Status check_outside_window(const TensorView& expert_out, const void* window, size_t window_bytes) {
  const int64_t row_bytes =
      expert_out.ndim == 2
          ? expert_out.shape[1] * static_cast<int64_t>(dtype_size(expert_out.dtype))
          : 0;
  if (expert_out.data == window && expert_out.row_pitch_bytes() == row_bytes) return Status();
  const int64_t rows = expert_out.ndim == 2 ? expert_out.shape[0] : 0;
  if (rows == 0 || row_bytes == 0) return Status();
  const auto first = reinterpret_cast<uintptr_t>(expert_out.data);
  const auto end =
      first + static_cast<uintptr_t>((rows - 1) * expert_out.row_pitch_bytes() + row_bytes);
  const auto window_first = reinterpret_cast<uintptr_t>(window);
  if (end <= window_first || first >= window_first + window_bytes) return Status();
  return Status(StatusCode::kInvalidArgument,
                "expert_out is " + expert_out.describe() + " with rows " +
                    std::to_string(expert_out.row_pitch_bytes()) +
                    " bytes apart inside the expert-output window, which combine would copy onto "
                    "itself; write the expert outputs into expert_out_buffer()'s own view (rows " +
                    std::to_string(row_bytes) + " bytes apart, from its first row) or outside it");
}

Status check_device_dispatch(const std::vector<const detail::PlanData*>& plans,
                             const std::vector<TensorView>& x,
                             const std::vector<TensorView>& recv) {
  const int world = static_cast<int>(plans.size());
  FUSCO_RETURN_IF_ERROR(check_rank_count("x", x.size(), world));
  FUSCO_RETURN_IF_ERROR(check_rank_count("recv", recv.size(), world));
  const int64_t hidden = x.front().ndim == 2 ? x.front().shape[1] : 0;
  for (size_t r = 0; r < plans.size(); ++r) {
    FUSCO_RETURN_IF_ERROR(check_rank_dispatch(*plans[r], x[r], recv[r], hidden, x.front().dtype,
                                              "[" + std::to_string(r) + "]"));
  }
  return Status();
}

Status check_device_combine(const std::vector<const detail::PlanData*>& plans,
                            const std::vector<TensorView>& expert_out,
                            const std::vector<TensorView>& topk_weights,
                            const std::vector<TensorView>& out) {
  const int world = static_cast<int>(plans.size());
  FUSCO_RETURN_IF_ERROR(check_rank_count("expert_out", expert_out.size(), world));
  FUSCO_RETURN_IF_ERROR(check_rank_count("topk_weights", topk_weights.size(), world));
  FUSCO_RETURN_IF_ERROR(check_rank_count("out", out.size(), world));
  const TensorView& first = expert_out.front();
  const int64_t hidden = first.ndim == 2 ? first.shape[1] : 0;
  for (size_t r = 0; r < plans.size(); ++r) {
    FUSCO_RETURN_IF_ERROR(check_rank_combine(*plans[r], expert_out[r], topk_weights[r], out[r],
                                             hidden, first.dtype, "[" + std::to_string(r) + "]"));
  }
  return Status();
}

namespace {

Status unsupported(const std::string& why) {
  return Status(StatusCode::kUnsupported,
                "plan_on_device: " + why + "; DeviceGroup::plan() has it");
}

}  // namespace

Status check_device_planning(const PlanOptions& options, const core::ResolvedExpertMap& map,
                             int64_t max_recv_rows) {
  FUSCO_RETURN_IF_ERROR(options.validate());
  const RecvLayout& layout = options.layout;
  if (layout.kind == RecvLayout::Kind::kRankMajor) {
    return unsupported(
        "options.layout is rank-major, which the device planner does not lay out (it plans "
        "expert-major and capacity layouts)");
  }
  if (layout.kind == RecvLayout::Kind::kCapacity &&
      layout.overflow != RecvLayout::Overflow::kDrop) {
    return unsupported(
        "options.layout.overflow = error needs the counts on the host (rows past the "
        "capacity are dropped and counted in device_dropped_per_expert() with kDrop)");
  }
  if (map.replicated) {
    return unsupported("expert_map has replicated experts, whose replica choice runs on the host");
  }
  if (max_recv_rows < 0 || (max_recv_rows > 0 && layout.kind == RecvLayout::Kind::kCapacity)) {
    return Status(StatusCode::kInvalidArgument,
                  "plan_on_device: max_recv_rows = " + std::to_string(max_recv_rows) +
                      " must be 0 (the most that can arrive) or, for an expert-major layout, "
                      "the rows of every receive buffer (a capacity layout's are local experts "
                      "x capacity)");
  }
  return Status();
}

Status check_device_ids(const TensorView& ids, const std::string& name) {
  FUSCO_RETURN_IF_ERROR(check_matrix(ids, name.c_str(), false, Device::kCuda));
  if (ids.dtype != DType::kInt32 && ids.dtype != DType::kInt64) {
    return Status(StatusCode::kInvalidArgument,
                  name + " is " + ids.describe() + " but must be int32 or int64");
  }
  if (ids.shape[1] < 1 || ids.shape[1] > core::kMaxTopk || ids.shape[0] >= INT32_MAX) {
    return Status(StatusCode::kInvalidArgument,
                  name + " is " + ids.describe() + " but k must be in [1, " +
                      std::to_string(core::kMaxTopk) + "] and T below 2^31 - 1");
  }
  return Status();
}

Status check_device_routing(const std::vector<TensorView>& topk_idx) {
  for (size_t r = 0; r < topk_idx.size(); ++r) {
    const std::string name = "topk_idx[" + std::to_string(r) + "]";
    const TensorView& ids = topk_idx[r];
    FUSCO_RETURN_IF_ERROR(check_device_ids(ids, name));
    if (ids.shape[1] != topk_idx.front().shape[1]) {
      return Status(StatusCode::kInvalidArgument,
                    name + " is " + ids.describe() + " but topk_idx[0] has k = " +
                        std::to_string(topk_idx.front().shape[1]) + " (k must agree)");
    }
  }
  return Status();
}

}  // namespace fusco::gpu
