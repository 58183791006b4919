#include "multirank/harness.hpp"

#include <algorithm>
#include <numeric>
#include <random>
#include <sstream>

#include "communicator_impl.hpp"
#include "reference/reference.hpp"
#include "testing/data.hpp"
#include "testing/rank_threads.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {

int64_t tokens_of(const Case& c, int rank) {
  return c.tokens.empty() ? c.tokens_each : c.tokens[static_cast<size_t>(rank)];
}

ExpertMap map_of(const Case& c) {
  if (!c.replicas.empty()) {
    return ExpertMap::with_replicas(c.replicas);
  }
  return c.owners.empty() ? ExpertMap() : ExpertMap::from_owners(c.owners);
}

DType weight_dtype_of(const Case& c) {
  return c.dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
}

std::vector<int64_t> routing_of(const Case& c, int rank) {
  if (!c.ids.empty()) {
    return c.ids[static_cast<size_t>(rank)];
  }
  std::mt19937_64 rng(c.seed * 7919 + static_cast<uint64_t>(rank));
  return random_topk(tokens_of(c, rank), c.topk, c.experts, c.masked, c.masked_token, rng);
}

std::vector<std::byte> x_of(const Case& c, int rank) {
  return random_elements(c.dtype, tokens_of(c, rank) * c.hidden,
                         c.seed * 31 + static_cast<uint64_t>(rank));
}
std::vector<std::byte> extra_of(const Case& c, int rank) {
  return random_elements(DType::kInt32, tokens_of(c, rank) * c.extra_cols,
                         c.seed * 43 + static_cast<uint64_t>(rank));
}
std::vector<std::byte> y_of(const Case& c, int rank, int64_t rows) {
  return random_elements(c.dtype, rows * c.hidden, c.seed * 37 + static_cast<uint64_t>(rank));
}
std::vector<std::byte> weights_of(const Case& c, int rank) {
  return random_elements(weight_dtype_of(c), tokens_of(c, rank) * c.topk,
                         c.seed * 41 + static_cast<uint64_t>(rank));
}

std::vector<std::byte> strided(std::vector<std::byte> data, const Case& c, int64_t rows) {
  if (c.stride_pad == 0) return data;
  const size_t row = static_cast<size_t>(c.hidden) * dtype_size(c.dtype);
  const size_t pitch = static_cast<size_t>(c.hidden + c.stride_pad) * dtype_size(c.dtype);
  std::vector<std::byte> spread(static_cast<size_t>(rows) * pitch, std::byte{0x7f});
  for (size_t r = 0; r < static_cast<size_t>(rows); ++r) {
    std::copy_n(data.begin() + static_cast<std::ptrdiff_t>(r * row), row,
                spread.begin() + static_cast<std::ptrdiff_t>(r * pitch));
  }
  return spread;
}

TensorView strided_view(std::byte* data, const Case& c, int64_t rows) {
  TensorView view = TensorView::host(data, c.dtype, {rows, c.hidden});
  view.row_stride = c.stride_pad == 0 ? 0 : c.hidden + c.stride_pad;
  return view;
}

PlanOptions options_of(const Case& c) {
  PlanOptions options;
  options.dedup = c.dedup;
  options.chunk_bytes = c.chunk_bytes;
  options.relay = c.relay;
  options.layout = c.layout;
  options.combine_buffer_bytes = c.combine_buffer_bytes;
  options.process_relays = c.process_relays;
  options.timeout_ms = 60000;
  return options;
}

Case fitted_to(Case c, int world, int ranks_per_node) {
  c.world = world;
  c.ranks_per_node = ranks_per_node;
  c.direct_access = false;
  if (!c.tokens.empty()) {
    c.tokens.resize(static_cast<size_t>(world), 17);
  }
  if (c.owners.empty() && c.replicas.empty()) {
    c.experts = (c.experts + world - 1) / world * world;
  }
  for (int32_t& owner : c.owners) {
    owner %= world;
  }
  for (std::vector<int32_t>& ranks : c.replicas) {  // folded onto the world, still distinct
    std::vector<int32_t> folded;
    for (int32_t rank : ranks) {
      if (std::find(folded.begin(), folded.end(), rank % world) == folded.end()) {
        folded.push_back(rank % world);
      }
    }
    ranks = folded;
  }
  return c;
}

RankResult counts_of(const Plan& plan) {
  RankResult result;
  result.tokens_per_expert = plan.tokens_per_expert();
  result.padded_tokens_per_expert = plan.padded_tokens_per_expert();
  result.dropped_per_expert = plan.dropped_per_expert();
  result.recv_local_experts = plan.recv_local_experts();
  result.local_experts = plan.local_experts();
  result.stats = plan.stats();
  return result;
}

std::string Case::describe() const {
  std::ostringstream out;
  out << "seed=" << seed << " world=" << world << " ranks_per_node=" << ranks_per_node
      << " topk=" << topk << " experts=" << experts << " hidden=" << hidden
      << " dtype=" << dtype_name(dtype) << " dedup=" << dedup_name(dedup)
      << " process_relays=" << process_relays_name(process_relays)
      << " relay=" << relay_policy_name(relay) << " layout=" << recv_layout_kind_name(layout.kind)
      << "/" << (layout.kind == RecvLayout::Kind::kCapacity ? layout.capacity : layout.alignment)
      << " stride_pad=" << stride_pad << " extra_cols=" << extra_cols
      << " combine_buffer_bytes=" << combine_buffer_bytes << " chunk_bytes=" << chunk_bytes
      << " map="
      << (!replicas.empty() ? "replicated"
          : owners.empty()  ? "contiguous"
                            : "explicit")
      << " ids=" << (int32_ids ? "int32" : "int64")
      << " direct_access=" << (direct_access ? "yes" : "no")
      << " library_recv=" << (library_recv ? "yes" : "no") << " tokens=";
  for (int r = 0; r < world; ++r) {
    out << (r > 0 ? "," : "") << tokens_of(*this, r);
  }
  return out.str();
}

namespace {
constexpr DType kAllDtypes[] = {DType::kFloat32,    DType::kFloat16,    DType::kBFloat16,
                                DType::kFloat8E4M3, DType::kFloat8E5M2, DType::kInt8,
                                DType::kInt32,      DType::kInt64,      DType::kFloat64};
}  // namespace

Case random_case(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  Case c;
  c.seed = seed;
  c.library_recv = seed % 3 == 0;  // not drawn: the other draws stay as they were
  c.world = pick(1, 9);
  c.ranks_per_node = pick(1, c.world);
  c.topk = pick(1, 8);
  const int64_t per_rank = pick(1, std::max(1, 512 / c.world / 4));
  c.experts = per_rank * c.world;
  const int map_kind = pick(0, 5);
  if (map_kind == 0) {  // uneven explicit map, some ranks may own nothing
    c.experts = pick(1, 40);
    for (int64_t e = 0; e < c.experts; ++e) {
      c.owners.push_back(pick(0, c.world - 1));
    }
  } else if (map_kind == 1) {  // replicated experts: 1..3 copies each, on distinct ranks
    c.experts = pick(1, 24);
    for (int64_t e = 0; e < c.experts; ++e) {
      std::vector<int32_t> ranks(static_cast<size_t>(c.world));
      std::iota(ranks.begin(), ranks.end(), 0);
      std::shuffle(ranks.begin(), ranks.end(), rng);
      ranks.resize(static_cast<size_t>(pick(1, std::min(3, c.world))));
      c.replicas.push_back(ranks);
    }
  }
  c.relay = static_cast<RelayPolicy>(pick(0, 1));
  c.stride_pad = pick(0, 3) == 0 ? pick(1, 5) : 0;
  c.extra_cols = pick(0, 3) == 0 ? pick(1, 4) : 0;
  if (pick(0, 3) == 0) {  // room for 8 .. 64 returned rows: up to 40 rounds
    c.combine_buffer_bytes = c.hidden * static_cast<int64_t>(dtype_size(c.dtype)) * pick(8, 64);
  }
  const int layout_kind = pick(0, 7);
  if (layout_kind == 1) {
    c.layout = RecvLayout::expert_major(pick(2, 8));
  } else if (layout_kind == 2) {
    c.layout = RecvLayout::rank_major();
  } else if (layout_kind == 3) {
    c.layout = RecvLayout::capacity_bounded(pick(0, 12));
  }
  constexpr int64_t kHiddens[] = {1, 7, 128};
  c.hidden = kHiddens[pick(0, 2)];
  c.dtype = kAllDtypes[pick(0, 8)];
  c.dedup = static_cast<Dedup>(pick(0, 2));
  constexpr int64_t kChunks[] = {1, 100, 1024, 1 << 20};
  c.chunk_bytes = kChunks[pick(0, 3)];
  c.int32_ids = pick(0, 1) == 1;
  for (int r = 0; r < c.world; ++r) {
    c.tokens.push_back(pick(0, 4) == 0 ? 0 : pick(1, 40));
  }
  c.direct_access = pick(0, 3) != 0;
  c.process_relays = static_cast<ProcessRelays>(pick(0, 2));
  return c;
}

RankResult run_rank(const Case& c, Communicator& comm, int rank) {
  RankResult result;
  const int64_t tokens = tokens_of(c, rank);
  std::vector<int64_t> ids = routing_of(c, rank);
  std::vector<int32_t> ids32(ids.begin(), ids.end());
  const TensorView idx = c.int32_ids
                             ? TensorView::host(ids32.data(), DType::kInt32, {tokens, c.topk})
                             : TensorView::host(ids.data(), DType::kInt64, {tokens, c.topk});
  Result<Plan> plan = comm.plan(idx, c.experts, map_of(c), options_of(c));
  if (!plan.ok()) {
    result.status = plan.status();
    return result;
  }
  result = counts_of(plan.value());
  std::vector<std::byte> x = strided(x_of(c, rank), c, tokens);
  const int64_t rows = plan.value().num_recv_rows();
  const size_t recv_bytes = static_cast<size_t>(rows * c.hidden) * dtype_size(c.dtype);
  result.recv.assign(recv_bytes, std::byte{0x5a});
  TensorView recv = TensorView::host(result.recv.data(), c.dtype, {rows, c.hidden});
  if (c.library_recv) {
    Result<TensorView> view = comm.recv_buffer(plan.value(), c.dtype, c.hidden);
    if (!view.ok()) {
      result.status = view.status();
      return result;
    }
    recv = view.value();
    if (recv_bytes > 0) std::memset(recv.data, 0x5a, recv_bytes);  // dispatch zeroes padding
  }
  if (c.extra_cols > 0) {
    std::vector<std::byte> extra = extra_of(c, rank);
    result.extra_recv.assign(static_cast<size_t>(rows * c.extra_cols) * 4, std::byte{0x5a});
    result.status = comm.dispatch(
        plan.value(), strided_view(x.data(), c, tokens), recv,
        TensorView::host(extra.data(), DType::kInt32, {tokens, c.extra_cols}),
        TensorView::host(result.extra_recv.data(), DType::kInt32, {rows, c.extra_cols}));
  } else {
    result.status = comm.dispatch(plan.value(), strided_view(x.data(), c, tokens), recv);
  }
  if (c.library_recv && result.status.ok() && recv_bytes > 0) {
    std::memcpy(result.recv.data(), recv.data, recv_bytes);
  }
  if (!result.status.ok() || !dtype_supports_combine(c.dtype)) {
    return result;
  }
  std::vector<std::byte> y = strided(y_of(c, rank, rows), c, rows);
  TensorView expert_out = strided_view(y.data(), c, rows);
  if (c.library_recv) {  // experts in place: their outputs overwrite the received rows
    const std::vector<std::byte> packed = y_of(c, rank, rows);
    if (!packed.empty()) std::memcpy(recv.data, packed.data(), packed.size());
    expert_out = recv;
  }
  std::vector<std::byte> weights = weights_of(c, rank);
  result.out.assign(static_cast<size_t>(tokens * c.hidden) * dtype_size(c.dtype), std::byte{0x5a});
  result.status =
      comm.combine(plan.value(), expert_out,
                   TensorView::host(weights.data(), weight_dtype_of(c), {tokens, c.topk}),
                   TensorView::host(result.out.data(), c.dtype, {tokens, c.hidden}));
  return result;
}

Expected expected_of(const Case& c) {
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::vector<std::byte>> x;
  std::vector<TensorView> idx;
  std::vector<TensorView> xv;
  for (int r = 0; r < c.world; ++r) {
    ids.push_back(routing_of(c, r));
    x.push_back(x_of(c, r));
  }
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    const int64_t tokens = tokens_of(c, r);
    idx.push_back(TensorView::host(ids[rr].data(), DType::kInt64, {tokens, c.topk}));
    xv.push_back(TensorView::host(x[rr].data(), c.dtype, {tokens, c.hidden}));
  }
  const ExpertMap map = map_of(c);
  const Topology topology = Topology::nodes_of(c.world, c.ranks_per_node);
  const reference::ReceiveLayout layout =
      reference::receive_layout(idx, c.experts, map, topology, c.layout);
  Expected want;
  want.tokens_per_expert = layout.tokens_per_expert;
  want.padded_tokens_per_expert = layout.padded_tokens_per_expert;
  want.dropped_per_expert = layout.dropped_per_expert;
  want.recv_local_experts = layout.recv_local_experts;
  want.recv = reference::dispatch(layout, xv);
  if (c.extra_cols > 0) {
    std::vector<std::vector<std::byte>> extras;
    std::vector<TensorView> ev;
    for (int r = 0; r < c.world; ++r) extras.push_back(extra_of(c, r));
    for (int r = 0; r < c.world; ++r) {
      ev.push_back(TensorView::host(extras[static_cast<size_t>(r)].data(), DType::kInt32,
                                    {tokens_of(c, r), c.extra_cols}));
    }
    want.extra_recv = reference::dispatch(layout, ev);
  }
  if (!dtype_supports_combine(c.dtype)) {
    return want;
  }
  std::vector<std::vector<std::byte>> y;
  std::vector<std::vector<std::byte>> weights;
  std::vector<TensorView> yv;
  std::vector<TensorView> wv;
  for (int r = 0; r < c.world; ++r) {
    y.push_back(y_of(c, r, static_cast<int64_t>(layout.rows[static_cast<size_t>(r)].size())));
    weights.push_back(weights_of(c, r));
  }
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    const auto rows = static_cast<int64_t>(layout.rows[rr].size());
    yv.push_back(TensorView::host(y[rr].data(), c.dtype, {rows, c.hidden}));
    wv.push_back(
        TensorView::host(weights[rr].data(), weight_dtype_of(c), {tokens_of(c, r), c.topk}));
  }
  want.out = reference::combine(layout, idx, wv, yv, topology, c.dedup);
  return want;
}

::testing::AssertionResult matches_expected(const Case& c, const Expected& want, int rank,
                                            const RankResult& got) {
  const auto r = static_cast<size_t>(rank);
  if (!got.status.ok()) {
    return ::testing::AssertionFailure()
           << "rank " << rank << " failed: " << got.status.to_string() << ": " << c.describe();
  }
  if (got.tokens_per_expert != want.tokens_per_expert[r]) {
    return ::testing::AssertionFailure()
           << "tokens_per_expert differs on rank " << rank << ": " << c.describe();
  }
  if (got.padded_tokens_per_expert != want.padded_tokens_per_expert[r] ||
      got.dropped_per_expert != want.dropped_per_expert[r]) {
    return ::testing::AssertionFailure()
           << "padded or dropped rows per expert differ on rank " << rank << ": " << c.describe();
  }
  if (got.recv_local_experts != want.recv_local_experts[r]) {
    return ::testing::AssertionFailure()
           << "recv_local_experts differs on rank " << rank << ": " << c.describe();
  }
  if (got.recv != want.recv[r]) {
    return ::testing::AssertionFailure()
           << "dispatch result differs on rank " << rank << ": " << c.describe();
  }
  if (c.extra_cols > 0 && got.extra_recv != want.extra_recv[r]) {
    return ::testing::AssertionFailure()
           << "companion tensor rows differ on rank " << rank << ": " << c.describe();
  }
  if (dtype_supports_combine(c.dtype) && got.out != want.out[r]) {
    size_t first = 0;
    while (first < std::min(want.out[r].size(), got.out.size()) &&
           got.out[first] == want.out[r][first]) {
      ++first;
    }
    return ::testing::AssertionFailure() << "combine result differs on rank " << rank << " at byte "
                                         << first << ": " << c.describe();
  }
  return ::testing::AssertionSuccess();
}

Outcome run_case(const Case& c) {
  Outcome outcome;
  auto comms = Communicator::Impl::create_local(
      c.world, Topology::nodes_of(c.world, c.ranks_per_node), c.direct_access);
  EXPECT_TRUE(comms.ok()) << comms.status().to_string();
  if (!comms.ok()) {
    return outcome;
  }
  std::vector<RankResult> results(static_cast<size_t>(c.world));
  const std::vector<Status> statuses = run_ranks(c.world, [&](int rank) -> Status {
    const auto r = static_cast<size_t>(rank);
    results[r] = run_rank(c, comms.value()[r], rank);
    return results[r].status;
  });
  for (int r = 0; r < c.world; ++r) {
    EXPECT_TRUE(statuses[static_cast<size_t>(r)].ok())
        << "rank " << r << ": " << statuses[static_cast<size_t>(r)].to_string() << "\n"
        << c.describe();
  }
  for (const RankResult& result : results) {
    outcome.recv.push_back(result.recv);
    outcome.out.push_back(result.out);
    outcome.tokens_per_expert.push_back(result.tokens_per_expert);
    outcome.dropped_per_expert.push_back(result.dropped_per_expert);
    outcome.local_experts.push_back(result.local_experts);
    outcome.stats.push_back(result.stats);
  }
  outcome.results = std::move(results);
  outcome.ok = first_error(statuses).ok();
  return outcome;
}

::testing::AssertionResult every_rank_matches(const Case& c, const std::vector<RankResult>& got) {
  const Expected want = expected_of(c);
  for (int r = 0; r < c.world; ++r) {
    ::testing::AssertionResult verdict = matches_expected(c, want, r, got[static_cast<size_t>(r)]);
    if (!verdict) return verdict;
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult matches_reference(const Case& c) {
  const Outcome got = run_case(c);
  if (!got.ok) {
    return ::testing::AssertionFailure() << "run failed: " << c.describe();
  }
  return every_rank_matches(c, got.results);
}

::testing::AssertionResult matches_reference_in_every_mode(Case c) {
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    for (bool direct : {true, false}) {
      c.dedup = dedup;
      c.direct_access = direct;
      ::testing::AssertionResult verdict = matches_reference(c);
      if (!verdict) return verdict;
    }
  }
  return ::testing::AssertionSuccess();
}

}  // namespace fusco::testing
