#pragma once

// Row arithmetic of combine: weighted sums of rows stored as fp32, fp16 or bf16, accumulated
// in fp32 and rounded to the storage type (nearest even); fp64 rows accumulate in fp64. The
// loops are compiled for several x86-64 levels and the best one for the running CPU is picked
// at load time; multiplies and adds stay separate (-ffp-contract=off), so every level gives
// the same bits.

#include <cstdint>

#include "fusco/dtype.hpp"

namespace fusco::engine {

/// One term of a sum: weight * row. The weight is applied in the accumulation type (fp32,
/// or fp64 for fp64 rows); fp32 weights convert exactly.
struct ReduceTerm {
  const void* row;
  double weight;
};

/// out = round(total), where total sums the groups in order and group g sums its
/// group_sizes[g] terms (taken from `terms` in order) in order; every sum starts from its
/// first term. With more than one group each group's sum is rounded to `dtype` before it is
/// added (the value a partial has after crossing the wire). `dtype`: fp32, fp16, bf16, fp64;
/// `groups` >= 1, every group has >= 1 term. One pass over the output, H in blocks.
void reduce_row(DType dtype, const ReduceTerm* terms, const int32_t* group_sizes, int32_t groups,
                void* out, int64_t n);

/// Asks for the first blocks of `count` rows of n `dtype` elements (the ones reduce_row reads
/// before its own prefetching runs ahead): call it for the next sum while this one runs.
void prefetch_rows(DType dtype, const ReduceTerm* terms, size_t count, int64_t n);

}  // namespace fusco::engine
