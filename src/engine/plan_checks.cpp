#include "engine/plan_checks.hpp"

#include <algorithm>
#include <string>

namespace fusco::engine {

namespace {

Status shape_error(const char* arg, const TensorView& view, const std::string& expected) {
  return Status(StatusCode::kInvalidArgument,
                std::string(arg) + " is " + view.describe() + " but must be " + expected);
}

std::string dims(int64_t rows, int64_t cols) {
  return "[" + std::to_string(rows) + ", " + std::to_string(cols) + "]";
}

// A row (plus its companion row, `extra_bytes`) must fit one staging slot of the transport.
Status check_row_fits(const transport::Transport& transport, const char* arg,
                      const TensorView& view, size_t extra_bytes = 0) {
  const size_t row_bytes = static_cast<size_t>(view.shape[1]) * dtype_size(view.dtype);
  if (row_bytes + extra_bytes > transport.max_chunk_bytes()) {
    return Status(StatusCode::kInvalidArgument,
                  std::string(arg) + " rows are " + std::to_string(row_bytes) + " bytes (" +
                      std::to_string(view.shape[1]) + " x " + dtype_name(view.dtype) +
                      (extra_bytes > 0 ? ", plus " + std::to_string(extra_bytes) +
                                             " bytes of the companion tensor"
                                       : std::string()) +
                      "), more than the " + std::to_string(transport.max_chunk_bytes()) +
                      " bytes a staging slot of this transport holds");
  }
  return Status();
}

Status check_extra_args(const detail::PlanData& plan, const TensorView& extra,
                        const TensorView& extra_recv) {
  FUSCO_RETURN_IF_ERROR(check_matrix(extra, "extra", /*strided_rows_ok=*/true));
  FUSCO_RETURN_IF_ERROR(check_matrix(extra_recv, "extra_recv"));
  const int64_t cols = extra.shape[1];
  if (extra.shape[0] != plan.num_tokens) {
    return shape_error("extra", extra,
                       dims(plan.num_tokens, cols) + " (one row per token of the plan)");
  }
  if (extra_recv.shape[0] != plan.num_recv_rows || extra_recv.shape[1] != cols) {
    return shape_error(
        "extra_recv", extra_recv,
        dims(plan.num_recv_rows, cols) + " (plan.num_recv_rows() x columns of extra)");
  }
  if (extra_recv.dtype != extra.dtype) {
    return Status(StatusCode::kInvalidArgument,
                  std::string("extra_recv dtype ") + dtype_name(extra_recv.dtype) +
                      " differs from extra dtype " + dtype_name(extra.dtype));
  }
  return Status();
}

}  // namespace

int64_t rows_per_chunk(const transport::Transport& transport, const detail::PlanData& plan,
                       size_t row_bytes) {
  const size_t chunk =
      std::min(static_cast<size_t>(plan.options.chunk_bytes), transport.max_chunk_bytes());
  return static_cast<int64_t>(std::max<size_t>(1, chunk / std::max<size_t>(1, row_bytes)));
}

Status check_plan_owner(const transport::Transport& transport, const detail::PlanData* plan) {
  if (plan == nullptr) {
    return Status(StatusCode::kInvalidArgument, "plan is empty (make one with Communicator::plan)");
  }
  if (plan->group_id != transport.group_id() || plan->rank != transport.rank()) {
    return Status(StatusCode::kInvalidArgument,
                  "plan was made by rank " + std::to_string(plan->rank) + " of another group " +
                      "or rank; this is rank " + std::to_string(transport.rank()));
  }
  return Status();
}

Status check_dispatch_args(const transport::Transport& transport, const detail::PlanData* plan,
                           const TensorView& x, const TensorView& recv, const TensorView& extra,
                           const TensorView& extra_recv) {
  FUSCO_RETURN_IF_ERROR(check_plan_owner(transport, plan));
  FUSCO_RETURN_IF_ERROR(check_matrix(x, "x", /*strided_rows_ok=*/true));
  FUSCO_RETURN_IF_ERROR(check_matrix(recv, "recv"));
  size_t extra_bytes = 0;
  if (has_extra(extra, extra_recv)) {
    FUSCO_RETURN_IF_ERROR(check_extra_args(*plan, extra, extra_recv));
    extra_bytes = static_cast<size_t>(extra.shape[1]) * dtype_size(extra.dtype);
  }
  FUSCO_RETURN_IF_ERROR(check_row_fits(transport, "x", x, extra_bytes));
  const int64_t hidden = x.shape[1];
  if (x.shape[0] != plan->num_tokens) {
    return shape_error("x", x,
                       dims(plan->num_tokens, hidden) + " (the plan has " +
                           std::to_string(plan->num_tokens) + " tokens)");
  }
  if (recv.shape[0] != plan->num_recv_rows || recv.shape[1] != hidden) {
    return shape_error(
        "recv", recv,
        dims(plan->num_recv_rows, hidden) + " (plan.num_recv_rows() x hidden size of x)");
  }
  if (recv.dtype != x.dtype) {
    return Status(StatusCode::kInvalidArgument, std::string("recv dtype ") +
                                                    dtype_name(recv.dtype) +
                                                    " differs from x dtype " + dtype_name(x.dtype));
  }
  return Status();
}

Status check_combine_args(const transport::Transport& transport, const detail::PlanData* plan,
                          const TensorView& expert_out, const TensorView& topk_weights,
                          const TensorView& out) {
  FUSCO_RETURN_IF_ERROR(check_plan_owner(transport, plan));
  FUSCO_RETURN_IF_ERROR(check_matrix(expert_out, "expert_out", /*strided_rows_ok=*/true));
  FUSCO_RETURN_IF_ERROR(check_matrix(topk_weights, "topk_weights"));
  FUSCO_RETURN_IF_ERROR(check_matrix(out, "out"));
  if (!dtype_supports_combine(expert_out.dtype)) {
    return Status(StatusCode::kUnsupported, std::string("combine of expert_out dtype ") +
                                                dtype_name(expert_out.dtype) +
                                                " is not offered; use fp32, fp16, bf16 or fp64");
  }
  FUSCO_RETURN_IF_ERROR(check_row_fits(transport, "expert_out", expert_out));
  const int64_t hidden = expert_out.shape[1];
  if (expert_out.shape[0] != plan->num_recv_rows) {
    return shape_error("expert_out", expert_out,
                       dims(plan->num_recv_rows, hidden) + " (plan.num_recv_rows() rows)");
  }
  const DType weight_dtype =
      expert_out.dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
  if (topk_weights.dtype != weight_dtype) {
    return Status(StatusCode::kInvalidArgument,
                  std::string("topk_weights must be ") + dtype_name(weight_dtype) + " with " +
                      dtype_name(expert_out.dtype) + " expert_out, got " +
                      dtype_name(topk_weights.dtype));
  }
  if (topk_weights.shape[0] != plan->num_tokens || topk_weights.shape[1] != plan->topk) {
    return shape_error("topk_weights", topk_weights,
                       dims(plan->num_tokens, plan->topk) + " (the plan's tokens x topk)");
  }
  if (out.shape[0] != plan->num_tokens || out.shape[1] != hidden) {
    return shape_error("out", out, dims(plan->num_tokens, hidden) + " (tokens x hidden size)");
  }
  if (out.dtype != expert_out.dtype) {
    return Status(StatusCode::kInvalidArgument, std::string("out dtype ") + dtype_name(out.dtype) +
                                                    " differs from expert_out dtype " +
                                                    dtype_name(expert_out.dtype));
  }
  return Status();
}

}  // namespace fusco::engine
