#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fusco/status.hpp"

namespace fusco {

/// Element types fusco moves. Every type can be dispatched; combine arithmetic is offered for
/// kFloat32, kFloat16 and kBFloat16 (accumulated in fp32) and kFloat64 (accumulated in fp64,
/// for reference computations such as gradient checks).
enum class DType : int32_t {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  kFloat8E4M3 = 3,
  kFloat8E5M2 = 4,
  kInt8 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kFloat64 = 8,
};

/// Size of one element of `dtype` in bytes (1, 2, 4 or 8).
std::size_t dtype_size(DType dtype);

/// Canonical short name: "fp32", "fp16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "int32",
/// "int64", "fp64".
const char* dtype_name(DType dtype);

/// Parses a canonical name (also accepts "float32", "float16", "bfloat16", "e4m3", "e5m2",
/// "float64").
/// Fails with kInvalidArgument naming the text and the accepted names.
Result<DType> dtype_from_name(std::string_view name);

/// True for the types combine can reduce: fp32, fp16, bf16 and fp64.
bool dtype_supports_combine(DType dtype);

/// True when `value` is one of the enumerators (guards casts from integers, e.g. in bindings).
bool dtype_is_valid(int32_t value);

}  // namespace fusco
