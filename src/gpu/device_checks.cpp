#include "gpu/device_checks.hpp"

namespace fusco::gpu {

namespace {

std::string ranked(const char* arg, size_t rank) {
  return std::string(arg) + "[" + std::to_string(rank) + "]";
}

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

Status check_device_dispatch(const std::vector<const detail::PlanData*>& plans,
                             const std::vector<TensorView>& x,
                             const std::vector<TensorView>& recv) {
  const int world = static_cast<int>(plans.size());
  FUSCO_RETURN_IF_ERROR(check_rank_count("x", x.size(), world));
  FUSCO_RETURN_IF_ERROR(check_rank_count("recv", recv.size(), world));
  const int64_t hidden = x.front().ndim == 2 ? x.front().shape[1] : 0;
  for (size_t r = 0; r < plans.size(); ++r) {
    FUSCO_RETURN_IF_ERROR(check_shape(ranked("x", r), x[r], plans[r]->num_tokens, hidden, true));
    FUSCO_RETURN_IF_ERROR(check_dtype(ranked("x", r), x[r], x.front().dtype));
    FUSCO_RETURN_IF_ERROR(
        check_shape(ranked("recv", r), recv[r], plans[r]->num_recv_rows, hidden, false));
    FUSCO_RETURN_IF_ERROR(check_dtype(ranked("recv", r), recv[r], x.front().dtype));
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
  if (!dtype_supports_combine(first.dtype) || first.dtype == DType::kFloat64) {
    return Status(StatusCode::kUnsupported, "expert_out[0] is " + first.describe() +
                                                ": combine on the GPU sums fp32, fp16 or bf16");
  }
  for (size_t r = 0; r < plans.size(); ++r) {
    const detail::PlanData& plan = *plans[r];
    FUSCO_RETURN_IF_ERROR(
        check_shape(ranked("expert_out", r), expert_out[r], plan.num_recv_rows, hidden, true));
    FUSCO_RETURN_IF_ERROR(check_dtype(ranked("expert_out", r), expert_out[r], first.dtype));
    FUSCO_RETURN_IF_ERROR(
        check_shape(ranked("topk_weights", r), topk_weights[r], plan.num_tokens, plan.topk, false));
    FUSCO_RETURN_IF_ERROR(check_dtype(ranked("topk_weights", r), topk_weights[r], DType::kFloat32));
    FUSCO_RETURN_IF_ERROR(check_shape(ranked("out", r), out[r], plan.num_tokens, hidden, false));
    FUSCO_RETURN_IF_ERROR(check_dtype(ranked("out", r), out[r], first.dtype));
  }
  return Status();
}

}  // namespace fusco::gpu
