// The send side: strided rows (a slice of a wider buffer) for x and expert_out, a companion
// per-row tensor (fp8 scales, token ids) that travels with each row of dispatch, and combine
// in rounds when its return buffer is bounded.

#include <gtest/gtest.h>

#include <random>

#include "multirank/harness.hpp"
#include "testing/rank_threads.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {
namespace {

TEST(StridedRows, XAndExpertOutAsSlicesOfWiderBuffers_MatchReference) {
  // The harness spreads x and expert_out rows apart (gaps filled with a pattern) and passes
  // row_stride; results must not change, and the gaps must never be read into results.
  for (int64_t pad : {1, 9}) {
    Case c;
    c.world = 5;
    c.ranks_per_node = 2;
    c.experts = 10;
    c.hidden = 7;
    c.dtype = DType::kFloat16;
    c.stride_pad = pad;
    EXPECT_TRUE(matches_reference_in_every_mode(c));
  }
}

TEST(StridedRows, OnlyXAndExpertOutMayBeStrided_AndNeverNarrowerThanARow) {
  auto comms = Communicator::create_local(1, Topology::single_node(1));
  ASSERT_TRUE(comms.ok());
  Communicator& comm = comms.value()[0];
  std::vector<int64_t> ids = {0, 0};
  Result<Plan> plan = comm.plan(TensorView::host(ids.data(), DType::kInt64, {2, 1}), 1);
  ASSERT_TRUE(plan.ok());
  std::vector<float> x(32, 1.0F);
  std::vector<float> recv(32);
  TensorView xv = TensorView::host(x.data(), DType::kFloat32, {2, 4});
  TensorView rv = TensorView::host(recv.data(), DType::kFloat32, {2, 4});
  xv.row_stride = 3;
  EXPECT_EQ(comm.dispatch(plan.value(), xv, rv).message(),
            "x.row_stride = 3 is smaller than its row length 4");
  xv.row_stride = 8;
  rv.row_stride = 8;
  EXPECT_EQ(comm.dispatch(plan.value(), xv, rv).message(),
            "recv [2, 4] fp32 host, row stride 8 must have contiguous rows (row_stride 0 or 4)");
  rv.row_stride = 0;
  EXPECT_TRUE(comm.dispatch(plan.value(), xv, rv).ok());
}

TEST(Companion, TravelsWithEveryRow_EveryLayoutDedupAndTransportMode) {
  for (RecvLayout layout : {RecvLayout::expert_major(), RecvLayout::expert_major(8),
                            RecvLayout::rank_major(), RecvLayout::capacity_bounded(6)}) {
    Case c;
    c.world = 5;
    c.ranks_per_node = 2;
    c.experts = 10;
    c.hidden = 5;
    c.extra_cols = 3;
    c.layout = layout;
    c.chunk_bytes = 64;  // several rows per chunk, each with its companion
    EXPECT_TRUE(matches_reference_in_every_mode(c));
  }
}

TEST(Companion, Fp8RowsWithTheirFp32Scales) {
  // DeepEP-style fp8 dispatch: x [T, 256] e4m3 with one fp32 scale per 128 columns.
  auto comms = Communicator::create_local(4, Topology::nodes_of(4, 2));
  ASSERT_TRUE(comms.ok());
  const auto statuses = run_ranks(4, [&](int r) -> Status {
    const int64_t tokens = 6 + r;
    std::vector<int64_t> ids;
    for (int64_t t = 0; t < tokens; ++t) {
      ids.push_back((t + r) % 8);
      ids.push_back((3 * t + 1) % 8);
    }
    Communicator& comm = comms.value()[static_cast<size_t>(r)];
    Result<Plan> plan = comm.plan(TensorView::host(ids.data(), DType::kInt64, {tokens, 2}), 8);
    FUSCO_RETURN_IF_ERROR(plan.status());
    std::vector<uint8_t> x(static_cast<size_t>(tokens * 256));
    std::vector<float> scales(static_cast<size_t>(tokens * 2));
    for (int64_t t = 0; t < tokens; ++t) {
      for (int64_t h = 0; h < 256; ++h) x[static_cast<size_t>(t * 256 + h)] = uint8_t(t + 16 * r);
      scales[static_cast<size_t>(2 * t)] = static_cast<float>(100 * r + t);
      scales[static_cast<size_t>(2 * t + 1)] = -static_cast<float>(100 * r + t);
    }
    const int64_t rows = plan.value().num_recv_rows();
    std::vector<uint8_t> recv(static_cast<size_t>(rows * 256));
    std::vector<float> recv_scales(static_cast<size_t>(rows * 2));
    FUSCO_RETURN_IF_ERROR(
        comm.dispatch(plan.value(), TensorView::host(x.data(), DType::kFloat8E4M3, {tokens, 256}),
                      TensorView::host(recv.data(), DType::kFloat8E4M3, {rows, 256}),
                      TensorView::host(scales.data(), DType::kFloat32, {tokens, 2}),
                      TensorView::host(recv_scales.data(), DType::kFloat32, {rows, 2})));
    // Every received row's scales name its own source rank and token.
    for (int64_t row = 0; row < rows; ++row) {
      const float scale = recv_scales[static_cast<size_t>(2 * row)];
      const auto source = static_cast<int>(scale) / 100;
      const int64_t token = static_cast<int64_t>(scale) % 100;
      if (recv_scales[static_cast<size_t>(2 * row + 1)] != -scale ||
          recv[static_cast<size_t>(row * 256)] != uint8_t(token + 16 * source)) {
        return Status(StatusCode::kInternal, "row " + std::to_string(row) + " lost its scales");
      }
    }
    return Status();
  });
  for (const Status& s : statuses) EXPECT_TRUE(s.ok()) << s.to_string();
}

TEST(Companion, ShapesAreCheckedAndMustAgreeAcrossRanks) {
  auto comms = Communicator::create_local(2, Topology::single_node(2));
  ASSERT_TRUE(comms.ok());
  const auto statuses = run_ranks(2, [&](int r) -> Status {
    std::vector<int64_t> ids = {0, 1, 1};
    Communicator& comm = comms.value()[static_cast<size_t>(r)];
    Result<Plan> plan = comm.plan(TensorView::host(ids.data(), DType::kInt64, {3, 1}), 2);
    FUSCO_RETURN_IF_ERROR(plan.status());
    const int64_t rows = plan.value().num_recv_rows();
    std::vector<float> x(3 * 4);
    std::vector<float> recv(static_cast<size_t>(rows * 4));
    std::vector<int32_t> extra(3 * 3);
    std::vector<int32_t> extra_recv(static_cast<size_t>(rows * 3));
    const TensorView xv = TensorView::host(x.data(), DType::kFloat32, {3, 4});
    const TensorView rv = TensorView::host(recv.data(), DType::kFloat32, {rows, 4});
    // One column too few for extra_recv: an argument error naming it, on this rank.
    Status bad =
        comm.dispatch(plan.value(), xv, rv, TensorView::host(extra.data(), DType::kInt32, {3, 3}),
                      TensorView::host(extra_recv.data(), DType::kInt32, {rows, 2}));
    if (bad.message().find("extra_recv is [") == std::string::npos) {
      return Status(StatusCode::kInternal, "unexpected: " + bad.to_string());
    }
    // Rank 1 sends 2 columns, rank 0 sends 3: a mismatch on both.
    const int64_t cols = r == 0 ? 3 : 2;
    Status mismatch = comm.dispatch(
        plan.value(), xv, rv, TensorView::host(extra.data(), DType::kInt32, {3, cols}),
        TensorView::host(extra_recv.data(), DType::kInt32, {rows, cols}));
    if (mismatch.code() != StatusCode::kMismatch ||
        mismatch.message().find("companion tensor (extra) columns differs across ranks: rank 0 "
                                "has 3, rank 1 has 2") == std::string::npos) {
      return Status(StatusCode::kInternal, "unexpected: " + mismatch.to_string());
    }
    return comm.dispatch(plan.value(), xv, rv);  // the group still works
  });
  for (const Status& s : statuses) EXPECT_TRUE(s.ok()) << s.to_string();
}

}  // namespace
}  // namespace fusco::testing

namespace fusco::testing {
namespace {

// 4 ranks on 2 nodes; 30 tokens each, top-4 of 16 experts: about half the rows come back
// from the other node in combine.
Case rounds_case(int64_t buffer_rows) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.topk = 4;
  c.experts = 16;
  c.hidden = 12;
  c.dtype = DType::kFloat32;
  c.tokens_each = 30;
  c.combine_buffer_bytes = buffer_rows * c.hidden * 4;
  return c;
}

TEST(CombineRounds, ResultsEqualOneRound_InEveryModeAndLayout) {
  for (int64_t buffer_rows : {1, 7, 40}) {
    for (RecvLayout layout :
         {RecvLayout::expert_major(), RecvLayout::rank_major(), RecvLayout::capacity_bounded(10)}) {
      Case c = rounds_case(buffer_rows);
      c.layout = layout;
      EXPECT_TRUE(matches_reference_in_every_mode(c)) << buffer_rows << " rows";
    }
  }
}

TEST(CombineRounds, PlanSaysHowManyRounds_OneWithoutABound) {
  for (int64_t buffer_rows : {0, 1, 7, 1000}) {
    const Case c = rounds_case(buffer_rows);  // only its sizes are used here
    auto comms = Communicator::create_local(4, Topology::nodes_of(4, 2));
    ASSERT_TRUE(comms.ok());
    std::vector<int64_t> rounds(4);
    std::vector<int64_t> returned(4);
    // Rows coming back (one partial per remote node and token) over the buffer's rows.
    const auto asked = run_ranks(4, [&](int r) -> Status {
      std::mt19937_64 rng(static_cast<uint64_t>(r));
      std::vector<int64_t> ids = random_topk(30, 4, 16, 0.0, 0.0, rng);
      PlanOptions options;
      options.combine_buffer_bytes = c.combine_buffer_bytes;
      Result<Plan> plan = comms.value()[static_cast<size_t>(r)].plan(
          TensorView::host(ids.data(), DType::kInt64, {30, 4}), 16, ExpertMap(), options);
      FUSCO_RETURN_IF_ERROR(plan.status());
      rounds[static_cast<size_t>(r)] = plan.value().combine_rounds(c.hidden * 4);
      returned[static_cast<size_t>(r)] = plan.value().stats().inter_node_rows;
      return Status();
    });
    for (const Status& s : asked) ASSERT_TRUE(s.ok()) << s.to_string();
    for (int r = 0; r < 4; ++r) {
      if (buffer_rows == 0 || buffer_rows == 1000) {
        EXPECT_EQ(rounds[static_cast<size_t>(r)], 1);
      } else {  // at least the returned rows over the buffer, at most one per token
        EXPECT_GE(rounds[static_cast<size_t>(r)],
                  (returned[static_cast<size_t>(r)] + buffer_rows - 1) / buffer_rows);
        EXPECT_LE(rounds[static_cast<size_t>(r)], 30);
      }
    }
  }
}

TEST(CombineRounds, MoreThan64RoundsIsAnArgumentErrorNamingTheOption) {
  Case c = rounds_case(1);
  c.tokens_each = 100;  // about 100 tokens with rows coming back: more than 64 rounds
  auto comms = Communicator::create_local(4, Topology::nodes_of(4, 2));
  ASSERT_TRUE(comms.ok());
  const auto statuses = run_ranks(
      4, [&](int r) { return run_rank(c, comms.value()[static_cast<size_t>(r)], r).status; });
  int named = 0;
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
    named += s.message().find("options.combine_buffer_bytes = 48 holds 1 rows") != std::string::npos
                 ? 1
                 : 0;
  }
  EXPECT_GE(named, 1);
}

}  // namespace
}  // namespace fusco::testing
