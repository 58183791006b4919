#pragma once

// One element of a combine sum, in the engine's fixed order, for one thread: the GPU combine
// kernel runs it per (token, element); the CPU test compares it with the engine's vectorised
// reduce_row bit for bit. Every sum starts from its first term (w * v), then adds w * v in
// order, multiplies and adds rounded separately (no fused multiply-add, as the CPU build's
// -ffp-contract=off); with several groups each group's sum is rounded to the storage type
// before the groups are added in order, and the total is rounded at the end.

#include <cstdint>

#include "core/convert.hpp"
#include "fusco/host_device.hpp"

namespace fusco::core {

/// Storage types of combine rows (fusco DType codes of fp32, fp16, bf16).
enum class RowType : int32_t { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

/// Bytes of one element of `type`.
FUSCO_HOST_DEVICE inline int64_t row_type_bytes(RowType type) {
  return type == RowType::kFloat32 ? 4 : 2;
}

FUSCO_HOST_DEVICE inline float load_element(const void* row, int64_t h, RowType type) {
  switch (type) {
    case RowType::kFloat16:
      return fp16_to_float(static_cast<const uint16_t*>(row)[h]);
    case RowType::kBFloat16:
      return bf16_to_float(static_cast<const uint16_t*>(row)[h]);
    default:
      return static_cast<const float*>(row)[h];
  }
}

/// `value` rounded to `type` and widened back (what a partial is after crossing the wire).
FUSCO_HOST_DEVICE inline float round_to(float value, RowType type) {
  switch (type) {
    case RowType::kFloat16:
      return fp16_to_float(float_to_fp16(value));
    case RowType::kBFloat16:
      return bf16_to_float(float_to_bf16(value));
    default:
      return value;
  }
}

FUSCO_HOST_DEVICE inline float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

FUSCO_HOST_DEVICE inline float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

/// The fixed-order sum of one output element, fed one term at a time: within a group the
/// first term starts the sum and the others are added in order; with several groups each
/// group's sum is rounded to the storage type and the groups are added in order. The GPU
/// kernels keep one per element, so scalar and vectorised loops give the same bits.
struct CombineAccumulator {
  float partial = 0.0f;
  float total = 0.0f;

  /// Adds weight * value; `first` marks the first term of a group.
  FUSCO_HOST_DEVICE void add(float weight, float value, bool first) {
    const float term = mul_rn(weight, value);
    partial = first ? term : add_rn(partial, term);
  }
  /// Ends group `g` of `groups`.
  FUSCO_HOST_DEVICE void close_group(int64_t g, int64_t groups, RowType type) {
    if (groups == 1) {
      total = partial;
      return;
    }
    const float rounded = round_to(partial, type);
    total = g == 0 ? rounded : add_rn(total, rounded);
  }
};

/// Element `h` of one output row: groups [0, groups), group g holding terms
/// [group_begin[g], group_begin[g + 1]) of `rows` / `weights`. Returns the fp32 value before
/// the final rounding to the storage type (0 without groups).
FUSCO_HOST_DEVICE inline float combine_element(const void* const* rows, const float* weights,
                                               const int64_t* group_begin, int64_t groups,
                                               int64_t h, RowType type) {
  CombineAccumulator sum;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = group_begin[g]; i < group_begin[g + 1]; ++i) {
      sum.add(weights[i], load_element(rows[i], h, type), i == group_begin[g]);
    }
    sum.close_group(g, groups, type);
  }
  return sum.total;
}

/// Writes `value` rounded to `type` as element `h` of `out`.
FUSCO_HOST_DEVICE inline void store_element(void* out, int64_t h, float value, RowType type) {
  switch (type) {
    case RowType::kFloat16:
      static_cast<uint16_t*>(out)[h] = float_to_fp16(value);
      break;
    case RowType::kBFloat16:
      static_cast<uint16_t*>(out)[h] = float_to_bf16(value);
      break;
    default:
      static_cast<float*>(out)[h] = value;
  }
}

}  // namespace fusco::core
