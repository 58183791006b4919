#include "fusco/dtype.hpp"

#include <string>

namespace fusco {

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
    case DType::kInt32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
    case DType::kFloat8E4M3:
    case DType::kFloat8E5M2:
    case DType::kInt8:
      return 1;
    case DType::kInt64:
    case DType::kFloat64:
      return 8;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "fp32";
    case DType::kFloat16:
      return "fp16";
    case DType::kBFloat16:
      return "bf16";
    case DType::kFloat8E4M3:
      return "fp8_e4m3";
    case DType::kFloat8E5M2:
      return "fp8_e5m2";
    case DType::kInt8:
      return "int8";
    case DType::kInt32:
      return "int32";
    case DType::kInt64:
      return "int64";
    case DType::kFloat64:
      return "fp64";
  }
  return "invalid";
}

Result<DType> dtype_from_name(std::string_view name) {
  struct Alias {
    const char* text;
    DType dtype;
  };
  static constexpr Alias kAliases[] = {
      {"fp32", DType::kFloat32},        {"float32", DType::kFloat32},
      {"fp16", DType::kFloat16},        {"float16", DType::kFloat16},
      {"bf16", DType::kBFloat16},       {"bfloat16", DType::kBFloat16},
      {"fp8_e4m3", DType::kFloat8E4M3}, {"e4m3", DType::kFloat8E4M3},
      {"fp8_e5m2", DType::kFloat8E5M2}, {"e5m2", DType::kFloat8E5M2},
      {"int8", DType::kInt8},           {"int32", DType::kInt32},
      {"int64", DType::kInt64},         {"fp64", DType::kFloat64},
      {"float64", DType::kFloat64},
  };
  for (const Alias& alias : kAliases) {
    if (name == alias.text) {
      return alias.dtype;
    }
  }
  return Status(StatusCode::kInvalidArgument,
                "dtype '" + std::string(name) +
                    "' is not known; expected one of fp32, fp16, bf16, fp8_e4m3, fp8_e5m2, int8, "
                    "int32, int64, fp64");
}

bool dtype_supports_combine(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat16 || dtype == DType::kBFloat16 ||
         dtype == DType::kFloat64;
}

bool dtype_is_valid(int32_t value) {
  return value >= static_cast<int32_t>(DType::kFloat32) &&
         value <= static_cast<int32_t>(DType::kFloat64);
}

}  // namespace fusco
