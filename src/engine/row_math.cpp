#include "engine/row_math.hpp"

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

// Branch-free conversions, so the loops vectorize.
inline float load_bf16(uint16_t h) { return core::bf16_to_float(h); }
inline float load_fp16(uint16_t h) { return core::fp16_to_float(h); }

FUSCO_ROW_KERNEL void mul_init_f32(float* __restrict acc, const float* __restrict src, float w,
                                   int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] = w * src[h];
}
FUSCO_ROW_KERNEL void mul_init_bf16(float* __restrict acc, const uint16_t* __restrict src, float w,
                                    int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] = w * load_bf16(src[h]);
}
FUSCO_ROW_KERNEL void mul_init_fp16(float* __restrict acc, const uint16_t* __restrict src, float w,
                                    int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] = w * load_fp16(src[h]);
}
FUSCO_ROW_KERNEL void mul_add_f32(float* __restrict acc, const float* __restrict src, float w,
                                  int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] += w * src[h];
}
FUSCO_ROW_KERNEL void mul_add_bf16(float* __restrict acc, const uint16_t* __restrict src, float w,
                                   int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] += w * load_bf16(src[h]);
}
FUSCO_ROW_KERNEL void mul_add_fp16(float* __restrict acc, const uint16_t* __restrict src, float w,
                                   int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] += w * load_fp16(src[h]);
}
FUSCO_ROW_KERNEL void store_f32(const float* __restrict acc, float* __restrict out, int64_t n) {
  for (int64_t h = 0; h < n; ++h) out[h] = acc[h];
}
FUSCO_ROW_KERNEL void store_bf16(const float* __restrict acc, uint16_t* __restrict out, int64_t n) {
  for (int64_t h = 0; h < n; ++h) out[h] = core::float_to_bf16(acc[h]);
}
FUSCO_ROW_KERNEL void store_fp16(const float* __restrict acc, uint16_t* __restrict out, int64_t n) {
  for (int64_t h = 0; h < n; ++h) out[h] = core::float_to_fp16(acc[h]);
}
FUSCO_ROW_KERNEL void round_bf16(float* __restrict acc, int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] = load_bf16(core::float_to_bf16(acc[h]));
}
FUSCO_ROW_KERNEL void round_fp16(float* __restrict acc, int64_t n) {
  for (int64_t h = 0; h < n; ++h) acc[h] = load_fp16(core::float_to_fp16(acc[h]));
}
FUSCO_ROW_KERNEL void add_f32(float* __restrict total, const float* __restrict part, int64_t n) {
  for (int64_t h = 0; h < n; ++h) total[h] += part[h];
}

}  // namespace

void row_mul_init(DType dtype, float* acc, const void* row, float w, int64_t n) {
  switch (dtype) {
    case DType::kBFloat16:
      return mul_init_bf16(acc, static_cast<const uint16_t*>(row), w, n);
    case DType::kFloat16:
      return mul_init_fp16(acc, static_cast<const uint16_t*>(row), w, n);
    default:
      return mul_init_f32(acc, static_cast<const float*>(row), w, n);
  }
}

void row_mul_add(DType dtype, float* acc, const void* row, float w, int64_t n) {
  switch (dtype) {
    case DType::kBFloat16:
      return mul_add_bf16(acc, static_cast<const uint16_t*>(row), w, n);
    case DType::kFloat16:
      return mul_add_fp16(acc, static_cast<const uint16_t*>(row), w, n);
    default:
      return mul_add_f32(acc, static_cast<const float*>(row), w, n);
  }
}

void row_store(DType dtype, const float* acc, void* out, int64_t n) {
  switch (dtype) {
    case DType::kBFloat16:
      return store_bf16(acc, static_cast<uint16_t*>(out), n);
    case DType::kFloat16:
      return store_fp16(acc, static_cast<uint16_t*>(out), n);
    default:
      return store_f32(acc, static_cast<float*>(out), n);
  }
}

void row_round(DType dtype, float* acc, int64_t n) {
  switch (dtype) {
    case DType::kBFloat16:
      return round_bf16(acc, n);
    case DType::kFloat16:
      return round_fp16(acc, n);
    default:
      return;  // fp32 partials travel unrounded
  }
}

void row_add(float* total, const float* part, int64_t n) { add_f32(total, part, n); }

}  // namespace fusco::engine
