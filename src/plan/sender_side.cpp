// Step 3 of planning, on the sender: every (token, slot) row gets its final receive row; rows
// for ranks of this node become direct stores, the others become staged entries grouped by
// dedup mode; and the combine program fixes each token's summation order.

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <memory>
#include <string>

#include "core/wire.hpp"
#include "plan/planner.hpp"

namespace fusco::plan {

namespace {

using detail::CombineTerm;
using detail::FanoutRow;

// The staged entries for one target. The scan appends to typed columns (the entries'
// tokens, their fanout counts, the fanout rows), kept between plans in PlanScratch; finish()
// encodes the message: a header (entries, fanout rows), then the three columns
// (int32 tokens, int32 counts, FanoutRow rows). Byte stores in the scan would alias every
// other array the scan writes and keep the compiler from holding anything in registers.
class TargetStream {
 public:
  explicit TargetStream(StreamStorage& storage) : store_(&storage) {
    store_->tokens.clear();
    store_->counts.clear();
    store_->fanout.clear();
  }

  void expect_rows(int64_t rows) { expected_rows_ += rows; }
  // Reserves what the expected rows need (a hint under balanced relays).
  void start() {
    const auto rows = static_cast<size_t>(expected_rows_);
    store_->tokens.reserve(rows);
    store_->counts.reserve(rows);
    store_->fanout.reserve(rows);
  }
  // The counts live here, next to the other streams' (one load in the scan), not behind
  // the storage pointer.
  bool empty() const { return entries_ == 0; }
  int64_t entries() const { return entries_; }
  int64_t fanout_rows() const { return fanout_rows_; }
  int64_t last_token() const { return last_token_; }

  void add_entry(int32_t token) {
    close_entry();
    store_->tokens.push_back(token);
    last_token_ = token;
    ++entries_;
  }
  void add_fanout(const FanoutRow& row) {
    store_->fanout.push_back(row);
    ++open_count_;
    ++fanout_rows_;
  }
  // Fanout rows up to and including each entry, into `ends`.
  void fanout_ends(std::vector<int64_t>& ends) {
    close_entry();
    ends.resize(store_->counts.size());
    int64_t sum = 0;
    for (size_t i = 0; i < ends.size(); ++i) {
      sum += store_->counts[i];
      ends[i] = sum;
    }
  }
  // Encodes the message into `bytes`; the entries' tokens go to `tokens` (whose array the
  // stream keeps for the next plan).
  void finish(Bytes& bytes, std::vector<int32_t>& tokens) {
    close_entry();
    const int64_t header[2] = {entries(), fanout_rows()};
    const size_t token_bytes = store_->tokens.size() * sizeof(int32_t);
    const size_t fanout_bytes = store_->fanout.size() * sizeof(FanoutRow);
    bytes.resize(sizeof(header) + 2 * token_bytes + fanout_bytes);
    std::byte* at = bytes.data();
    std::memcpy(at, header, sizeof(header));
    std::memcpy(at += sizeof(header), store_->tokens.data(), token_bytes);
    std::memcpy(at += token_bytes, store_->counts.data(), token_bytes);
    std::memcpy(at + token_bytes, store_->fanout.data(), fanout_bytes);
    tokens.swap(store_->tokens);
  }

 private:
  // Appends the open entry's fanout count (once).
  void close_entry() {
    if (store_->counts.size() < static_cast<size_t>(entries_)) {
      store_->counts.push_back(open_count_);
      open_count_ = 0;
    }
  }

  StreamStorage* store_;
  int64_t expected_rows_ = 0;
  int64_t entries_ = 0;
  int64_t fanout_rows_ = 0;
  int64_t last_token_ = -1;
  int32_t open_count_ = 0;
};

struct SlotOnNode {
  int32_t node;
  int32_t slot;
};

// A combine term whose value comes back from `target`; fixed up to a return-buffer row once
// every target's return rows are counted.
CombineTerm pending_return(int target, int slot, int64_t relative_row) {
  return CombineTerm{-2 - target, slot, relative_row};
}

// Appends one group per node present in `slots` (which are in slot order), nodes ascending:
// a node's slots as weighted terms, or, with relays, every other node as its relay's partial
// (unit weight). The general path, for more than 64 nodes.
template <typename CloseGroup>
void emit_node_groups(const std::vector<SlotOnNode>& slots,
                      const std::vector<CombineTerm>& slot_term, int my_node, bool relays,
                      std::vector<CombineTerm>& terms, CloseGroup&& close_group) {
  int32_t previous = -1;
  while (true) {
    int32_t node = INT32_MAX;  // the smallest node above `previous`
    for (const SlotOnNode& s : slots) {
      if (s.node > previous && s.node < node) node = s.node;
    }
    if (node == INT32_MAX) {
      return;
    }
    for (const SlotOnNode& s : slots) {
      if (s.node != node) continue;
      CombineTerm term = slot_term[static_cast<size_t>(s.slot)];
      if (relays && node != my_node) {
        term.slot = CombineTerm::kUnitWeight;
        terms.push_back(term);
        break;
      }
      terms.push_back(term);
    }
    close_group();
    previous = node;
  }
}

// The balanced relay policy (RelayPolicy::kBalanced): for each token and remote node it
// goes to, the rank of that node this sender has relayed the fewest rows to so far; ties go
// to a rank the token is destined for (no forward needed), then to the rail-aligned rank and
// its successors in local-index order.
class BalancedRelays {
 public:
  BalancedRelays(const Topology& topology, int me)
      : topo_(topology),
        me_(me),
        chosen_for_(static_cast<size_t>(topology.num_nodes()), -1),
        destined_for_(static_cast<size_t>(topology.world_size), -1) {}

  // Sets relay_of_node[n] for every other node n (outside [direct_lo, direct_hi)) that token
  // `t` (its k expert ids at `ids`) goes to.
  template <typename Id>
  void choose(int64_t t, const Id* ids, int topk, const core::ResolvedExpertMap& map, int direct_lo,
              int direct_hi, const std::vector<TargetStream>& targets,
              std::vector<int32_t>& relay_of_node) {
    for (int j = 0; j < topk; ++j) {
      const auto expert = static_cast<int64_t>(ids[j]);
      if (expert >= 0) {
        destined_for_[static_cast<size_t>(map.owner[static_cast<size_t>(expert)])] = t;
      }
    }
    for (int j = 0; j < topk; ++j) {
      const auto expert = static_cast<int64_t>(ids[j]);
      if (expert < 0) continue;
      const int d = map.owner[static_cast<size_t>(expert)];
      const int node = topo_.node_of(d);
      if ((d >= direct_lo && d < direct_hi) || node == topo_.node_of(me_) ||
          chosen_for_[static_cast<size_t>(node)] == t) {
        continue;
      }
      chosen_for_[static_cast<size_t>(node)] = t;
      const int first = topo_.node_first_rank(node);
      const int size = topo_.node_size(node);
      const int rail = topo_.rail_relay(node, me_) - first;
      int best = -1;
      int64_t best_load = 0;
      bool best_destined = false;
      for (int i = 0; i < size; ++i) {
        const int r = first + (rail + i) % size;
        const int64_t load = targets[static_cast<size_t>(r)].entries();
        const bool destined = destined_for_[static_cast<size_t>(r)] == t;
        if (best < 0 || load < best_load || (load == best_load && destined && !best_destined)) {
          best = r;
          best_load = load;
          best_destined = destined;
        }
      }
      relay_of_node[static_cast<size_t>(node)] = best;
    }
  }

 private:
  const Topology& topo_;
  int me_;
  std::vector<int64_t> chosen_for_;    // per node: the last token whose relay was chosen
  std::vector<int64_t> destined_for_;  // per rank: the last token that goes to it
};

template <typename Id>
Status build(detail::PlanData& plan, const core::Layout& layout, const core::ResolvedExpertMap& map,
             const Id* ids, const std::vector<Bytes>& starts_from_destinations,
             PlanScratch& scratch, std::vector<std::vector<int32_t>>* row_experts) {
  const int world = map.world_size;
  const int me = plan.rank;
  const Topology& topo = plan.topology;
  const int topk = layout.topk;
  const int64_t tokens = layout.num_tokens;
  const int my_node = topo.node_of(me);
  const Dedup dedup = plan.options.dedup;

  std::vector<int32_t> node_of_rank(static_cast<size_t>(world));
  for (int r = 0; r < world; ++r) {
    node_of_rank[static_cast<size_t>(r)] = topo.node_of(r);
  }
  std::vector<int32_t> relay_of_node(static_cast<size_t>(topo.num_nodes()));
  for (int n = 0; n < topo.num_nodes(); ++n) {
    relay_of_node[static_cast<size_t>(n)] = topo.rail_relay(n, me);
  }

  // Receive row of every valid pair (masked pairs are never read).
  std::vector<int64_t> start_of_physical(static_cast<size_t>(map.rank_begin.back()));
  for (int d = 0; d < world; ++d) {
    core::WireReader reader(starts_from_destinations[static_cast<size_t>(d)]);
    FUSCO_RETURN_IF_ERROR(
        reader.get_array(start_of_physical.data() + map.rank_begin[static_cast<size_t>(d)],
                         static_cast<size_t>(map.num_local(d))));
  }
  // The receive rows of one expert's pairs are consecutive in (token, slot) order, which is
  // the order of the scan below: each pair takes its expert's next row. Rank-major: all pairs
  // for one destination are consecutive, so they take the destination's next row. With a
  // capacity, a row past its expert's block is dropped.
  const RecvLayout& recv_layout = plan.options.layout;
  const bool rank_major = recv_layout.kind == RecvLayout::Kind::kRankMajor;
  const bool bounded = recv_layout.kind == RecvLayout::Kind::kCapacity;
  std::vector<int64_t> next_row = start_of_physical;
  std::vector<int64_t> start_of_rank(static_cast<size_t>(world), 0);
  for (int d = 0; rank_major && d < world; ++d) {
    if (map.num_local(d) > 0) {
      start_of_rank[static_cast<size_t>(d)] =
          start_of_physical[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d)])];
    }
  }
  std::vector<int64_t> next_rank_row = start_of_rank;

  // Direct rows go to the ranks this rank may store into: its node's (direct peers) or itself
  // alone. They are laid out in (rank, row) order, so the stores of dispatch stream through
  // each destination. Every other row is staged.
  const int direct_lo = plan.direct_peers ? topo.node_first_rank(my_node) : me;
  const int direct_hi = plan.direct_peers ? direct_lo + topo.node_size(my_node) : me + 1;
  const int64_t direct_first =
      layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(direct_lo)])];
  const int64_t direct_end =
      layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(direct_hi)])];
  // Under node dedup every other node's rows go to one relay there, which fans them out: by
  // storing into its node peers (direct peers), or by forwarding them in a second hop
  // (processes). This node's rows go to their ranks (stored, or staged to each).
  const bool relays = plan.partial_sums;
  // Streams to a relay of another node return one partial sum per entry.
  auto partial_to = [&](int target) {
    return plan.partial_sums && node_of_rank[static_cast<size_t>(target)] != my_node;
  };
  const bool balanced = relays && plan.options.relay == RelayPolicy::kBalanced;
  plan.direct.assign(static_cast<size_t>(direct_end - direct_first), detail::DirectRow{0, -1, 0});
  if (row_experts != nullptr) {
    row_experts->assign(static_cast<size_t>(world), {});
  }

  // One scan in (token, slot) order builds the staged entries and the combine program.
  // Entries ascend by token and an entry's fanout rows ascend by slot, which fixes the
  // relay's summation order.
  scratch.streams.resize(static_cast<size_t>(world));
  scratch.metadata.resize(static_cast<size_t>(world));
  std::vector<TargetStream> targets(scratch.streams.begin(), scratch.streams.end());
  std::vector<int64_t> remote_rows_per_rank(static_cast<size_t>(world), 0);
  for (int d = 0; d < world; ++d) {
    const int64_t rows =
        layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d) + 1])] -
        layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d)])];
    if (node_of_rank[static_cast<size_t>(d)] != my_node) {
      remote_rows_per_rank[static_cast<size_t>(d)] = rows;
    }
    if (d < direct_lo || d >= direct_hi) {
      const int node = node_of_rank[static_cast<size_t>(d)];
      const int target =
          relays && !balanced && node != my_node ? relay_of_node[static_cast<size_t>(node)] : d;
      targets[static_cast<size_t>(target)].expect_rows(rows);
    }
  }
  for (TargetStream& stream : targets) {
    stream.start();
  }
  std::vector<SlotOnNode> slots;
  slots.reserve(static_cast<size_t>(topk));
  std::vector<CombineTerm> slot_term(static_cast<size_t>(topk));
  // With at most 64 nodes a token's nodes fit a bit mask: its groups come out in node order
  // without sorting. node_term[n] is the partial term of the token's entry for node n.
  const bool node_mask_fits = topo.num_nodes() <= 64;
  std::vector<CombineTerm> node_term(static_cast<size_t>(topo.num_nodes()));
  plan.token_group_begin.assign(1, 0);
  plan.token_group_begin.reserve(static_cast<size_t>(tokens) + 1);
  plan.group_term_begin.assign(1, 0);
  plan.group_term_begin.reserve(static_cast<size_t>(std::min<int64_t>(
                                    layout.num_rows(), tokens * std::min(topk, topo.num_nodes()))) +
                                1);
  plan.terms.clear();
  plan.terms.reserve(static_cast<size_t>(layout.num_rows()));
  auto close_group = [&] {
    plan.group_term_begin.push_back(static_cast<int64_t>(plan.terms.size()));
  };
  BalancedRelays balanced_relays(topo, me);
  int64_t dropped = 0;
  plan.slot_ranks.assign(static_cast<size_t>(tokens * topk), -1);
  for (int64_t t = 0; t < tokens; ++t) {
    if (balanced) {
      balanced_relays.choose(t, ids + t * topk, topk, map, direct_lo, direct_hi, targets,
                             relay_of_node);
    }
    slots.clear();
    uint64_t nodes = 0;
    for (int j = 0; j < topk; ++j) {
      const auto flat = static_cast<size_t>(t * topk + j);
      const auto expert = static_cast<int64_t>(ids[flat]);
      if (expert < 0) {
        continue;
      }
      const int d = map.owner[static_cast<size_t>(expert)];
      const auto p = static_cast<size_t>(map.physical[static_cast<size_t>(expert)]);
      const int64_t local_slot = static_cast<int64_t>(p) - map.rank_begin[static_cast<size_t>(d)];
      const int64_t row = rank_major ? next_rank_row[static_cast<size_t>(d)]++ : next_row[p]++;
      if (bounded && row >= (local_slot + 1) * recv_layout.capacity) {
        ++dropped;
        continue;  // past its expert's capacity: not delivered, no combine term
      }
      if (row_experts != nullptr) {
        (*row_experts)[static_cast<size_t>(d)].push_back(static_cast<int32_t>(local_slot));
      }
      plan.slot_ranks[flat] = d;
      const int node = node_of_rank[static_cast<size_t>(d)];
      slots.push_back({node, j});
      nodes |= uint64_t{1} << (node & 63);
      if (d >= direct_lo && d < direct_hi) {
        slot_term[static_cast<size_t>(j)] = CombineTerm{d, j, row};
        // Position in (rank, row) order: the destination's first pair, then the row's place
        // in its expert's (or, rank-major, its destination's) block.
        const int64_t at =
            rank_major
                ? layout.expert_begin[static_cast<size_t>(map.rank_begin[static_cast<size_t>(d)])] -
                      direct_first + row - start_of_rank[static_cast<size_t>(d)]
                : layout.expert_begin[p] - direct_first + row - start_of_physical[p];
        plan.direct[static_cast<size_t>(at)] =
            detail::DirectRow{static_cast<int32_t>(t), static_cast<int32_t>(d), row};
        continue;
      }
      const int target = relays && node != my_node ? relay_of_node[static_cast<size_t>(node)] : d;
      TargetStream& stream = targets[static_cast<size_t>(target)];
      if (dedup == Dedup::kNone || stream.last_token() != t) {
        stream.add_entry(static_cast<int32_t>(t));
      }
      stream.add_fanout({static_cast<int32_t>(d), j, row});
      const int64_t relative = (partial_to(target) ? stream.entries() : stream.fanout_rows()) - 1;
      slot_term[static_cast<size_t>(j)] = pending_return(target, j, relative);
      node_term[static_cast<size_t>(node)] =
          pending_return(target, CombineTerm::kUnitWeight, stream.entries() - 1);
    }
    if (dedup != Dedup::kNode) {
      if (!slots.empty()) {
        for (const SlotOnNode& s : slots) {
          plan.terms.push_back(slot_term[static_cast<size_t>(s.slot)]);
        }
        close_group();
      }
    } else if (node_mask_fits) {
      // One group per node, nodes ascending: the node's slots ascending, or its relay's
      // partial when relays sum (every node but this one's).
      for (; nodes != 0; nodes &= nodes - 1) {
        const int node = std::countr_zero(nodes);
        if (node != my_node && relays) {
          plan.terms.push_back(node_term[static_cast<size_t>(node)]);
        } else {
          for (const SlotOnNode& s : slots) {
            if (s.node == node) plan.terms.push_back(slot_term[static_cast<size_t>(s.slot)]);
          }
        }
        close_group();
      }
    } else {
      emit_node_groups(slots, slot_term, my_node, relays, plan.terms, close_group);
    }
    plan.token_group_begin.push_back(static_cast<int64_t>(plan.group_term_begin.size()) - 1);
  }

  std::vector<int64_t> return_begin(static_cast<size_t>(world), 0);
  plan.staged_out.clear();
  int64_t return_rows = 0;
  for (int target = 0; target < world; ++target) {
    TargetStream& stream = targets[static_cast<size_t>(target)];
    if (stream.empty()) {
      scratch.metadata[static_cast<size_t>(target)].clear();
      continue;
    }
    detail::StagedOut out = scratch.take_out();
    out.target = target;
    out.partial = partial_to(target);
    out.return_rows = out.partial ? stream.entries() : stream.fanout_rows();
    out.return_begin = return_rows;
    if (!out.partial) {
      stream.fanout_ends(out.return_end);
    }
    return_begin[static_cast<size_t>(target)] = return_rows;
    return_rows += out.return_rows;
    stream.finish(scratch.metadata[static_cast<size_t>(target)], out.tokens);
    plan.staged_out.push_back(std::move(out));
  }
  plan.return_rows_total = return_rows;
  for (CombineTerm& term : plan.terms) {
    if (term.rank <= -2) {
      term.row += return_begin[static_cast<size_t>(-2 - term.rank)];
      term.rank = CombineTerm::kReturnBuffer;
    }
  }
  // Combine rounds need the returned rows per token; without a bound nobody reads them.
  plan.token_return_end.assign(
      plan.options.combine_buffer_bytes > 0 ? static_cast<size_t>(tokens) : 0, 0);
  int64_t returned_so_far = 0;
  for (int64_t t = 0; plan.options.combine_buffer_bytes > 0 && t < tokens; ++t) {
    for (auto g = static_cast<size_t>(plan.token_group_begin[static_cast<size_t>(t)]);
         g < static_cast<size_t>(plan.token_group_begin[static_cast<size_t>(t) + 1]); ++g) {
      for (auto i = static_cast<size_t>(plan.group_term_begin[g]);
           i < static_cast<size_t>(plan.group_term_begin[g + 1]); ++i) {
        returned_so_far += plan.terms[i].rank == CombineTerm::kReturnBuffer ? 1 : 0;
      }
    }
    plan.token_return_end[static_cast<size_t>(t)] = returned_so_far;
  }

  if (dropped > 0) {  // dropped direct pairs left holes
    plan.direct.erase(std::remove_if(plan.direct.begin(), plan.direct.end(),
                                     [](const detail::DirectRow& row) { return row.rank < 0; }),
                      plan.direct.end());
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
  }
  for (const detail::DirectRow& row : plan.direct) {
    ++stats.wire_rows_per_destination[static_cast<size_t>(row.rank)];
  }
  stats.intra_node_rows = static_cast<int64_t>(plan.direct.size());
  stats.inter_node_rows = 0;
  for (const detail::StagedOut& out : plan.staged_out) {
    const auto entries = static_cast<int64_t>(out.tokens.size());
    stats.wire_rows_per_destination[static_cast<size_t>(out.target)] = entries;
    if (topo.same_node(out.target, me)) {
      stats.intra_node_rows += entries;  // staged to a node peer (no direct access)
    } else {
      stats.inter_node_rows += entries;
    }
  }
  stats.inter_node_rows_without_dedup = 0;
  for (int64_t rows : remote_rows_per_rank) {
    stats.inter_node_rows_without_dedup += rows;
  }
  return Status();
}

}  // namespace

Status build_sender_side(detail::PlanData& plan, const core::Layout& layout,
                         const core::ResolvedExpertMap& map, const TensorView& topk_idx,
                         const std::vector<Bytes>& starts_from_destinations, PlanScratch& scratch,
                         std::vector<std::vector<int32_t>>* row_experts) {
  if (topk_idx.dtype == DType::kInt32) {
    return build(plan, layout, map, static_cast<const int32_t*>(topk_idx.data),
                 starts_from_destinations, scratch, row_experts);
  }
  return build(plan, layout, map, static_cast<const int64_t*>(topk_idx.data),
               starts_from_destinations, scratch, row_experts);
}

Result<std::vector<Bytes>> build_sender_side(detail::PlanData& plan, const core::Layout& layout,
                                             const core::ResolvedExpertMap& map,
                                             const TensorView& topk_idx,
                                             const std::vector<Bytes>& starts_from_destinations,
                                             std::vector<std::vector<int32_t>>* row_experts) {
  PlanScratch scratch;
  FUSCO_RETURN_IF_ERROR(build_sender_side(plan, layout, map, topk_idx, starts_from_destinations,
                                          scratch, row_experts));
  return std::move(scratch.metadata);
}

}  // namespace fusco::plan
