// libFuzzer target: random groups, routings, expert maps and options through the public
// plan / dispatch / combine of an in-process group (with and without direct access).
// Properties checked on every input:
//   - no crash, no sanitizer report, no hang (every wait is bounded);
//   - planning reaches one verdict: all ranks succeed or all fail;
//   - when all succeed, dispatch and combine equal the reference oracle bit for bit;
//   - after an argument error the group still works;
//   - huge sizes (num_experts, alignment, capacity, chunk and combine buffer bytes up to
//     2^63 - 1) are refused or honoured, never an exception, a crash or a huge allocation.

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

#include "communicator_impl.hpp"
#include "fusco/fusco.hpp"
#include "reference/reference.hpp"
#include "testing/data.hpp"
#include "testing/rank_threads.hpp"

namespace fusco::fuzz {
namespace {

struct Input {
  int world = 1;
  int ranks_per_node = 0;
  int topk = 1;
  int64_t experts = 1;
  int64_t hidden = 1;
  bool direct_access = true;
  bool int32_ids = false;
  std::vector<int32_t> owners;                 // explicit map when not empty (may be invalid)
  std::vector<std::vector<int32_t>> replicas;  // replicated map when not empty (may be invalid)
  PlanOptions options;
  std::vector<std::vector<int64_t>> ids;  // per rank, [T_r, k] (may hold invalid ids)
};

// One in eight inputs: one size drawn from [2^20, 2^63 - 1] (num_experts only with the
// default map, whose size the input does not spell out).
void make_one_size_huge(FuzzedDataProvider& in, bool default_map, Input& c) {
  if (in.ConsumeIntegralInRange(0, 7) != 0) return;
  const int64_t huge =
      in.ConsumeIntegralInRange<int64_t>(int64_t{1} << 20, std::numeric_limits<int64_t>::max());
  switch (in.ConsumeIntegralInRange(0, 4)) {
    case 0:
      if (default_map) c.experts = huge;
      break;
    case 1:
      c.options.layout = RecvLayout::expert_major(huge);
      break;
    case 2:
      c.options.layout = RecvLayout::capacity_bounded(huge, RecvLayout::Overflow::kDrop);
      break;
    case 3:
      c.options.chunk_bytes = huge;
      break;
    default:
      c.options.combine_buffer_bytes = huge;
      break;
  }
}

Input read_input(FuzzedDataProvider& in) {
  Input c;
  c.world = in.ConsumeIntegralInRange(1, 6);
  c.ranks_per_node = in.ConsumeIntegralInRange(0, c.world);
  c.topk = in.ConsumeIntegralInRange(1, 8);
  c.experts = in.ConsumeIntegralInRange<int64_t>(1, 48);
  c.hidden = in.ConsumeIntegralInRange<int64_t>(1, 9);
  c.direct_access = in.ConsumeBool();
  c.int32_ids = in.ConsumeBool();
  // Mostly valid ranks; -1 and world are out of range.
  auto some_rank = [&] {
    return in.ConsumeIntegralInRange(in.ConsumeBool() ? 0 : -1, c.world - 1) +
           (in.ConsumeProbability<float>() < 0.02F ? 1 : 0);
  };
  const int map_kind = in.ConsumeIntegralInRange(0, 2);
  for (int64_t e = 0; map_kind > 0 && e < c.experts; ++e) {
    if (map_kind == 1) {
      c.owners.push_back(some_rank());
      continue;
    }
    // 0..3 copies (0 is invalid), duplicates possible.
    std::vector<int32_t> ranks(static_cast<size_t>(in.ConsumeIntegralInRange(
        in.ConsumeProbability<float>() < 0.02F ? 0 : 1, std::min(3, c.world))));
    for (int32_t& rank : ranks) {
      rank = some_rank();
    }
    c.replicas.push_back(ranks);
  }
  c.options.dedup = static_cast<Dedup>(in.ConsumeIntegralInRange(0, 2));
  c.options.relay = static_cast<RelayPolicy>(in.ConsumeIntegralInRange(0, 1));
  c.options.process_relays = static_cast<ProcessRelays>(in.ConsumeIntegralInRange(0, 2));
  // Combine in rounds: room for a few rows (-1 is invalid; tiny bounds may need > 64 rounds).
  c.options.combine_buffer_bytes =
      in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(-1, 4096) : 0;
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 1:  // alignment 0 is invalid
      c.options.layout = RecvLayout::expert_major(in.ConsumeIntegralInRange<int64_t>(0, 9));
      break;
    case 2:
      c.options.layout = RecvLayout::rank_major();
      break;
    case 3:  // capacity -1 is invalid
      c.options.layout = RecvLayout::capacity_bounded(
          in.ConsumeIntegralInRange<int64_t>(-1, 12),
          in.ConsumeBool() ? RecvLayout::Overflow::kError : RecvLayout::Overflow::kDrop);
      break;
    default:
      break;
  }
  c.options.chunk_bytes = in.ConsumeIntegralInRange<int64_t>(-1, 4096);
  c.options.timeout_ms = 20000;
  for (int r = 0; r < c.world; ++r) {
    const int64_t tokens = in.ConsumeIntegralInRange<int64_t>(0, 24);
    std::vector<int64_t> rank_ids;
    for (int64_t i = 0; i < tokens * c.topk; ++i) {
      const bool wild = in.ConsumeProbability<float>() < 0.01F;
      rank_ids.push_back(wild ? in.ConsumeIntegralInRange<int64_t>(-3, c.experts + 2)
                              : in.ConsumeIntegralInRange<int64_t>(-1, c.experts - 1));
    }
    c.ids.push_back(std::move(rank_ids));
  }
  make_one_size_huge(in, map_kind == 0, c);  // after the ids, which are drawn below E + 2
  return c;
}

// Receive buffers this fuzzer allocates, at most: a plan that honours a huge capacity is
// checked for its verdict only.
constexpr int64_t kMaxCheckedElements = int64_t{1} << 24;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "plan_fuzzer: %s\n", what);
  std::abort();
}

void run(const Input& c) {
  auto made = Communicator::Impl::create_local(c.world, Topology{c.world, c.ranks_per_node},
                                               c.direct_access);
  if (!made.ok()) {
    fail("create_local failed on valid arguments");
  }
  std::vector<Communicator>& comms = made.value();
  const ExpertMap map = !c.replicas.empty() ? ExpertMap::with_replicas(c.replicas)
                        : !c.owners.empty() ? ExpertMap::from_owners(c.owners)
                                            : ExpertMap();
  const auto ws = static_cast<size_t>(c.world);
  std::vector<std::vector<int32_t>> ids32(ws);
  std::vector<Plan> plans(ws);
  auto tokens_of = [&](int r) {
    return static_cast<int64_t>(c.ids[static_cast<size_t>(r)].size()) / c.topk;
  };
  auto idx_view = [&](int r) {
    const auto rr = static_cast<size_t>(r);
    if (c.int32_ids) {
      ids32[rr].assign(c.ids[rr].begin(), c.ids[rr].end());
      return TensorView::host(ids32[rr].data(), DType::kInt32, {tokens_of(r), c.topk});
    }
    return TensorView::host(const_cast<int64_t*>(c.ids[rr].data()), DType::kInt64,
                            {tokens_of(r), c.topk});
  };
  const std::vector<Status> planned = testing::run_ranks(c.world, [&](int r) -> Status {
    Result<Plan> plan = comms[static_cast<size_t>(r)].plan(idx_view(r), c.experts, map, c.options);
    FUSCO_RETURN_IF_ERROR(plan.status());
    plans[static_cast<size_t>(r)] = plan.value();
    return Status();
  });
  size_t failed = 0;
  for (const Status& s : planned) {
    failed += s.ok() ? 0 : 1;
    if (s.code() == StatusCode::kTimeout || s.code() == StatusCode::kInternal) {
      fail(("planning: " + s.to_string()).c_str());
    }
  }
  if (failed != 0 && failed != ws) {
    fail("planning verdict differs between ranks");
  }
  if (failed == ws) {
    // An argument error leaves the group usable: a plan with every slot unused works.
    std::vector<std::vector<int64_t>> none(ws);
    const Status again = testing::first_error(testing::run_ranks(c.world, [&](int r) -> Status {
      none[static_cast<size_t>(r)].assign(2 * static_cast<size_t>(c.topk), -1);
      return comms[static_cast<size_t>(r)]
          .plan(TensorView::host(none[static_cast<size_t>(r)].data(), DType::kInt64, {2, c.topk}),
                c.world, ExpertMap(), PlanOptions())
          .status();
    }));
    if (!again.ok()) {
      fail(("group unusable after an argument error: " + again.to_string()).c_str());
    }
    return;
  }
  for (const Plan& plan : plans) {
    if (plan.num_recv_rows() > kMaxCheckedElements / c.hidden) return;
  }
  // Dispatch and combine (fp32) against the reference.
  std::vector<std::vector<std::byte>> x(ws), recv(ws), y(ws), w(ws), out(ws);
  const Status moved = testing::first_error(testing::run_ranks(c.world, [&](int r) -> Status {
    const auto rr = static_cast<size_t>(r);
    const int64_t rows = plans[rr].num_recv_rows();
    x[rr] = testing::random_elements(DType::kFloat32, tokens_of(r) * c.hidden, 11 + rr);
    recv[rr].resize(static_cast<size_t>(rows * c.hidden) * 4);
    FUSCO_RETURN_IF_ERROR(comms[rr].dispatch(
        plans[rr], TensorView::host(x[rr].data(), DType::kFloat32, {tokens_of(r), c.hidden}),
        TensorView::host(recv[rr].data(), DType::kFloat32, {rows, c.hidden})));
    y[rr] = testing::random_elements(DType::kFloat32, rows * c.hidden, 23 + rr);
    w[rr] = testing::random_elements(DType::kFloat32, tokens_of(r) * c.topk, 37 + rr);
    out[rr].resize(static_cast<size_t>(tokens_of(r) * c.hidden) * 4);
    return comms[rr].combine(
        plans[rr], TensorView::host(y[rr].data(), DType::kFloat32, {rows, c.hidden}),
        TensorView::host(w[rr].data(), DType::kFloat32, {tokens_of(r), c.topk}),
        TensorView::host(out[rr].data(), DType::kFloat32, {tokens_of(r), c.hidden}));
  }));
  if (!moved.ok()) {
    fail(("dispatch/combine of a valid plan: " + moved.to_string()).c_str());
  }
  std::vector<TensorView> idx, xv, yv, wv;
  for (int r = 0; r < c.world; ++r) {
    const auto rr = static_cast<size_t>(r);
    idx.push_back(TensorView::host(const_cast<int64_t*>(c.ids[rr].data()), DType::kInt64,
                                   {tokens_of(r), c.topk}));
    xv.push_back(TensorView::host(x[rr].data(), DType::kFloat32, {tokens_of(r), c.hidden}));
    yv.push_back(
        TensorView::host(y[rr].data(), DType::kFloat32, {plans[rr].num_recv_rows(), c.hidden}));
    wv.push_back(TensorView::host(w[rr].data(), DType::kFloat32, {tokens_of(r), c.topk}));
  }
  const Topology topology{c.world, c.ranks_per_node};
  const auto layout = reference::receive_layout(idx, c.experts, map, topology, c.options.layout);
  const auto want_recv = reference::dispatch(layout, xv);
  const auto want_out = reference::combine(layout, idx, wv, yv, topology, c.options.dedup);
  for (size_t r = 0; r < ws; ++r) {
    if (recv[r] != want_recv[r]) {
      fail("dispatch differs from the reference");
    }
    if (out[r] != want_out[r]) {
      fail("combine differs from the reference");
    }
  }
}

}  // namespace
}  // namespace fusco::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  fusco::fuzz::run(fusco::fuzz::read_input(in));
  return 0;
}
