#pragma once

// Row arithmetic of combine: fp32 accumulation of weighted rows stored as fp32, fp16 or bf16,
// and the rounding of fp32 sums to those types (nearest even). Every function works on one
// row of n elements; the element loops are compiled for several x86-64 levels and the best
// one for the running CPU is picked at load time. Multiplies and adds stay separate
// (-ffp-contract=off), so every level gives the same bits.

#include <cstdint>

#include "fusco/dtype.hpp"

namespace fusco::engine {

/// acc = w * row (the first term of a sum). `dtype`: fp32, fp16 or bf16.
void row_mul_init(DType dtype, float* acc, const void* row, float w, int64_t n);
/// acc += w * row.
void row_mul_add(DType dtype, float* acc, const void* row, float w, int64_t n);
/// out = acc rounded to `dtype`.
void row_store(DType dtype, const float* acc, void* out, int64_t n);
/// acc = float(acc rounded to `dtype`): the value a partial sum has after crossing the wire.
void row_round(DType dtype, float* acc, int64_t n);
/// total += part.
void row_add(float* total, const float* part, int64_t n);

}  // namespace fusco::engine
