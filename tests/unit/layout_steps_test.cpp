// The GPU layout's steps (core/layout_steps.hpp) run on the host (core::layout_on_host, the
// GPU engine's host backend), with a warp emulated lane by lane: chunk counts, the exclusive
// scan, and warp placement must give exactly core::build_layout's order. The GPU test runs the
// same steps in the kernel.

#include "core/layout_steps.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>

#include "core/host_planning.hpp"
#include "core/layout.hpp"

namespace fusco::core {
namespace {

struct DeviceLayout {
  std::vector<int64_t> positions;
  std::vector<int64_t> expert_begin;
  int64_t first_bad = std::numeric_limits<int64_t>::max();
};

// What kernels/layout.cu computes, step by step, on the host (the host backend's layout).
template <typename Id>
DeviceLayout emulate(const std::vector<Id>& ids, int64_t tokens, int topk, int64_t experts,
                     const std::vector<int64_t>& physical, int64_t num_physical) {
  DeviceLayout out;
  out.positions.assign(ids.size(), -7);
  out.expert_begin.assign(static_cast<size_t>(num_physical) + 1, -7);
  LayoutArgs args;
  args.topk_idx = ids.data();
  args.ids_int64 = sizeof(Id) == sizeof(int64_t);
  args.num_tokens = tokens;
  args.topk = topk;
  args.num_experts = experts;
  args.physical = physical.data();
  args.num_physical = num_physical;
  args.positions = out.positions.data();
  args.expert_begin = out.expert_begin.data();
  args.first_bad = &out.first_bad;
  layout_on_host(args);
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
