// The GPU engine's staged (inter-node) programme run on the CPU: plans of ranks grouped into
// several nodes (rank and node dedup, rail and balanced relays), their staged streams turned
// into the direct kernels' lists (plan/staged_programme.hpp) and executed hop by hop through
// the very per-row and per-element functions the kernels call — gather into send staging,
// transfer, fan-out at the target; relay sums or rows back, transfer, the source's combine
// with the return buffer as one more table entry — match the reference bit for bit.

#include "plan/staged_programme.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "multirank/emulated_kernels.hpp"
#include "multirank/harness.hpp"
#include "multirank/one_node_cases.hpp"

namespace fusco::testing {
namespace {

using Bytes = std::vector<std::byte>;

char* row_of(Bytes& buffer, int64_t row, int64_t row_bytes) {
  return reinterpret_cast<char*>(buffer.data()) + row * row_bytes;
}

// Copies as one warp of a direct kernel does.
void copy_row(char* dst, const char* src, int64_t bytes) {
  for (int lane = 0; lane < 32; ++lane) core::copy_row_part(dst, src, bytes, lane, 32);
}

// The rows of `rows` contiguous rows of `row_bytes`, as a one-entry table.
core::PeerTable table_of(Bytes& rows, int64_t row_bytes) {
  core::PeerTable table{};
  table.base[0] = reinterpret_cast<char*>(rows.data());
  table.pitch[0] = row_bytes;
  return table;
}

// Dispatch of one tensor (x, or the companion) through the direct stores and the hops.
void dispatch(const Case& c, const std::vector<Plan>& plans, const detail::StagedProgramme& staged,
              std::vector<Bytes>& source, int64_t source_pitch, int64_t row_bytes,
              std::vector<Bytes>& recv) {
  const auto world = static_cast<size_t>(c.world);
  core::PeerTable table{};
  for (size_t r = 0; r < world; ++r) {
    recv[r].assign(static_cast<size_t>(plans[r].num_recv_rows() * row_bytes), std::byte{0x5a});
    for (const auto& [begin, end] : plans[r].data().padding) {
      std::fill(recv[r].begin() + begin * row_bytes, recv[r].begin() + end * row_bytes,
                std::byte{0});
    }
    table.base[r] = reinterpret_cast<char*>(recv[r].data());
    table.pitch[r] = row_bytes;
  }
  std::vector<Bytes> send(world), arrive(world);
  for (size_t r = 0; r < world; ++r) {
    send[r].resize(static_cast<size_t>(staged.send_rows[r] * row_bytes));
    arrive[r].resize(static_cast<size_t>(staged.arrive_rows[r] * row_bytes));
    for (const detail::DirectRow& row : plans[r].data().direct) {
      copy_row(core::store_destination(table, {row.token, row.rank, row.row}),
               row_of(source[r], row.token, source_pitch), row_bytes);
    }
  }
  for (const detail::StagedHop& hop : staged.hops) {  // gather, then the transfer
    const auto s = static_cast<size_t>(hop.source);
    const core::PeerTable staging = table_of(send[s], row_bytes);
    for (const core::DirectStore& store : hop.gather) {
      copy_row(core::store_destination(staging, store),
               row_of(source[s], store.token, source_pitch), row_bytes);
    }
    if (hop.entries > 0) {
      std::memcpy(row_of(arrive[static_cast<size_t>(hop.target)], hop.arrive_begin, row_bytes),
                  row_of(send[s], hop.send_begin, row_bytes),
                  static_cast<size_t>(hop.entries * row_bytes));
    }
  }
  for (const detail::StagedHop& hop : staged.hops) {  // fan-out at the targets
    Bytes& arrived = arrive[static_cast<size_t>(hop.target)];
    for (const core::DirectStore& store : hop.fanout) {
      copy_row(core::store_destination(table, store),
               row_of(arrived, hop.arrive_begin + store.token, row_bytes), row_bytes);
    }
  }
}

std::vector<RankResult> run_staged(const Case& c) {
  const std::vector<Plan> plans = plans_of_case(c);
  const auto world = static_cast<size_t>(c.world);
  std::vector<const detail::PlanData*> data;
  for (const Plan& plan : plans) data.push_back(&plan.data());
  Result<detail::StagedProgramme> built = detail::staged_programme(data);
  EXPECT_TRUE(built.ok()) << built.status().to_string();
  const detail::StagedProgramme& staged = built.value();
  const int64_t row_bytes = c.hidden * static_cast<int64_t>(dtype_size(c.dtype));
  const int64_t pitch = (c.hidden + c.stride_pad) * static_cast<int64_t>(dtype_size(c.dtype));
  std::vector<RankResult> results;
  std::vector<Bytes> x(world), recv(world), extra(world), extra_recv(world);
  for (size_t r = 0; r < world; ++r) {
    results.push_back(counts_of(plans[r]));
    const int rank = static_cast<int>(r);
    x[r] = strided(x_of(c, rank), c, tokens_of(c, rank));
    if (c.extra_cols > 0) extra[r] = extra_of(c, rank);
  }
  dispatch(c, plans, staged, x, pitch, row_bytes, recv);
  if (c.extra_cols > 0)
    dispatch(c, plans, staged, extra, c.extra_cols * 4, c.extra_cols * 4, extra_recv);
  for (size_t r = 0; r < world; ++r) {
    results[r].recv = recv[r];
    results[r].extra_recv = extra_recv[r];
  }
  if (!dtype_supports_combine(c.dtype)) return results;

  const auto type = static_cast<core::RowType>(c.dtype);
  const ExpertOutputs outputs = expert_outputs_of(c, plans);
  const core::PeerTable& expert_out = outputs.table;
  std::vector<Bytes> relay_return(world), returned(world);
  for (size_t r = 0; r < world; ++r) {
    relay_return[r].resize(static_cast<size_t>(staged.relay_return_rows[r] * row_bytes));
    returned[r].resize(static_cast<size_t>(staged.return_rows[r] * row_bytes));
  }
  for (const detail::StagedHop& hop : staged.hops) {  // the targets' return rows, transferred
    Bytes& rows = relay_return[static_cast<size_t>(hop.target)];
    const auto* w =
        reinterpret_cast<const float*>(outputs.weights[static_cast<size_t>(hop.source)].data());
    for (int64_t i = 0; i < hop.return_rows; ++i) {
      for (int64_t h = 0; h < c.hidden; ++h) {
        core::store_element(row_of(rows, hop.relay_return_begin + i, row_bytes), h,
                            core::combine_token_element(
                                expert_out, hop.terms.data(), hop.group_term_begin.data() + i, 1, w,
                                c.topk, hop.weight_rows[static_cast<size_t>(i)], h, type),
                            type);
      }
    }
    if (hop.return_rows > 0) {
      std::memcpy(row_of(returned[static_cast<size_t>(hop.source)], hop.return_begin, row_bytes),
                  row_of(rows, hop.relay_return_begin, row_bytes),
                  static_cast<size_t>(hop.return_rows * row_bytes));
    }
  }
  for (size_t r = 0; r < world; ++r) {  // every source's own combine
    core::PeerTable table = expert_out;
    table.base[world] = reinterpret_cast<char*>(returned[r].data());
    table.pitch[world] = row_bytes;
    results[r].out =
        combine_as_the_kernel(c, plans[r].data(), table, staged.terms[r], outputs.weights[r]);
  }
  return results;
}

::testing::AssertionResult staged_matches_reference(Case c) {
  if (c.dtype == DType::kFloat64) c.dtype = DType::kInt64;  // the GPU sums fp32/fp16/bf16
  c.direct_access = true;
  // combine_buffer_bytes stays as drawn: the GPU engine keeps every returned row at once (its
  // return buffer is whole), which the plan's rows describe however many rounds it allows.
  const std::vector<RankResult> got = run_staged(c);
  return every_rank_matches(c, got);
}

TEST(StagedProgramme, RandomCases_MatchReferenceBitForBit) {
  for (uint64_t seed = 1; seed <= 120; ++seed) {
    ASSERT_TRUE(staged_matches_reference(random_case(seed))) << "seed " << seed;
  }
}

TEST(StagedProgramme, TwoNodesOfFour_EveryDedupAndRelayPolicy) {
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
      Case c;
      c.world = 8;
      c.ranks_per_node = 4;
      c.experts = 32;
      c.topk = 8;
      c.hidden = 64;
      c.dedup = dedup;
      c.relay = relay;
      EXPECT_TRUE(staged_matches_reference(c))
          << "dedup " << dedup_name(dedup) << " relay " << relay_policy_name(relay);
    }
  }
}

TEST(StagedProgramme, OddWorldUnevenNodes_HotExpert_EmptyRanks) {
  Case c;
  c.world = 5;
  c.ranks_per_node = 2;  // nodes of 2, 2 and 1
  c.experts = 10;
  c.tokens = {0, 24, 24, 0, 24};
  for (int r = 0; r < c.world; ++r) c.ids.push_back(std::vector<int64_t>(24 * 4, 7));
  c.ids[0].clear();
  c.ids[3].clear();
  EXPECT_TRUE(staged_matches_reference(c));
}

// The hops of `c`'s plans.
std::vector<detail::StagedHop> hops_of(const Case& c) {
  const std::vector<Plan> plans = plans_of_case(c);
  std::vector<const detail::PlanData*> data;
  for (const Plan& plan : plans) data.push_back(&plan.data());
  Result<detail::StagedProgramme> built = detail::staged_programme(data);
  EXPECT_TRUE(built.ok()) << built.status().to_string();
  return built.ok() ? built.value().hops : std::vector<detail::StagedHop>();
}

TEST(StagedProgramme, NodeDedup_OneEntryPerTokenAndNode_OnePartialEach) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.experts = 8;  // rank 2 holds 4 and 5, rank 3 holds 6 and 7: node 1
  c.topk = 3;
  c.tokens = {1, 0, 0, 0};
  c.ids = {{4, 6, 7}, {}, {}, {}};  // rank 0's token: three slots on node 1
  c.dedup = Dedup::kNode;
  const std::vector<detail::StagedHop> hops = hops_of(c);
  ASSERT_EQ(hops.size(), 1u);
  EXPECT_EQ(hops[0].source, 0);
  EXPECT_EQ(hops[0].target, 2);  // rail-aligned: node 1's rank of local index 0
  EXPECT_EQ(hops[0].entries, 1);
  EXPECT_EQ(hops[0].fanout.size(), 3u);  // rows of experts 4, 6 and 7
  EXPECT_EQ(hops[0].return_rows, 1);     // one partial sum
  EXPECT_EQ(hops[0].group_term_begin, (std::vector<int64_t>{0, 3}));
  EXPECT_TRUE(staged_matches_reference(c));
  c.dedup = Dedup::kRank;  // to each rank once, every row back unreduced
  const std::vector<detail::StagedHop> by_rank = hops_of(c);
  ASSERT_EQ(by_rank.size(), 2u);
  EXPECT_EQ(by_rank[0].return_rows + by_rank[1].return_rows, 3);
  EXPECT_TRUE(staged_matches_reference(c));
}

TEST(StagedProgramme, SeventyTwoRanks_LeaveNoTableEntryForTheReturnBuffer) {
  Case c;
  c.world = 72;
  c.ranks_per_node = 8;
  c.experts = 72;
  c.tokens_each = 2;
  const std::vector<Plan> plans = plans_of_case(c);
  std::vector<const detail::PlanData*> data;
  for (const Plan& plan : plans) data.push_back(&plan.data());
  Result<detail::StagedProgramme> built = detail::staged_programme(data);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(built.status().message().find("world_size = 72"), std::string::npos)
      << built.status().message();
}

TEST(StagedProgramme, OneNode_HasNoHops) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 4;
  EXPECT_TRUE(hops_of(c).empty());
}

}  // namespace
}  // namespace fusco::testing
