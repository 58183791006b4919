// Step 3 of planning, on the sender: every (token, slot) row gets its final receive row; rows
// for ranks of this node become direct stores, the others become staged entries grouped by
// dedup mode; and the combine program fixes each token's summation order.

#include <algorithm>
#include <string>

#include "core/wire.hpp"
#include "plan/planner.hpp"

namespace fusco::plan {

namespace {

using detail::CombineTerm;
using detail::FanoutRow;

struct TargetBuild {
  std::vector<int32_t> tokens;
  std::vector<int32_t> counts;  // fanout rows per entry
  std::vector<FanoutRow> fanout;
  int64_t last_token = -1;
};

Bytes encode_staged(const TargetBuild& target) {
  core::WireWriter writer;
  writer.put<int64_t>(static_cast<int64_t>(target.tokens.size()));
  writer.put<int64_t>(static_cast<int64_t>(target.fanout.size()));
  writer.put_array(target.tokens.data(), target.tokens.size());
  writer.put_array(target.counts.data(), target.counts.size());
  writer.put_array(target.fanout.data(), target.fanout.size());
  return writer.take();
}

struct SlotOnNode {
  int node;
  int slot;
};

}  // namespace

Result<std::vector<Bytes>> build_sender_side(detail::PlanData& plan, const core::Layout& layout,
                                             const core::ResolvedExpertMap& map,
                                             const TensorView& topk_idx,
                                             const std::vector<Bytes>& starts_from_destinations) {
  const int world = map.world_size;
  const int me = plan.rank;
  const Topology& topo = plan.topology;
  const int topk = layout.topk;
  const int64_t tokens = layout.num_tokens;
  const int my_node = topo.node_of(me);
  const Dedup dedup = plan.options.dedup;

  // Receive row of every valid pair.
  std::vector<int64_t> start_of_physical(static_cast<size_t>(map.rank_begin.back()));
  for (int d = 0; d < world; ++d) {
    core::WireReader reader(starts_from_destinations[static_cast<size_t>(d)]);
    FUSCO_RETURN_IF_ERROR(
        reader.get_array(start_of_physical.data() + map.rank_begin[static_cast<size_t>(d)],
                         static_cast<size_t>(map.num_local(d))));
  }
  std::vector<int64_t> pair_row(static_cast<size_t>(tokens * topk), -1);
  for (size_t p = 0; p < start_of_physical.size(); ++p) {
    for (int64_t i = layout.expert_begin[p]; i < layout.expert_begin[p + 1]; ++i) {
      pair_row[static_cast<size_t>(layout.pairs[static_cast<size_t>(i)])] =
          start_of_physical[p] + (i - layout.expert_begin[p]);
    }
  }

  // Direct rows: ranks of this node, in (rank, row) order so stores stream.
  plan.direct.clear();
  for (int d = topo.node_first_rank(my_node); d < topo.node_first_rank(my_node) + topo.node_size(my_node);
       ++d) {
    const int64_t first = layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d)])];
    const int64_t last =
        layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d) + 1])];
    for (int64_t i = first; i < last; ++i) {
      const int64_t pair = layout.pairs[static_cast<size_t>(i)];
      plan.direct.push_back({static_cast<int32_t>(core::pair_token(pair, topk)),
                             static_cast<int32_t>(d), pair_row[static_cast<size_t>(pair)]});
    }
  }

  // Staged entries, scanned in (token, slot) order: entries ascend by token and an entry's
  // fanout rows ascend by slot, which fixes the relay's summation order.
  std::vector<TargetBuild> targets(static_cast<size_t>(world));
  std::vector<int64_t> pair_return(static_cast<size_t>(tokens * topk), -1);
  std::vector<int64_t> remote_rows_per_rank(static_cast<size_t>(world), 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int j = 0; j < topk; ++j) {
      const int64_t flat = t * topk + j;
      const int64_t expert = core::read_expert(topk_idx, flat);
      if (expert < 0) {
        continue;
      }
      const int d = map.owner[static_cast<size_t>(expert)];
      if (topo.same_node(d, me)) {
        continue;
      }
      ++remote_rows_per_rank[static_cast<size_t>(d)];
      const int target = dedup == Dedup::kNode ? topo.rail_relay(topo.node_of(d), me) : d;
      TargetBuild& build = targets[static_cast<size_t>(target)];
      if (dedup == Dedup::kNone || build.last_token != t) {
        build.tokens.push_back(static_cast<int32_t>(t));
        build.counts.push_back(0);
        build.last_token = t;
      }
      ++build.counts.back();
      build.fanout.push_back({static_cast<int32_t>(d), j, pair_row[static_cast<size_t>(flat)]});
      pair_return[static_cast<size_t>(flat)] =
          static_cast<int64_t>(plan.partial_sums ? build.tokens.size() : build.fanout.size()) - 1;
    }
  }

  std::vector<Bytes> metadata(static_cast<size_t>(world));
  std::vector<int64_t> return_begin(static_cast<size_t>(world), 0);
  plan.staged_out.clear();
  int64_t return_rows = 0;
  for (int target = 0; target < world; ++target) {
    TargetBuild& build = targets[static_cast<size_t>(target)];
    if (build.tokens.empty()) {
      continue;
    }
    detail::StagedOut out;
    out.target = target;
    out.return_rows = static_cast<int64_t>(plan.partial_sums ? build.tokens.size()
                                                             : build.fanout.size());
    out.return_begin = return_rows;
    return_begin[static_cast<size_t>(target)] = return_rows;
    return_rows += out.return_rows;
    metadata[static_cast<size_t>(target)] = encode_staged(build);
    out.tokens = std::move(build.tokens);
    plan.staged_out.push_back(std::move(out));
  }
  plan.return_rows_total = return_rows;

  // Combine program.
  plan.token_group_begin.assign(1, 0);
  plan.group_term_begin.assign(1, 0);
  plan.terms.clear();
  std::vector<SlotOnNode> slots;
  auto return_term = [&](int64_t flat, int slot) {
    const int d = map.owner[static_cast<size_t>(core::read_expert(topk_idx, flat))];
    const int target = dedup == Dedup::kNode ? topo.rail_relay(topo.node_of(d), me) : d;
    return CombineTerm{CombineTerm::kReturnBuffer, slot,
                       return_begin[static_cast<size_t>(target)] +
                           pair_return[static_cast<size_t>(flat)]};
  };
  auto direct_term = [&](int64_t flat, int slot) {
    const int d = map.owner[static_cast<size_t>(core::read_expert(topk_idx, flat))];
    return CombineTerm{d, slot, pair_row[static_cast<size_t>(flat)]};
  };
  auto close_group = [&] { plan.group_term_begin.push_back(static_cast<int64_t>(plan.terms.size())); };
  for (int64_t t = 0; t < tokens; ++t) {
    slots.clear();
    for (int j = 0; j < topk; ++j) {
      const int64_t expert = core::read_expert(topk_idx, t * topk + j);
      if (expert >= 0) {
        slots.push_back({topo.node_of(map.owner[static_cast<size_t>(expert)]), j});
      }
    }
    if (!plan.partial_sums) {
      if (!slots.empty()) {
        for (const SlotOnNode& s : slots) {
          const int64_t flat = t * topk + s.slot;
          plan.terms.push_back(s.node == my_node ? direct_term(flat, s.slot)
                                                 : return_term(flat, s.slot));
        }
        close_group();
      }
    } else {
      std::stable_sort(slots.begin(), slots.end(),
                       [](const SlotOnNode& a, const SlotOnNode& b) { return a.node < b.node; });
      for (size_t i = 0; i < slots.size();) {
        const int node = slots[i].node;
        if (node == my_node) {
          for (; i < slots.size() && slots[i].node == node; ++i) {
            plan.terms.push_back(direct_term(t * topk + slots[i].slot, slots[i].slot));
          }
        } else {
          plan.terms.push_back(return_term(t * topk + slots[i].slot, CombineTerm::kUnitWeight));
          for (; i < slots.size() && slots[i].node == node; ++i) {
          }
        }
        close_group();
      }
    }
    plan.token_group_begin.push_back(static_cast<int64_t>(plan.group_term_begin.size()) - 1);
  }

  // Sender-side statistics.
  PlanStats& stats = plan.stats;
  stats.num_tokens = tokens;
  stats.logical_rows = layout.num_rows();
  stats.rows_per_destination.assign(static_cast<size_t>(world), 0);
  stats.wire_rows_per_destination.assign(static_cast<size_t>(world), 0);
  for (int d = 0; d < world; ++d) {
    const int64_t rows =
        layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d) + 1])] -
        layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d)])];
    stats.rows_per_destination[static_cast<size_t>(d)] = rows;
    if (topo.same_node(d, me)) {
      stats.wire_rows_per_destination[static_cast<size_t>(d)] = rows;
    }
  }
  stats.intra_node_rows = static_cast<int64_t>(plan.direct.size());
  stats.inter_node_rows = 0;
  for (const detail::StagedOut& out : plan.staged_out) {
    stats.wire_rows_per_destination[static_cast<size_t>(out.target)] =
        static_cast<int64_t>(out.tokens.size());
    stats.inter_node_rows += static_cast<int64_t>(out.tokens.size());
  }
  stats.inter_node_rows_without_dedup = 0;
  for (int64_t rows : remote_rows_per_rank) {
    stats.inter_node_rows_without_dedup += rows;
  }
  return metadata;
}

}  // namespace fusco::plan
