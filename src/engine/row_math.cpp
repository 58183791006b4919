#include "engine/row_math.hpp"

#include <algorithm>

#include "core/convert.hpp"

// One definition per x86-64 level, chosen by an ifunc resolver at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define FUSCO_ROW_KERNEL \
  __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define FUSCO_ROW_KERNEL
#endif

namespace fusco::engine {

namespace {

// Element types: storage, accumulation type, and the conversions between them.
struct F32 {
  using Storage = float;
  using Acc = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};
struct BF16 {
  using Storage = uint16_t;
  using Acc = float;
  static float load(uint16_t v) { return core::bf16_to_float(v); }
  static uint16_t store(float v) { return core::float_to_bf16(v); }
};
struct F16 {
  using Storage = uint16_t;
  using Acc = float;
  static float load(uint16_t v) { return core::fp16_to_float(v); }
  static uint16_t store(float v) { return core::float_to_fp16(v); }
};
struct F64 {
  using Storage = double;
  using Acc = double;
  static double load(double v) { return v; }
  static double store(double v) { return v; }
};

// Blocks of H small enough that the partial sums stay in L1 while every term streams once.
constexpr int64_t kBlock = 512;
// How many blocks ahead of the summation the rows are prefetched (measured best on this
// project's development machine: 2).
constexpr int64_t kPrefetchBlocks = 2;

// Weighted sum of a block of one row into acc: acc = w * row (first) or acc += w * row.
template <typename E>
__attribute__((always_inline)) inline void accumulate(typename E::Acc* __restrict acc,
                                                      const typename E::Storage* __restrict row,
                                                      typename E::Acc w, bool first, int64_t len) {
  // Ask for this row's block after next while this one is summed: rows are short streams
  // that the hardware prefetcher alone picks up too late.
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(typename E::Storage));
  for (int64_t e = 0; e < len; e += kLine) __builtin_prefetch(row + kPrefetchBlocks * len + e);
  if (first) {
    for (int64_t e = 0; e < len; ++e) acc[e] = w * E::load(row[e]);
  } else {
    for (int64_t e = 0; e < len; ++e) acc[e] += w * E::load(row[e]);
  }
}

template <typename E>
__attribute__((always_inline)) inline void reduce_impl(const ReduceTerm* terms,
                                                       const int32_t* group_sizes, int32_t groups,
                                                       void* out, int64_t n) {
  using S = typename E::Storage;
  S* __restrict dst = static_cast<S*>(out);
  // acc and total sit 4 KiB + 128 B apart: at exactly 4 KiB their loads would wait on each
  // other's stores (4K aliasing).
  using A = typename E::Acc;
  alignas(64) A scratch[2 * kBlock + 32];
  A* __restrict acc = scratch;
  A* __restrict total = scratch + kBlock + 32;
  for (int64_t h0 = 0; h0 < n; h0 += kBlock) {
    const int64_t len = std::min(kBlock, n - h0);
    const ReduceTerm* term = terms;
    for (int32_t g = 0; g < groups; ++g) {
      for (int32_t i = 0; i < group_sizes[g]; ++i, ++term) {
        accumulate<E>(acc, static_cast<const S*>(term->row) + h0, static_cast<A>(term->weight),
                      i == 0, len);
      }
      if (groups == 1) {
        for (int64_t e = 0; e < len; ++e) dst[h0 + e] = E::store(acc[e]);
      } else if (g == 0) {
        for (int64_t e = 0; e < len; ++e) total[e] = E::load(E::store(acc[e]));
      } else {
        for (int64_t e = 0; e < len; ++e) total[e] += E::load(E::store(acc[e]));
      }
    }
    if (groups > 1) {
      for (int64_t e = 0; e < len; ++e) dst[h0 + e] = E::store(total[e]);
    }
  }
}

FUSCO_ROW_KERNEL void reduce_f32(const ReduceTerm* terms, const int32_t* group_sizes,
                                 int32_t groups, void* out, int64_t n) {
  reduce_impl<F32>(terms, group_sizes, groups, out, n);
}
FUSCO_ROW_KERNEL void reduce_bf16(const ReduceTerm* terms, const int32_t* group_sizes,
                                  int32_t groups, void* out, int64_t n) {
  reduce_impl<BF16>(terms, group_sizes, groups, out, n);
}
FUSCO_ROW_KERNEL void reduce_fp16(const ReduceTerm* terms, const int32_t* group_sizes,
                                  int32_t groups, void* out, int64_t n) {
  reduce_impl<F16>(terms, group_sizes, groups, out, n);
}
FUSCO_ROW_KERNEL void reduce_f64(const ReduceTerm* terms, const int32_t* group_sizes,
                                 int32_t groups, void* out, int64_t n) {
  reduce_impl<F64>(terms, group_sizes, groups, out, n);
}

}  // namespace

void prefetch_rows(DType dtype, const ReduceTerm* terms, size_t count, int64_t n) {
  const auto bytes = static_cast<size_t>(std::min(n, kPrefetchBlocks * kBlock)) * dtype_size(dtype);
  for (size_t i = 0; i < count; ++i) {
    const auto* row = static_cast<const char*>(terms[i].row);
    for (size_t at = 0; at < bytes; at += 64) __builtin_prefetch(row + at);
  }
}

void reduce_row(DType dtype, const ReduceTerm* terms, const int32_t* group_sizes, int32_t groups,
                void* out, int64_t n) {
  switch (dtype) {
    case DType::kBFloat16:
      return reduce_bf16(terms, group_sizes, groups, out, n);
    case DType::kFloat16:
      return reduce_fp16(terms, group_sizes, groups, out, n);
    case DType::kFloat64:
      return reduce_f64(terms, group_sizes, groups, out, n);
    default:
      return reduce_f32(terms, group_sizes, groups, out, n);
  }
}

}  // namespace fusco::engine
