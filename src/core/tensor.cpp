#include "fusco/tensor.hpp"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>

namespace fusco {

TensorView TensorView::host(void* data, DType dtype, std::initializer_list<int64_t> shape) {
  TensorView view;
  view.data = data;
  view.dtype = dtype;
  view.ndim = static_cast<int>(shape.size());
  int dim = 0;
  for (int64_t extent : shape) {
    if (dim < kMaxDims) {
      view.shape[dim] = extent;
    }
    ++dim;
  }
  return view;
}

int64_t TensorView::numel() const {
  int64_t count = 1;
  for (int dim = 0; dim < ndim && dim < kMaxDims; ++dim) {
    count *= shape[dim];
  }
  return count;
}

std::string TensorView::describe() const {
  std::string text = "[";
  for (int dim = 0; dim < ndim && dim < kMaxDims; ++dim) {
    text += (dim > 0 ? ", " : "") + std::to_string(shape[dim]);
  }
  text += "] ";
  text += dtype_name(dtype);
  text += device == Device::kHost ? " host" : " cuda";
  if (row_stride != 0) {
    text += ", row stride " + std::to_string(row_stride);
  }
  return text;
}

Status check_matrix(const TensorView& view, const char* arg, bool strided_rows_ok, Device device) {
  const std::string name(arg);
  if (!dtype_is_valid(static_cast<int32_t>(view.dtype))) {
    return Status(StatusCode::kInvalidArgument,
                  name + ": dtype code " + std::to_string(static_cast<int32_t>(view.dtype)) +
                      " is not a fusco::DType");
  }
  if (view.ndim != 2) {
    return Status(StatusCode::kInvalidArgument,
                  name + " must be 2-D, got ndim " + std::to_string(view.ndim));
  }
  if (view.device != device) {
    return Status(StatusCode::kInvalidArgument,
                  name + " must be " + (device == Device::kHost ? "host" : "CUDA device") +
                      " memory for this communicator, got " + view.describe());
  }
  const int64_t rows = view.shape[0];
  const int64_t cols = view.shape[1];
  if (rows < 0 || cols < 0) {
    return Status(StatusCode::kInvalidArgument,
                  name + " has a negative extent: " + view.describe());
  }
  if (view.row_stride != 0 && view.row_stride != cols) {
    if (!strided_rows_ok) {
      return Status(StatusCode::kInvalidArgument,
                    name + " " + view.describe() + " must have contiguous rows (row_stride 0 or " +
                        std::to_string(cols) + ")");
    }
    if (view.row_stride < cols) {
      return Status(StatusCode::kInvalidArgument,
                    name + ".row_stride = " + std::to_string(view.row_stride) +
                        " is smaller than its row length " + std::to_string(cols));
    }
  }
  const int64_t elem = static_cast<int64_t>(dtype_size(view.dtype));
  const int64_t limit = std::numeric_limits<int64_t>::max() / 2;
  const int64_t pitch = std::max(cols, view.row_stride);
  if (pitch > 0 && rows > limit / pitch / elem) {
    return Status(StatusCode::kInvalidArgument,
                  name + " " + view.describe() + " is too large: its size in bytes exceeds 2^62");
  }
  if (view.data == nullptr && rows * cols > 0) {
    return Status(StatusCode::kInvalidArgument,
                  name + " " + view.describe() + " has a null data pointer");
  }
  if (reinterpret_cast<uintptr_t>(view.data) % static_cast<uintptr_t>(elem) != 0) {
    return Status(StatusCode::kInvalidArgument, name + " " + view.describe() +
                                                    ": data pointer is not aligned to its " +
                                                    std::to_string(elem) + "-byte elements");
  }
  return Status();
}

}  // namespace fusco
