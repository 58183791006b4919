// Google Benchmark: the cost of planning one rank's part (layout + counts + row assignment +
// staged lists + combine program + decoding the relay metadata), without communication: the
// exchanged inputs are synthesised. Reports the peak heap bytes the planning allocates.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <new>

#include "core/layout.hpp"
#include "core/wire.hpp"
#include "plan/planner.hpp"
#include "plan/replica_choice.hpp"
#include "testing/routing.hpp"

namespace {

std::atomic<int64_t> live_bytes{0};
std::atomic<int64_t> peak_bytes{0};

void note_alloc(int64_t bytes) {
  const int64_t now = live_bytes.fetch_add(bytes) + bytes;
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
}

}  // namespace

// Heap accounting for the peak-memory counter: each block carries its size in front.
void* operator new(std::size_t size) {
  auto* block = static_cast<std::size_t*>(std::malloc(size + 16));
  if (block == nullptr) throw std::bad_alloc();
  block[0] = size;
  note_alloc(static_cast<int64_t>(size));
  return reinterpret_cast<char*>(block) + 16;
}
void operator delete(void* ptr) noexcept {
  if (ptr == nullptr) return;
  auto* block = reinterpret_cast<std::size_t*>(static_cast<char*>(ptr) - 16);
  live_bytes.fetch_sub(static_cast<int64_t>(block[0]));
  std::free(block);
}
void operator delete(void* ptr, std::size_t) noexcept { operator delete(ptr); }

namespace fusco {
namespace {

// Seconds since `since`, added to `total`; returns now.
using BenchClock = std::chrono::steady_clock;
BenchClock::time_point add_step(double& total, BenchClock::time_point since) {
  const BenchClock::time_point now = BenchClock::now();
  total += std::chrono::duration<double>(now - since).count();
  return now;
}

// One rank's planning steps as Communicator::plan runs them. With reuse (the last argument
// 1, what a communicator does) every iteration builds in the plan the previous iteration
// dropped, as a training step re-plans the shapes of the last; 0 builds in new memory each
// time. Counters: each step's mean time, and peak_MB, the most heap bytes alive at once from
// before the first iteration (the kept plan and scratch included).
void BM_PlanOneRank(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const int topk = static_cast<int>(state.range(1));
  const int64_t experts = state.range(2);
  const int world = static_cast<int>(state.range(3));
  const int ranks_per_node = static_cast<int>(state.range(4));
  const bool reuse = state.range(5) != 0;
  const Topology topo = Topology::nodes_of(world, ranks_per_node);
  const std::vector<int32_t> ids =
      testing::generate_routing(testing::RoutingSpec{}, tokens, topk, experts, 0, topo, 42);
  const TensorView idx =
      TensorView::host(const_cast<int32_t*>(ids.data()), DType::kInt32, {tokens, topk});
  const int64_t local = experts / world;
  // What the exchanges would deliver: counts from every source and starts from every
  // destination (uniform routing: every source sends about T*k/E rows per expert).
  std::vector<plan::Bytes> counts_in(static_cast<size_t>(world));
  std::vector<plan::Bytes> starts_in(static_cast<size_t>(world));
  for (int s = 0; s < world; ++s) {
    core::WireWriter counts;
    core::WireWriter starts;
    for (int64_t e = 0; e < local; ++e) {
      counts.put<int64_t>(tokens * topk / experts);
      starts.put<int64_t>(e * tokens * topk / experts * world + s);
    }
    counts_in[static_cast<size_t>(s)] = counts.take();
    starts_in[static_cast<size_t>(s)] = starts.take();
  }
  PlanOptions options;
  options.dedup = Dedup::kNode;
  const int64_t before = live_bytes.load();
  peak_bytes.store(before);
  auto memory = std::make_shared<plan::PlanMemory>();
  double layout_s = 0, offsets_s = 0, sender_s = 0, decode_s = 0;
  for (auto _ : state) {
    if (!reuse) memory = std::make_shared<plan::PlanMemory>();
    BenchClock::time_point at = BenchClock::now();
    auto map = core::resolve_expert_map(ExpertMap(), experts, world);
    auto layout = core::count_layout(idx, map.value());
    auto out_counts = plan::encode_expert_counts(layout.value(), map.value());
    at = add_step(layout_s, at);
    auto offsets = plan::compute_receiver_offsets(counts_in, local);
    at = add_step(offsets_s, at);
    std::unique_ptr<detail::PlanData> data = memory->take();
    plan::start_plan(*data, 0, topo, options, layout.value(), map.value(), true, false);
    plan::set_receiver_side(*data, offsets.value());
    const Status built = plan::build_sender_side(*data, layout.value(), map.value(), idx, starts_in,
                                                 memory->scratch());
    at = add_step(sender_s, at);
    // As a relay this rank receives about as much metadata as it sends (uniform routing).
    Status decoded;
    for (size_t source = 0; source < memory->scratch().metadata.size(); ++source) {
      decoded = plan::decode_staged_in(*data, static_cast<int>(source),
                                       memory->scratch().metadata[source], &memory->scratch());
    }
    add_step(decode_s, at);
    std::shared_ptr<const detail::PlanData> plan = memory->publish(std::move(data));
    benchmark::DoNotOptimize(built);
    benchmark::DoNotOptimize(decoded);
    benchmark::DoNotOptimize(out_counts);
    benchmark::DoNotOptimize(plan);
  }
  const auto per_iteration_ms = [&](double seconds) {
    return benchmark::Counter(seconds * 1e3 / static_cast<double>(state.iterations()));
  };
  state.counters["layout_ms"] = per_iteration_ms(layout_s);
  state.counters["offsets_ms"] = per_iteration_ms(offsets_s);
  state.counters["sender_ms"] = per_iteration_ms(sender_s);
  state.counters["decode_ms"] = per_iteration_ms(decode_s);
  state.counters["peak_MB"] = static_cast<double>(peak_bytes.load() - before) / 1e6;
  state.counters["tokens"] = static_cast<double>(tokens);
}

BENCHMARK(BM_PlanOneRank)
    ->Args({16384, 8, 256, 64, 8, 1})
    ->Args({16384, 8, 256, 64, 8, 0})
    ->Args({16384, 8, 1024, 1024, 8, 1})
    ->Args({4096, 8, 256, 8, 4, 1})
    ->Unit(benchmark::kMillisecond);

// One rank's planning with 256 logical experts on 1024 ranks: every expert has 4 copies
// (expert e on ranks e, e + 256, e + 512, e + 768), so the replica choice runs over the
// group-wide counts (synthesised, uniform) before the steps above.
void BM_PlanOneRankReplicated(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const int topk = 8;
  const int64_t experts = 256;
  const int world = 1024;
  const Topology topo = Topology::nodes_of(world, 8);
  std::vector<std::vector<int32_t>> replicas(static_cast<size_t>(experts));
  for (int64_t e = 0; e < experts; ++e) {
    for (int c = 0; c < 4; ++c) {
      replicas[static_cast<size_t>(e)].push_back(static_cast<int32_t>(e + c * experts));
    }
  }
  const ExpertMap expert_map = ExpertMap::with_replicas(replicas);
  const std::vector<int32_t> ids =
      testing::generate_routing(testing::RoutingSpec{}, tokens, topk, experts, 0, topo, 42);
  const TensorView idx =
      TensorView::host(const_cast<int32_t*>(ids.data()), DType::kInt32, {tokens, topk});
  const int64_t rows_per_expert = tokens * topk / experts;
  plan::ReplicaDemand demand;
  demand.base_rows.assign(static_cast<size_t>(world), 0);
  demand.rows.assign(static_cast<size_t>(world * experts), rows_per_expert);
  {  // this rank's own counts must be exact: its quotas cover exactly its rows
    auto map = core::resolve_expert_map(expert_map, experts, world);
    auto layout = core::count_layout(idx, map.value());
    const plan::SenderDemand mine =
        plan::sender_demand(layout.value(), map.value(), plan::ReplicatedExperts(map.value()));
    std::copy(mine.replicated_rows.begin(), mine.replicated_rows.end(), demand.rows.begin());
  }
  // Each rank holds one copy; every source sends it about rows_per_expert / 4 rows.
  std::vector<plan::Bytes> counts_in(static_cast<size_t>(world));
  std::vector<plan::Bytes> starts_in(static_cast<size_t>(world));
  for (int s = 0; s < world; ++s) {
    core::WireWriter counts;
    core::WireWriter starts;
    counts.put<int64_t>(rows_per_expert / 4);
    starts.put<int64_t>(s * (rows_per_expert / 4));
    counts_in[static_cast<size_t>(s)] = counts.take();
    starts_in[static_cast<size_t>(s)] = starts.take();
  }
  for (auto _ : state) {
    auto map = core::resolve_expert_map(expert_map, experts, world);
    auto layout = core::count_layout(idx, map.value());
    const plan::ReplicatedExperts replicated(map.value());
    const plan::SenderDemand mine = plan::sender_demand(layout.value(), map.value(), replicated);
    const plan::ReplicaChoice choice =
        plan::choose_replicas(map.value(), replicated, topo, demand, 0);
    auto routed = plan::route_to_copies(idx, layout.value(), map.value(), replicated, choice);
    auto out_counts = plan::encode_expert_counts(routed.value().layout, routed.value().map);
    auto offsets = plan::compute_receiver_offsets(counts_in, 1);
    detail::PlanData data = plan::start_plan_data(0, topo, PlanOptions(), routed.value().layout,
                                                  map.value(), true, false);
    auto metadata = plan::build_sender_side(data, routed.value().layout, routed.value().map,
                                            routed.value().view(), starts_in);
    Status decoded;
    for (size_t source = 0; source < metadata.value().size(); ++source) {
      decoded = plan::decode_staged_in(data, static_cast<int>(source), metadata.value()[source]);
    }
    benchmark::DoNotOptimize(mine);
    benchmark::DoNotOptimize(decoded);
    benchmark::DoNotOptimize(out_counts);
    benchmark::DoNotOptimize(offsets);
  }
  state.counters["tokens"] = static_cast<double>(tokens);
}

BENCHMARK(BM_PlanOneRankReplicated)->Arg(16384)->Unit(benchmark::kMillisecond);

void BM_Layout(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const Topology topo = Topology::nodes_of(64, 8);
  const std::vector<int32_t> ids =
      testing::generate_routing(testing::RoutingSpec{}, tokens, 8, 256, 0, topo, 42);
  const TensorView idx =
      TensorView::host(const_cast<int32_t*>(ids.data()), DType::kInt32, {tokens, 8});
  auto map = core::resolve_expert_map(ExpertMap(), 256, 64);
  for (auto _ : state) {
    auto layout = core::build_layout(idx, map.value());
    benchmark::DoNotOptimize(layout);
  }
}

BENCHMARK(BM_Layout)->Arg(16384)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace fusco

BENCHMARK_MAIN();
