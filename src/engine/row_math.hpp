#pragma once

// Row arithmetic of combine: fp32 accumulation of weighted rows of fp32/fp16/bf16 and the
// rounding of sums to the output dtype. Loops are written so the compiler vectorizes them.

#include <cstdint>
#include <cstring>

#include "core/convert.hpp"
#include "fusco/dtype.hpp"

namespace fusco::engine {

struct F32 {
  using Storage = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
struct BF16 {
  using Storage = uint16_t;
  static float load(uint16_t v) { return core::bf16_to_float(v); }
  static uint16_t store(float v) { return core::float_to_bf16(v); }
};
struct F16 {
  using Storage = uint16_t;
  static float load(uint16_t v) { return core::fp16_to_float(v); }
  static uint16_t store(float v) { return core::float_to_fp16(v); }
};

/// acc = w * row (first term of a sum).
template <typename E>
inline void mul_init(float* __restrict acc, const void* row, float w, int64_t n) {
  const auto* src = static_cast<const typename E::Storage*>(row);
  for (int64_t h = 0; h < n; ++h) {
    acc[h] = w * E::load(src[h]);
  }
}

/// acc += w * row.
template <typename E>
inline void mul_add(float* __restrict acc, const void* row, float w, int64_t n) {
  const auto* src = static_cast<const typename E::Storage*>(row);
  for (int64_t h = 0; h < n; ++h) {
    acc[h] += w * E::load(src[h]);
  }
}

/// out = round(acc) in the storage type of E.
template <typename E>
inline void store_row(const float* __restrict acc, void* out, int64_t n) {
  auto* dst = static_cast<typename E::Storage*>(out);
  for (int64_t h = 0; h < n; ++h) {
    dst[h] = E::store(acc[h]);
  }
}

/// acc = float(round(acc)): the value a partial sum has after crossing the wire.
template <typename E>
inline void round_in_place(float* __restrict acc, int64_t n) {
  for (int64_t h = 0; h < n; ++h) {
    acc[h] = E::load(E::store(acc[h]));
  }
}

/// total = part (first partial) or total += part.
inline void add_rows(float* __restrict total, const float* __restrict part, bool first,
                     int64_t n) {
  if (first) {
    std::memcpy(total, part, static_cast<size_t>(n) * sizeof(float));
    return;
  }
  for (int64_t h = 0; h < n; ++h) {
    total[h] += part[h];
  }
}

/// Calls fn.template operator()<E>() with E matching a combine dtype (fp32, fp16, bf16).
template <typename Fn>
inline void with_combine_type(DType dtype, Fn&& fn) {
  switch (dtype) {
    case DType::kBFloat16:
      fn.template operator()<BF16>();
      return;
    case DType::kFloat16:
      fn.template operator()<F16>();
      return;
    default:
      fn.template operator()<F32>();
      return;
  }
}

}  // namespace fusco::engine
