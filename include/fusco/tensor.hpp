#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "fusco/dtype.hpp"
#include "fusco/status.hpp"

namespace fusco {

/// Where a tensor's memory lives.
enum class Device : int32_t {
  kHost = 0,  ///< Ordinary CPU memory.
  kCuda = 1,  ///< CUDA device memory (used by the CUDA engine).
};

/// A non-owning view of a tensor: pointer, element type, shape and device; C-contiguous,
/// except that a 2-D view may set `row_stride` where an argument says it accepts strided
/// rows (dispatch's x, combine's expert_out): a slice of a wider buffer, sent without a copy.
/// fusco never frees or resizes the memory behind a view.
struct TensorView {
  /// Largest number of dimensions a view carries.
  static constexpr int kMaxDims = 4;

  void* data = nullptr;                      ///< First element; may be null when numel() == 0.
  DType dtype = DType::kFloat32;             ///< Element type.
  int ndim = 0;                              ///< Number of dimensions, 0..kMaxDims.
  std::array<int64_t, kMaxDims> shape = {};  ///< Extent of each dimension (row-major).
  Device device = Device::kHost;             ///< Where `data` lives.
  /// 2-D views: elements from the start of one row to the start of the next, >= shape[1];
  /// 0 means shape[1] (contiguous rows).
  int64_t row_stride = 0;

  /// A host view of `data` with the given shape (at most kMaxDims dimensions; extra ones
  /// make the view invalid, which validation reports).
  static TensorView host(void* data, DType dtype, std::initializer_list<int64_t> shape);

  /// Number of elements (product of the extents; 1 for a 0-d view).
  int64_t numel() const;
  /// Total size in bytes.
  int64_t nbytes() const { return numel() * static_cast<int64_t>(dtype_size(dtype)); }
  /// Extent of dimension `dim` (0 when dim >= ndim).
  int64_t size(int dim) const { return dim >= 0 && dim < ndim ? shape[dim] : 0; }
  /// "[2048, 7168] bf16 host" (", row stride 8192" when rows are strided).
  std::string describe() const;
  /// Bytes from the start of one row of a 2-D view to the next.
  int64_t row_pitch_bytes() const {
    return (row_stride != 0 ? row_stride : shape[1]) * static_cast<int64_t>(dtype_size(dtype));
  }
};

/// Checks that `view` is a 2-D tensor in `device` memory with non-negative extents whose size
/// in bytes does not overflow, with a non-null pointer (unless empty) aligned to its element
/// size, and contiguous rows unless `strided_rows_ok` (then row_stride must be 0 or
/// >= shape[1]). The error names `arg` (the caller's argument name) and the offending value.
Status check_matrix(const TensorView& view, const char* arg, bool strided_rows_ok = false,
                    Device device = Device::kHost);

}  // namespace fusco
