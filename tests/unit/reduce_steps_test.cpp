// One combine element per thread (core/reduce_steps.hpp, what the GPU kernel runs) against the
// CPU engine's vectorised reduce_row: the same bits for fp32, fp16 and bf16 rows, one group
// or several (rounded partials).

#include "core/reduce_steps.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "engine/row_math.hpp"
#include "testing/data.hpp"

namespace fusco::core {
namespace {

TEST(ReduceSteps, EveryElementEqualsTheEngineBitForBit) {
  std::mt19937_64 rng(21);
  const std::pair<DType, RowType> types[] = {{DType::kFloat32, RowType::kFloat32},
                                             {DType::kFloat16, RowType::kFloat16},
                                             {DType::kBFloat16, RowType::kBFloat16}};
  for (const auto& [dtype, type] : types) {
    for (int trial = 0; trial < 40; ++trial) {
      const int64_t hidden = 1 + static_cast<int64_t>(rng() % 700);  // crosses 512-blocks
      const auto groups = static_cast<int32_t>(1 + rng() % 4);
      std::vector<int32_t> sizes;
      std::vector<int64_t> begin = {0};
      for (int32_t g = 0; g < groups; ++g) {
        sizes.push_back(static_cast<int32_t>(1 + rng() % 3));
        begin.push_back(begin.back() + sizes.back());
      }
      const int64_t terms = begin.back();
      std::vector<std::vector<std::byte>> rows;
      std::vector<const void*> row_ptr;
      std::vector<float> weights;
      std::vector<engine::ReduceTerm> engine_terms;
      for (int64_t i = 0; i < terms; ++i) {
        rows.push_back(testing::random_elements(dtype, hidden, rng()));
        weights.push_back(std::uniform_real_distribution<float>(-2, 2)(rng));
      }
      for (int64_t i = 0; i < terms; ++i) {
        row_ptr.push_back(rows[static_cast<size_t>(i)].data());
        engine_terms.push_back({row_ptr.back(), weights[static_cast<size_t>(i)]});
      }
      const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(dtype);
      std::vector<std::byte> want(row_bytes);
      std::vector<std::byte> got(row_bytes);
      engine::reduce_row(dtype, engine_terms.data(), sizes.data(), groups, want.data(), hidden);
      for (int64_t h = 0; h < hidden; ++h) {
        store_element(
            got.data(), h,
            combine_element(row_ptr.data(), weights.data(), begin.data(), groups, h, type), type);
      }
      ASSERT_EQ(std::memcmp(got.data(), want.data(), row_bytes), 0)
          << dtype_name(dtype) << " trial " << trial << " H " << hidden << " groups " << groups;
    }
  }
}

}  // namespace
}  // namespace fusco::core
