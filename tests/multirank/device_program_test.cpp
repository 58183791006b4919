// The GPU engine's programme run on the CPU: a one-node plan's stores and combine terms,
// executed through the very functions the kernels call per row and per element
// (core/direct_steps.hpp) over host buffers, match the reference bit for bit. This covers
// the index arithmetic of the GPU path where no GPU is present; tests/gpu runs the kernels.

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/direct_steps.hpp"
#include "engine/plan_checks.hpp"
#include "gpu/unfused_device_lists.hpp"
#include "multirank/emulated_kernels.hpp"
#include "multirank/harness.hpp"
#include "multirank/one_node_cases.hpp"
#include "plan/plan_data.hpp"

namespace fusco::testing {
namespace {

// memset that accepts the null pointer of an empty buffer when nothing is zeroed (copies use
// engine::copy_row, which does the same).
void zero_bytes(void* dst, int /*zero*/, size_t bytes) {
  if (bytes > 0) std::memset(dst, 0, bytes);
}

// The case as the GPU engine runs it: one node, ranks reaching each other's memory, combine
// sums in fp32/fp16/bf16 (8-byte rows are dispatched as int64).
Case on_one_gpu(Case c) {
  if (c.dtype == DType::kFloat64) c.dtype = DType::kInt64;
  c.ranks_per_node = c.world;
  c.direct_access = true;
  return c;
}

// Dispatch and combine of every rank as the kernels do them, one (row, lane) or
// (token, element) after another.
std::vector<RankResult> run_programme(const Case& c, const std::vector<Plan>& plans) {
  const auto world = static_cast<size_t>(c.world);
  const int64_t row_bytes = c.hidden * static_cast<int64_t>(dtype_size(c.dtype));
  std::vector<RankResult> results;
  std::vector<std::vector<std::byte>> x(world);
  core::PeerTable recv{};
  for (size_t r = 0; r < world; ++r) {
    results.push_back(counts_of(plans[r]));
    x[r] = strided(x_of(c, static_cast<int>(r)), c, tokens_of(c, static_cast<int>(r)));
    results[r].recv.assign(static_cast<size_t>(plans[r].num_recv_rows() * row_bytes),
                           std::byte{0x5a});
    for (const auto& [begin, end] : plans[r].data().padding) {
      zero_bytes(results[r].recv.data() + begin * row_bytes, 0,
                 static_cast<size_t>((end - begin) * row_bytes));
    }
    recv.base[r] = reinterpret_cast<char*>(results[r].recv.data());
    recv.pitch[r] = row_bytes;
  }
  // The companion tensor: int32 [T, extra_cols], contiguous.
  const int64_t extra_bytes = c.extra_cols * 4;
  std::vector<std::vector<std::byte>> extra(world);
  core::PeerTable extra_recv{};
  for (size_t r = 0; r < world && extra_bytes > 0; ++r) {
    extra[r] = extra_of(c, static_cast<int>(r));
    results[r].extra_recv.assign(static_cast<size_t>(plans[r].num_recv_rows() * extra_bytes),
                                 std::byte{0x5a});
    for (const auto& [begin, end] : plans[r].data().padding) {
      zero_bytes(results[r].extra_recv.data() + begin * extra_bytes, 0,
                 static_cast<size_t>((end - begin) * extra_bytes));
    }
    extra_recv.base[r] = reinterpret_cast<char*>(results[r].extra_recv.data());
    extra_recv.pitch[r] = extra_bytes;
  }
  const int64_t x_pitch = (c.hidden + c.stride_pad) * static_cast<int64_t>(dtype_size(c.dtype));
  for (size_t r = 0; r < world; ++r) {
    for (const detail::DirectRow& row : plans[r].data().direct) {
      const core::DirectStore store{row.token, row.rank, row.row};
      const auto* src = reinterpret_cast<const char*>(x[r].data()) + store.token * x_pitch;
      for (int lane = 0; lane < 32; ++lane) {  // one warp per row
        core::copy_row_part(core::store_destination(recv, store), src, row_bytes, lane, 32);
        if (extra_bytes > 0) {
          core::copy_row_part(
              core::store_destination(extra_recv, store),
              reinterpret_cast<const char*>(extra[r].data()) + store.token * extra_bytes,
              extra_bytes, lane, 32);
        }
      }
    }
  }
  if (!dtype_supports_combine(c.dtype)) return results;
  const ExpertOutputs outputs = expert_outputs_of(c, plans);
  for (size_t r = 0; r < world; ++r) {
    const detail::PlanData& plan = plans[r].data();
    std::vector<core::DirectTerm> terms;
    for (const detail::CombineTerm& term : plan.terms) {
      terms.push_back({term.rank, term.slot, term.row});
    }
    results[r].out = combine_as_the_kernel(c, plan, outputs.table, terms, outputs.weights[r]);
  }
  return results;
}

// The unfused GPU baseline's lists run step by step: permute, blocks to staging, re-sort;
// un-sort, blocks back, unpermute with the weighted sum.
std::vector<RankResult> run_unfused_lists(const Case& c, const std::vector<Plan>& plans) {
  const auto world = static_cast<size_t>(c.world);
  const auto row_bytes = static_cast<size_t>(c.hidden) * dtype_size(c.dtype);
  std::vector<const detail::PlanData*> data;
  for (const Plan& plan : plans) data.push_back(&plan.data());
  Result<std::vector<gpu::UnfusedDeviceLists>> built = gpu::unfused_device_lists(data);
  EXPECT_TRUE(built.ok()) << built.status().to_string();
  const std::vector<gpu::UnfusedDeviceLists>& lists = built.value();
  auto row = [&](std::vector<std::byte>& buffer, int64_t i) {
    return buffer.data() + i * row_bytes;
  };
  std::vector<std::vector<std::byte>> send(world), stage(world);
  std::vector<RankResult> results;
  for (size_t s = 0; s < world; ++s) {
    results.push_back(counts_of(plans[s]));
    std::vector<std::byte> x = x_of(c, static_cast<int>(s));
    send[s].resize(lists[s].permute.size() * row_bytes);
    for (const gpu::RowMove& move : lists[s].permute) {
      engine::copy_row(row(send[s], move.to), row(x, move.from), row_bytes);
    }
  }
  for (size_t d = 0; d < world; ++d) {
    stage[d].resize(static_cast<size_t>(lists[d].stage_offsets[world]) * row_bytes);
    for (size_t s = 0; s < world; ++s) {
      const int64_t rows = lists[d].stage_offsets[s + 1] - lists[d].stage_offsets[s];
      engine::copy_row(row(stage[d], lists[d].stage_offsets[s]),
                       row(send[s], lists[s].send_offsets[d]),
                       static_cast<size_t>(rows) * row_bytes);
    }
    std::vector<std::byte>& recv = results[d].recv;
    recv.assign(static_cast<size_t>(plans[d].num_recv_rows()) * row_bytes, std::byte{0x5a});
    for (const auto& [begin, end] : plans[d].data().padding) {
      zero_bytes(row(recv, begin), 0, static_cast<size_t>(end - begin) * row_bytes);
    }
    for (const gpu::RowMove& move : lists[d].resort) {
      engine::copy_row(row(recv, move.to), row(stage[d], move.from), row_bytes);
    }
  }
  if (!dtype_supports_combine(c.dtype)) return results;
  for (size_t d = 0; d < world; ++d) {
    std::vector<std::byte> y = y_of(c, static_cast<int>(d), plans[d].num_recv_rows());
    for (const gpu::RowMove& move : lists[d].resort) {
      engine::copy_row(row(stage[d], move.from), row(y, move.to), row_bytes);
    }
  }
  for (size_t s = 0; s < world; ++s) {
    std::vector<std::byte> returned(send[s].size());
    for (size_t d = 0; d < world; ++d) {
      const int64_t rows = lists[s].send_offsets[d + 1] - lists[s].send_offsets[d];
      engine::copy_row(row(returned, lists[s].send_offsets[d]),
                       row(stage[d], lists[d].stage_offsets[s]),
                       static_cast<size_t>(rows) * row_bytes);
    }
    core::PeerTable table{};
    table.base[0] = reinterpret_cast<char*>(returned.data());
    table.pitch[0] = static_cast<int64_t>(row_bytes);
    results[s].out = combine_as_the_kernel(c, plans[s].data(), table, lists[s].return_terms,
                                           weights_of(c, static_cast<int>(s)));
  }
  return results;
}

::testing::AssertionResult unfused_lists_match_reference(const Case& c) {
  const std::vector<RankResult> got = run_unfused_lists(c, plans_of_case(c));
  return every_rank_matches(c, got);
}

::testing::AssertionResult programme_matches_reference(const Case& c) {
  const std::vector<Plan> plans = plans_of_case(c);
  for (const Plan& plan : plans) {
    if (!plan.valid()) return ::testing::AssertionFailure() << "planning failed";
    if (!plan.data().staged_out.empty() || plan.data().return_rows_total != 0) {
      return ::testing::AssertionFailure() << "a one-node plan stages rows: " << c.describe();
    }
  }
  const std::vector<RankResult> got = run_programme(c, plans);
  return every_rank_matches(c, got);
}

TEST(DeviceProgramme, RandomOneNodeCases_MatchReferenceBitForBit) {
  for (uint64_t seed = 1; seed <= 150; ++seed) {
    ASSERT_TRUE(programme_matches_reference(on_one_gpu(random_case(seed))));
  }
}

TEST(DeviceProgramme, OneNodeRoutingCases_WorldSizes1248_MatchReference) {
  for (int world : {1, 2, 4, 8}) {
    int index = 0;
    for (const Case& c : one_node_cases(world)) {
      EXPECT_TRUE(programme_matches_reference(c)) << "world " << world << " case " << index;
      ++index;
    }
  }
}

TEST(DeviceProgramme, DeepSeekShape_EightRanksHidden7168) {
  Case c;
  c.world = 8;
  c.ranks_per_node = 8;
  c.topk = 8;
  c.experts = 256;
  c.hidden = 7168;
  c.tokens_each = 64;
  EXPECT_TRUE(programme_matches_reference(c));
}

TEST(DeviceProgramme, WorldSizesOneTwoFourEight_EveryDedupMode) {
  for (int world : {1, 2, 4, 8}) {
    for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
      Case c;
      c.world = world;
      c.ranks_per_node = world;
      c.experts = 4 * world;
      c.dedup = dedup;
      c.hidden = 9;  // odd rows: the 4-byte and byte copy paths
      EXPECT_TRUE(programme_matches_reference(c)) << "world " << world;
    }
  }
}

TEST(UnfusedDeviceProgramme, OneNodeRoutingCases_WorldSizes1248_MatchReference) {
  for (int world : {1, 2, 4, 8}) {
    int index = 0;
    for (Case c : one_node_cases(world)) {
      c.stride_pad = 0;  // the baseline's permute reads contiguous rows
      c.extra_cols = 0;  // and moves no companion tensor
      EXPECT_TRUE(unfused_lists_match_reference(c)) << "world " << world << " case " << index;
      ++index;
    }
  }
}

}  // namespace
}  // namespace fusco::testing
