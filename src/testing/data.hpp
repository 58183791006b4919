#pragma once

// Deterministic test and benchmark data.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "fusco/dtype.hpp"

namespace fusco::testing {

/// `count` elements of `dtype`, deterministic in `seed`: floats in [-1, 1] for float types
/// (fp64 ones use their low mantissa bits too), random bits otherwise.
std::vector<std::byte> random_elements(DType dtype, int64_t count, uint64_t seed);

}  // namespace fusco::testing
