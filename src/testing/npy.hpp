#pragma once

// Reading integer arrays from NumPy's .npy files (format versions 1, 2 and 3): routing files
// for fusco_plan, as `numpy.save("routing.npy", topk_idx)` writes them.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::testing {

/// A C-ordered integer array, widened to int64.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<int64_t> values;
};

/// Parses the bytes of a .npy file holding little-endian int8/16/32/64 (`<i4`, `<i8`, ...)
/// in C order. Errors name what is wrong: magic, version, header, dtype, order, shape, size.
Result<NpyArray> parse_npy(std::string_view bytes);

/// The largest .npy file read_npy reads (4 GiB: routing of 1024 ranks x 64K tokens x top-8
/// in int64).
constexpr int64_t kMaxNpyBytes = int64_t{1} << 32;

/// Reads and parses `path` (at most kMaxNpyBytes); errors start with the path.
Result<NpyArray> read_npy(const std::string& path);

}  // namespace fusco::testing
