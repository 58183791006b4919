#include "multirank/harness.hpp"

#include <random>
#include <sstream>

#include "communicator_impl.hpp"
#include "core/convert.hpp"
#include "reference/reference.hpp"
#include "testing/data.hpp"
#include "testing/rank_threads.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {

namespace {

int64_t tokens_of(const Case& c, int rank) {
  return c.tokens.empty() ? c.tokens_each : c.tokens[static_cast<size_t>(rank)];
}

ExpertMap map_of(const Case& c) {
  return c.owners.empty() ? ExpertMap() : ExpertMap::from_owners(c.owners);
}

std::vector<std::vector<int64_t>> routing_of(const Case& c) {
  if (!c.ids.empty()) {
    return c.ids;
  }
  std::vector<std::vector<int64_t>> ids;
  for (int r = 0; r < c.world; ++r) {
    std::mt19937_64 rng(c.seed * 7919 + static_cast<uint64_t>(r));
    ids.push_back(random_topk(tokens_of(c, r), c.topk, c.experts, c.masked, c.masked_token, rng));
  }
  return ids;
}

}  // namespace

std::string Case::describe() const {
  std::ostringstream out;
  out << "seed=" << seed << " world=" << world << " ranks_per_node=" << ranks_per_node
      << " topk=" << topk << " experts=" << experts << " hidden=" << hidden
      << " dtype=" << dtype_name(dtype) << " dedup=" << dedup_name(dedup)
      << " chunk_bytes=" << chunk_bytes << " map=" << (owners.empty() ? "contiguous" : "explicit")
      << " ids=" << (int32_ids ? "int32" : "int64")
      << " direct_access=" << (direct_access ? "yes" : "no") << " tokens=";
  for (int r = 0; r < world; ++r) {
    out << (r > 0 ? "," : "") << tokens_of(*this, r);
  }
  return out.str();
}

Outcome run_case(const Case& c) {
  const std::vector<std::vector<int64_t>> ids = routing_of(c);
  std::vector<std::vector<int32_t>> ids32(static_cast<size_t>(c.world));
  std::vector<std::vector<std::byte>> x(static_cast<size_t>(c.world));
  std::vector<std::vector<std::byte>> y(static_cast<size_t>(c.world));
  std::vector<std::vector<std::byte>> weights(static_cast<size_t>(c.world));
  const DType weight_dtype = c.dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
  Outcome outcome;
  outcome.recv.resize(static_cast<size_t>(c.world));
  outcome.out.resize(static_cast<size_t>(c.world));
  outcome.tokens_per_expert.resize(static_cast<size_t>(c.world));
  outcome.stats.resize(static_cast<size_t>(c.world));
  const bool combines = dtype_supports_combine(c.dtype);

  PlanOptions options;
  options.dedup = c.dedup;
  options.chunk_bytes = c.chunk_bytes;
  options.timeout_ms = 60000;
  auto comms = Communicator::Impl::create_local(
      c.world, Topology::nodes_of(c.world, c.ranks_per_node), c.direct_access);
  EXPECT_TRUE(comms.ok()) << comms.status().to_string();
  if (!comms.ok()) {
    return outcome;
  }
  const std::vector<Status> statuses = run_ranks(c.world, [&](int rank) -> Status {
    const auto r = static_cast<size_t>(rank);
    Communicator& comm = comms.value()[r];
    const int64_t tokens = tokens_of(c, rank);
    TensorView idx;
    if (c.int32_ids) {
      ids32[r].assign(ids[r].begin(), ids[r].end());
      idx = TensorView::host(ids32[r].data(), DType::kInt32, {tokens, c.topk});
    } else {
      idx = TensorView::host(const_cast<int64_t*>(ids[r].data()), DType::kInt64, {tokens, c.topk});
    }
    Result<Plan> plan = comm.plan(idx, c.experts, map_of(c), options);
    FUSCO_RETURN_IF_ERROR(plan.status());
    outcome.tokens_per_expert[r] = plan.value().tokens_per_expert();
    outcome.stats[r] = plan.value().stats();
    x[r] = random_elements(c.dtype, tokens * c.hidden, c.seed * 31 + r);
    const int64_t rows = plan.value().num_recv_rows();
    outcome.recv[r].assign(static_cast<size_t>(rows * c.hidden) * dtype_size(c.dtype),
                           std::byte{0x5a});
    FUSCO_RETURN_IF_ERROR(
        comm.dispatch(plan.value(), TensorView::host(x[r].data(), c.dtype, {tokens, c.hidden}),
                      TensorView::host(outcome.recv[r].data(), c.dtype, {rows, c.hidden})));
    if (!combines) {
      return Status();
    }
    y[r] = random_elements(c.dtype, rows * c.hidden, c.seed * 37 + r);
    weights[r] = random_elements(weight_dtype, tokens * c.topk, c.seed * 41 + r);
    outcome.out[r].assign(static_cast<size_t>(tokens * c.hidden) * dtype_size(c.dtype),
                          std::byte{0x5a});
    return comm.combine(plan.value(), TensorView::host(y[r].data(), c.dtype, {rows, c.hidden}),
                        TensorView::host(weights[r].data(), weight_dtype, {tokens, c.topk}),
                        TensorView::host(outcome.out[r].data(), c.dtype, {tokens, c.hidden}));
  });
  for (int r = 0; r < c.world; ++r) {
    EXPECT_TRUE(statuses[static_cast<size_t>(r)].ok())
        << "rank " << r << ": " << statuses[static_cast<size_t>(r)].to_string() << "\n"
        << c.describe();
  }
  if (!first_error(statuses).ok()) {
    return outcome;
  }
  // Keep the inputs for the reference check.
  outcome.x_ = std::move(x);
  outcome.y_ = std::move(y);
  outcome.weights_ = std::move(weights);
  outcome.ids_ = ids;
  return outcome;
}

::testing::AssertionResult matches_reference(const Case& c) {
  Outcome got = run_case(c);
  if (got.ids_.empty()) {
    return ::testing::AssertionFailure() << "run failed: " << c.describe();
  }
  std::vector<TensorView> idx;
  std::vector<TensorView> x;
  std::vector<TensorView> y;
  std::vector<TensorView> w;
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    const int64_t tokens = tokens_of(c, r);
    idx.push_back(TensorView::host(got.ids_[rr].data(), DType::kInt64, {tokens, c.topk}));
    x.push_back(TensorView::host(got.x_[rr].data(), c.dtype, {tokens, c.hidden}));
  }
  const ExpertMap map = map_of(c);
  const reference::ReceiveLayout layout = reference::receive_layout(idx, c.experts, map, c.world);
  const auto want_recv = reference::dispatch(layout, x);
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    if (got.tokens_per_expert[rr] != layout.tokens_per_expert[rr]) {
      return ::testing::AssertionFailure()
             << "tokens_per_expert differs on rank " << r << ": " << c.describe();
    }
    if (got.recv[rr] != want_recv[rr]) {
      return ::testing::AssertionFailure()
             << "dispatch result differs on rank " << r << ": " << c.describe();
    }
  }
  if (!dtype_supports_combine(c.dtype)) {
    return ::testing::AssertionSuccess();
  }
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    const int64_t rows = static_cast<int64_t>(layout.rows[rr].size());
    const int64_t tokens = tokens_of(c, r);
    y.push_back(TensorView::host(got.y_[rr].data(), c.dtype, {rows, c.hidden}));
    w.push_back(TensorView::host(got.weights_[rr].data(),
                                 c.dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32,
                                 {tokens, c.topk}));
  }
  const auto want_out = reference::combine(layout, idx, w, y, c.experts, map,
                                           Topology::nodes_of(c.world, c.ranks_per_node), c.dedup);
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    if (got.out[rr] != want_out[rr]) {
      size_t first = 0;
      while (first < want_out[rr].size() && got.out[rr][first] == want_out[rr][first]) {
        ++first;
      }
      return ::testing::AssertionFailure() << "combine result differs on rank " << r << " at byte "
                                           << first << ": " << c.describe();
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace fusco::testing
