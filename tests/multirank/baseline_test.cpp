// The unfused baseline (permute -> all-to-all -> re-sort) gives the reference results.

#include <gtest/gtest.h>

#include <random>

#include "baseline/unfused.hpp"
#include "multirank/harness.hpp"
#include "reference/reference.hpp"
#include "testing/rank_threads.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {
namespace {

void expect_baseline_matches_reference(int world, int topk, int64_t experts, int64_t hidden,
                                       DType dtype, std::vector<int64_t> tokens, uint64_t seed) {
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::vector<std::vector<int64_t>> ids(static_cast<size_t>(world));
  std::vector<std::vector<std::byte>> x(static_cast<size_t>(world)), y(ids.size()),
      recv(ids.size()), out(ids.size());
  std::vector<std::vector<float>> w(ids.size());
  std::vector<TensorView> idx_views, x_views, y_views, w_views;
  for (int r = 0; r < world; ++r) {
    const auto rr = static_cast<size_t>(r);
    std::mt19937_64 rng(seed + rr);
    ids[rr] = random_topk(tokens[rr], topk, experts, 0.2, 0.1, rng);
    x[rr] = random_elements(dtype, tokens[rr] * hidden, seed * 3 + rr);
    w[rr].resize(static_cast<size_t>(tokens[rr] * topk));
    for (float& v : w[rr]) {
      v = std::uniform_real_distribution<float>(-1, 1)(rng);
    }
    idx_views.push_back(TensorView::host(ids[rr].data(), DType::kInt64, {tokens[rr], topk}));
    x_views.push_back(TensorView::host(x[rr].data(), dtype, {tokens[rr], hidden}));
    w_views.push_back(TensorView::host(w[rr].data(), DType::kFloat32, {tokens[rr], topk}));
  }
  const auto layout =
      reference::receive_layout(idx_views, experts, ExpertMap(), Topology::single_node(world));
  for (int r = 0; r < world; ++r) {
    const auto rr = static_cast<size_t>(r);
    const auto rows = static_cast<int64_t>(layout.rows[rr].size());
    y[rr] = random_elements(dtype, rows * hidden, seed * 5 + rr);
    y_views.push_back(TensorView::host(y[rr].data(), dtype, {rows, hidden}));
  }
  auto ranks = baseline::UnfusedRank::create_group(world);
  const auto statuses = run_ranks(world, [&](int r) -> Status {
    const auto rr = static_cast<size_t>(r);
    baseline::UnfusedRank& rank = ranks[rr];
    FUSCO_RETURN_IF_ERROR(rank.prepare(idx_views[rr], experts, ExpertMap(), 30000));
    recv[rr].resize(static_cast<size_t>(rank.num_recv_rows() * hidden) * dtype_size(dtype));
    FUSCO_RETURN_IF_ERROR(rank.dispatch(
        x_views[rr], TensorView::host(recv[rr].data(), dtype, {rank.num_recv_rows(), hidden})));
    out[rr].resize(static_cast<size_t>(tokens[rr] * hidden) * dtype_size(dtype));
    return rank.combine(y_views[rr], w_views[rr],
                        TensorView::host(out[rr].data(), dtype, {tokens[rr], hidden}));
  });
  ASSERT_TRUE(first_error(statuses).ok()) << first_error(statuses).to_string();
  const auto want_recv = reference::dispatch(layout, x_views);
  const auto want_out = reference::combine(layout, idx_views, w_views, y_views,
                                           Topology::single_node(world), Dedup::kNone);
  for (int r = 0; r < world; ++r) {
    EXPECT_EQ(ranks[static_cast<size_t>(r)].tokens_per_expert(),
              layout.tokens_per_expert[static_cast<size_t>(r)]);
    EXPECT_EQ(recv[static_cast<size_t>(r)], want_recv[static_cast<size_t>(r)]) << "rank " << r;
    EXPECT_EQ(out[static_cast<size_t>(r)], want_out[static_cast<size_t>(r)]) << "rank " << r;
  }
}

TEST(UnfusedBaseline, MatchesReference_Bf16) {
  expect_baseline_matches_reference(4, 4, 16, 33, DType::kBFloat16, {20, 0, 31, 7}, 11);
}

TEST(UnfusedBaseline, MatchesReference_Fp32_OddWorld) {
  expect_baseline_matches_reference(5, 8, 40, 16, DType::kFloat32, {9, 9, 9, 0, 12}, 12);
}

TEST(UnfusedBaseline, MatchesReference_WorldOne) {
  expect_baseline_matches_reference(1, 2, 3, 5, DType::kFloat16, {13}, 13);
}

}  // namespace
}  // namespace fusco::testing
