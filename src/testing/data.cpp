#include "testing/data.hpp"

#include <cstring>
#include <random>

#include "core/convert.hpp"

namespace fusco::testing {

std::vector<std::byte> random_elements(DType dtype, int64_t count, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  const size_t elem = dtype_size(dtype);
  std::vector<std::byte> bytes(static_cast<size_t>(count) * elem);
  for (int64_t i = 0; i < count; ++i) {
    std::byte* at = bytes.data() + static_cast<size_t>(i) * elem;
    if (dtype == DType::kFloat32) {
      const float v = value(rng);
      std::memcpy(at, &v, 4);
    } else if (dtype == DType::kFloat64) {
      const double v = static_cast<double>(value(rng)) / 3.0;  // uses the low mantissa bits
      std::memcpy(at, &v, 8);
    } else if (dtype == DType::kBFloat16 || dtype == DType::kFloat16) {
      const float v = value(rng);
      const uint16_t h =
          dtype == DType::kBFloat16 ? core::float_to_bf16(v) : core::float_to_fp16(v);
      std::memcpy(at, &h, 2);
    } else {
      const uint64_t bits = rng();
      std::memcpy(at, &bits, elem);
    }
  }
  return bytes;
}

}  // namespace fusco::testing
