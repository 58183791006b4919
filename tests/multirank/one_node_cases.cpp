#include "multirank/one_node_cases.hpp"

#include "testing/rank_threads.hpp"

namespace fusco::testing {

std::vector<Case> one_node_cases(int world) {
  std::vector<Case> cases;
  auto add = [&](Case c) {
    c.world = world;
    c.ranks_per_node = world;
    cases.push_back(c);
  };
  Case uniform;
  uniform.experts = 4 * world;
  add(uniform);
  Case masked = uniform;  // every slot unused: nothing moves, outputs are zero
  masked.masked = 1.0;
  add(masked);
  Case masked_tokens = uniform;
  masked_tokens.masked_token = 0.5;
  add(masked_tokens);
  Case some_empty = uniform;  // T = 0 on every other rank
  for (int r = 0; r < world; ++r) some_empty.tokens.push_back(r % 2 == 0 ? 0 : 24);
  add(some_empty);
  Case hot = uniform;  // one expert takes every token, every slot (duplicates in each token)
  for (int r = 0; r < world; ++r) hot.ids.push_back(std::vector<int64_t>(24 * 4, 0));
  add(hot);
  Case uneven = uniform;  // explicit map, rank 0 owns nothing when world > 1
  for (int e = 0; e < uneven.experts; ++e) {
    uneven.owners.push_back(world == 1 ? 0 : 1 + e % (world - 1));
  }
  add(uneven);
  for (int64_t hidden : {int64_t{1}, int64_t{7}, int64_t{7168}}) {
    Case c = uniform;
    c.hidden = hidden;
    add(c);
  }
  for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kFloat8E4M3, DType::kInt64}) {
    Case c = uniform;
    c.dtype = dtype;
    add(c);
  }
  Case aligned = uniform;
  aligned.layout = RecvLayout::expert_major(8);
  add(aligned);
  Case rank_major = uniform;
  rank_major.layout = RecvLayout::rank_major();
  add(rank_major);
  Case capacity = uniform;
  capacity.layout = RecvLayout::capacity_bounded(5);
  add(capacity);
  Case strided_rows = uniform;
  strided_rows.stride_pad = 3;
  add(strided_rows);
  Case companion = uniform;  // int32 companion rows (fp8 scales, token ids) ride along
  companion.extra_cols = 3;
  companion.layout = RecvLayout::expert_major(4);
  add(companion);
  Case replicas = uniform;
  for (int64_t e = 0; e < replicas.experts; ++e) {
    replicas.replicas.push_back(
        {static_cast<int32_t>(e % world), static_cast<int32_t>((e + 1) % world)});
    if (world == 1) replicas.replicas.back().pop_back();
  }
  add(replicas);
  for (uint64_t seed = 1; seed <= 25; ++seed) {
    Case c = random_case(seed);
    c.seed = seed;
    c.direct_access = true;
    if (c.dtype == DType::kFloat64) c.dtype = DType::kInt64;
    if (!c.owners.empty() || !c.replicas.empty()) continue;  // maps drawn for another world
    c.experts = c.experts / c.world * world;
    if (c.experts == 0) c.experts = world;
    c.tokens.resize(static_cast<size_t>(world), 16);
    add(c);
  }
  return cases;
}

std::vector<Plan> plans_by(
    const Case& c, std::vector<Communicator>& comms,
    const std::function<Result<Plan>(Communicator&, const TensorView&)>& plan_one) {
  std::vector<Plan> plans(static_cast<size_t>(c.world));
  const std::vector<Status> statuses = run_ranks(c.world, [&](int rank) -> Status {
    std::vector<int64_t> ids = routing_of(c, rank);
    const TensorView idx =
        TensorView::host(ids.data(), DType::kInt64, {tokens_of(c, rank), c.topk});
    Result<Plan> plan = plan_one(comms[static_cast<size_t>(rank)], idx);
    if (plan.ok()) plans[static_cast<size_t>(rank)] = std::move(plan).value();
    return plan.status();
  });
  EXPECT_TRUE(first_error(statuses).ok()) << first_error(statuses).to_string();
  return plans;
}

std::vector<Plan> plans_of_case(const Case& c) {
  auto comms = Communicator::create_local(c.world, Topology::nodes_of(c.world, c.ranks_per_node));
  EXPECT_TRUE(comms.ok()) << comms.status().to_string();
  if (!comms.ok()) return std::vector<Plan>(static_cast<size_t>(c.world));
  return plans_by(c, comms.value(), [&c](Communicator& comm, const TensorView& idx) {
    return comm.plan(idx, c.experts, map_of(c), options_of(c));
  });
}

}  // namespace fusco::testing
