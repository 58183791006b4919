#pragma once

// The #wrong column of fusco_bench: how many elements of a result differ from what was
// expected (every transport, CPU and GPU).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace fusco::bench {

/// Elements of `elem` bytes that differ between `got` and `want`; all of them when the sizes
/// differ.
inline int64_t count_wrong(const std::vector<std::byte>& got, const std::vector<std::byte>& want,
                           size_t elem) {
  if (got.size() != want.size()) {
    return static_cast<int64_t>(std::max(got.size(), want.size()) / elem);
  }
  int64_t wrong = 0;
  for (size_t i = 0; i < got.size(); i += elem) {
    wrong += std::memcmp(got.data() + i, want.data() + i, elem) != 0 ? 1 : 0;
  }
  return wrong;
}

}  // namespace fusco::bench
