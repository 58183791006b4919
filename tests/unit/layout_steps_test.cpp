// The GPU layout's steps (core/layout_steps.hpp) run on the host, with a warp emulated lane by
// lane: chunk counts, the exclusive scan, and warp placement must give exactly
// core::build_layout's order. The GPU test runs the same steps in the kernel.

#include "core/layout_steps.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

#include "core/layout.hpp"

namespace fusco::core {
namespace {

struct DeviceLayout {
  std::vector<int64_t> positions;
  std::vector<int64_t> expert_begin;
  int64_t first_bad = std::numeric_limits<int64_t>::max();
};

// What kernels/layout.cu computes, step by step, on the host.
template <typename Id>
DeviceLayout emulate(const std::vector<Id>& ids, int64_t tokens, int topk, int64_t experts,
                     const std::vector<int64_t>& physical, int64_t num_physical) {
  const int64_t chunks = layout_chunks(tokens);
  std::vector<int64_t> counts(static_cast<size_t>(num_physical * chunks), 0);
  DeviceLayout out;
  for (int64_t c = 0; c < chunks; ++c) {
    for (int64_t flat = layout_chunk_begin(c, tokens, topk);
         flat < layout_chunk_begin(c + 1, tokens, topk); ++flat) {
      const int64_t p = layout_physical(ids.data(), flat, experts, physical.data());
      if (p >= 0) ++counts[static_cast<size_t>(layout_counter(p, c, chunks))];
      if (p == -2) out.first_bad = std::min(out.first_bad, flat);
    }
  }
  std::vector<int64_t> cursors(counts.size());
  int64_t total = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    cursors[i] = total;
    total += counts[i];
  }
  for (int64_t p = 0; p < num_physical; ++p) {  // no chunks (no tokens): every expert is empty
    out.expert_begin.push_back(
        chunks == 0 ? 0 : cursors[static_cast<size_t>(layout_counter(p, 0, chunks))]);
  }
  out.expert_begin.push_back(total);
  out.positions.assign(ids.size(), -7);
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t end = layout_chunk_begin(c + 1, tokens, topk);
    for (int64_t first = layout_chunk_begin(c, tokens, topk); first < end; first += kLayoutWarp) {
      int64_t p[kLayoutWarp];
      for (int lane = 0; lane < kLayoutWarp; ++lane) {
        const int64_t flat = first + lane;
        p[lane] = flat < end ? layout_physical(ids.data(), flat, experts, physical.data()) : -3;
      }
      uint32_t same[kLayoutWarp];
      for (int lane = 0; lane < kLayoutWarp; ++lane) {  // __match_any_sync
        same[lane] = 0;
        for (int other = 0; other < kLayoutWarp; ++other) {
          same[lane] |= p[other] == p[lane] ? uint32_t{1} << other : 0u;
        }
      }
      int64_t position[kLayoutWarp];
      for (int lane = 0; lane < kLayoutWarp; ++lane) {
        position[lane] = p[lane] >= 0
                             ? cursors[static_cast<size_t>(layout_counter(p[lane], c, chunks))] +
                                   layout_rank_in_group(same[lane], lane)
                             : -1;
      }
      for (int lane = 0; lane < kLayoutWarp; ++lane) {  // after __syncwarp
        if (p[lane] >= 0 && layout_last_in_group(same[lane], lane)) {
          cursors[static_cast<size_t>(layout_counter(p[lane], c, chunks))] +=
              __builtin_popcount(same[lane]);
        }
        if (first + lane < end) out.positions[static_cast<size_t>(first + lane)] = position[lane];
      }
    }
  }
  return out;
}

TEST(LayoutSteps, EmulatedWarpPlacementEqualsTheCountingSort) {
  std::mt19937_64 rng(3);
  for (const int64_t tokens : {0, 1, 255, 256, 257, 1000, 2100}) {
    for (const int topk : {1, 3, 8}) {
      const int64_t experts = 48;
      const int world = 6;
      std::vector<int32_t> owners;
      for (int64_t e = 0; e < experts; ++e) {
        owners.push_back(static_cast<int32_t>(rng() % world));
      }
      Result<ResolvedExpertMap> map =
          resolve_expert_map(ExpertMap::from_owners(owners), experts, world);
      ASSERT_TRUE(map.ok());
      std::vector<int64_t> ids(static_cast<size_t>(tokens * topk));
      for (int64_t& id : ids) {  // duplicates and masked slots, a hot expert
        const uint64_t draw = rng() % 10;
        id = draw == 0 ? -1 : draw < 4 ? 5 : static_cast<int64_t>(rng() % experts);
      }
      const DeviceLayout got =
          emulate(ids, tokens, topk, experts, map.value().physical, map.value().num_physical());
      Result<Layout> want =
          build_layout(TensorView::host(ids.data(), DType::kInt64, {tokens, topk}), map.value());
      ASSERT_TRUE(want.ok());
      EXPECT_EQ(got.expert_begin, want.value().expert_begin) << tokens << " x " << topk;
      std::vector<int64_t> expected(ids.size(), -1);
      for (size_t row = 0; row < want.value().pairs.size(); ++row) {
        expected[static_cast<size_t>(want.value().pairs[row])] = static_cast<int64_t>(row);
      }
      EXPECT_EQ(got.positions, expected) << tokens << " x " << topk;
      EXPECT_EQ(got.first_bad, std::numeric_limits<int64_t>::max());
    }
  }
}

TEST(LayoutSteps, TheFirstBadIdIsReported) {
  const std::vector<int32_t> ids = {0, 1, -1, 9, 2, -5};
  const std::vector<int64_t> physical = {0, 1, 2, 3};
  EXPECT_EQ(emulate(ids, 3, 2, 4, physical, 4).first_bad, 3);
}

}  // namespace
}  // namespace fusco::core
