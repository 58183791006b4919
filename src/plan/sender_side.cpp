// Step 3 of planning, on the sender: every (token, slot) row gets its final receive row; rows
// for ranks of this node become direct stores, the others become staged entries grouped by
// dedup mode; and the combine program fixes each token's summation order.

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <string>

#include "core/wire.hpp"
#include "plan/planner.hpp"

namespace fusco::plan {

namespace {

using detail::CombineTerm;
using detail::FanoutRow;

// The staged entries for one target. The scan writes typed columns (the entries' tokens,
// each entry's first fanout row, the fanout rows) kept between plans in PlanScratch; finish()
// encodes the message: a header (entries, fanout rows), then three columns (int32 tokens,
// int32 fanout counts, FanoutRow rows). The columns only grow, so a repeated shape neither
// allocates nor clears them, and the scan stores through cursors held here, next to the
// other targets' (no vector bookkeeping per row, no branch on whether a row opens an entry).
class TargetStream {
 public:
  TargetStream(StreamStorage& storage, bool dedup) : store_(&storage), dedup_(dedup) {}

  void expect_rows(int64_t rows) { expected_rows_ += rows; }
  // Sizes the columns for the expected rows (a hint under balanced relays: add() grows them).
  void start() { reserve(expected_rows_); }

  bool empty() const { return entries_ == 0; }
  int64_t entries() const { return entries_; }
  int64_t fanout_rows() const { return fanout_rows_; }

  // Appends `row` of `token`: a new entry, or with dedup, a fanout row of the last entry when
  // that entry carries `token` already.
  void add(int32_t token, const FanoutRow& row) {
    if (fanout_rows_ == capacity_) [[unlikely]] {
      reserve(2 * capacity_ + 16);
    }
    const bool opens = !dedup_ || entries_ == 0 || tokens_[entries_ - 1] != token;
    // Written whether or not the row opens an entry: a row that does not leaves them in the
    // free slot past the last entry, where the next entry overwrites them.
    tokens_[entries_] = token;
    begins_[entries_] = fanout_rows_;
    entries_ += opens ? 1 : 0;
    fanout_[fanout_rows_++] = row;
  }
  // Fanout rows up to and including each entry, into `ends`.
  void fanout_ends(std::vector<int64_t>& ends) const {
    ends.resize(static_cast<size_t>(entries_));
    for (int64_t i = 0; i < entries_; ++i) {
      ends[static_cast<size_t>(i)] = end_of(i);
    }
  }
  // Encodes the message into `bytes`; the entries' tokens go to `tokens`.
  void finish(Bytes& bytes, std::vector<int32_t>& tokens) const {
    const int64_t header[2] = {entries_, fanout_rows_};
    const size_t token_bytes = static_cast<size_t>(entries_) * sizeof(int32_t);
    const size_t fanout_bytes = static_cast<size_t>(fanout_rows_) * sizeof(FanoutRow);
    bytes.resize(sizeof(header) + 2 * token_bytes + fanout_bytes);
    std::byte* at = bytes.data();
    std::memcpy(at, header, sizeof(header));
    std::memcpy(at += sizeof(header), tokens_, token_bytes);
    at += token_bytes;
    for (int64_t i = 0; i < entries_; ++i, at += sizeof(int32_t)) {
      const auto count = static_cast<int32_t>(end_of(i) - begins_[i]);
      std::memcpy(at, &count, sizeof(count));
    }
    std::memcpy(at, fanout_, fanout_bytes);
    tokens.assign(tokens_, tokens_ + entries_);
  }

 private:
  int64_t end_of(int64_t entry) const {
    return entry + 1 < entries_ ? begins_[entry + 1] : fanout_rows_;
  }
  // Room for `rows` fanout rows (and as many entries, plus the free slot add() writes).
  void reserve(int64_t rows) {
    const auto size = static_cast<size_t>(rows) + 1;
    if (store_->fanout.size() < size) {
      store_->tokens.resize(size);
      store_->begins.resize(size);
      store_->fanout.resize(size);
    }
    capacity_ = static_cast<int64_t>(store_->fanout.size()) - 1;
    tokens_ = store_->tokens.data();
    begins_ = store_->begins.data();
    fanout_ = store_->fanout.data();
  }

  StreamStorage* store_;
  bool dedup_;
  int64_t expected_rows_ = 0;
  int64_t entries_ = 0;
  int64_t fanout_rows_ = 0;
  int64_t capacity_ = 0;
  int32_t* tokens_ = nullptr;
  int64_t* begins_ = nullptr;
  FanoutRow* fanout_ = nullptr;
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

// Orders a token's slots by node, slots ascending within a node. Insertion sort for the
// usual few slots (they mostly arrive in node order); a library sort for wide top-k.
void sort_by_node(SlotOnNode* begin, SlotOnNode* end) {
  if (end - begin > 32) {
    std::stable_sort(begin, end,
                     [](const SlotOnNode& a, const SlotOnNode& b) { return a.node < b.node; });
    return;
  }
  for (SlotOnNode* i = begin + 1; i < end; ++i) {
    const SlotOnNode slot = *i;
    SlotOnNode* j = i;
    for (; j > begin && (j - 1)->node > slot.node; --j) {
      *j = *(j - 1);
    }
    *j = slot;
  }
}

// The combine program being written: groups of terms, stored through cursors into arrays
// sized for the most terms (one per delivered row), trimmed by finish().
class ProgramWriter {
 public:
  ProgramWriter(detail::PlanData& plan, int64_t most_terms, int64_t tokens) : plan_(plan) {
    plan.terms.resize(static_cast<size_t>(most_terms));
    plan.group_term_begin.resize(static_cast<size_t>(most_terms) + 1);
    plan.token_group_begin.resize(static_cast<size_t>(tokens) + 1);
    terms_ = plan.terms.data();
    group_begin_ = plan.group_term_begin.data();
    token_begin_ = plan.token_group_begin.data();
    group_begin_[0] = 0;
    token_begin_[0] = 0;
  }
  void add(const CombineTerm& term) { terms_[num_terms_++] = term; }
  void close_group() { group_begin_[++num_groups_] = num_terms_; }
  void close_token() { token_begin_[++num_tokens_] = num_groups_; }
  void finish() {
    plan_.terms.resize(static_cast<size_t>(num_terms_));
    plan_.group_term_begin.resize(static_cast<size_t>(num_groups_) + 1);
  }

 private:
  detail::PlanData& plan_;
  CombineTerm* terms_;
  int64_t* group_begin_;
  int64_t* token_begin_;
  int64_t num_terms_ = 0;
  int64_t num_groups_ = 0;
  int64_t num_tokens_ = 0;
};

// Appends a token's groups to `program`: with node dedup one group per node, nodes
// ascending, each the node's slots ascending, or its relay's partial when relays sum (every
// node but this one); otherwise one group of all slots. With at most 64 nodes and 64 slots
// (the usual shapes) a token's nodes and each node's slots are bit masks, read in order
// without sorting or mispredicted compares; other shapes sort the slots by node.
class TokenGroups {
 public:
  TokenGroups(const std::vector<CombineTerm>& slot_term, const std::vector<CombineTerm>& node_term,
              bool by_node, bool relays, int my_node, int topk)
      : slot_term_(slot_term),
        node_term_(node_term),
        by_node_(by_node),
        relays_(relays),
        my_node_(my_node),
        masks_(by_node && node_term.size() <= 64 && topk <= 64),
        slots_of_node_(masks_ ? node_term.size() : 0, 0) {}

  // Slot `slot` of the token goes to `node`.
  void note(int32_t node, int32_t slot) {
    if (masks_) {
      nodes_ |= uint64_t{1} << node;
      slots_of_node_[static_cast<size_t>(node)] |= uint64_t{1} << slot;
    }
  }
  void emit(SlotOnNode* slots, SlotOnNode* end, ProgramWriter& program) {
    if (!by_node_) {
      if (slots == end) return;
      for (; slots < end; ++slots) program.add(slot_term_[static_cast<size_t>(slots->slot)]);
      program.close_group();
    } else if (masks_) {
      emit_from_masks(program);
    } else {
      emit_sorted(slots, end, program);
    }
    nodes_ = 0;
  }

 private:
  bool partial(int node) const { return relays_ && node != my_node_; }

  void emit_from_masks(ProgramWriter& program) {
    for (; nodes_ != 0; nodes_ &= nodes_ - 1) {
      const int node = std::countr_zero(nodes_);
      uint64_t& slots = slots_of_node_[static_cast<size_t>(node)];
      if (partial(node)) {
        program.add(node_term_[static_cast<size_t>(node)]);
      } else {
        for (uint64_t left = slots; left != 0; left &= left - 1) {
          program.add(slot_term_[static_cast<size_t>(std::countr_zero(left))]);
        }
      }
      slots = 0;
      program.close_group();
    }
  }
  void emit_sorted(SlotOnNode* slots, SlotOnNode* end, ProgramWriter& program) const {
    sort_by_node(slots, end);
    while (slots < end) {
      const int32_t node = slots->node;
      if (partial(node)) program.add(node_term_[static_cast<size_t>(node)]);
      for (; slots < end && slots->node == node; ++slots) {
        if (!partial(node)) program.add(slot_term_[static_cast<size_t>(slots->slot)]);
      }
      program.close_group();
    }
  }

  const std::vector<CombineTerm>& slot_term_;
  const std::vector<CombineTerm>& node_term_;
  bool by_node_;
  bool relays_;
  int my_node_;
  bool masks_;
  uint64_t nodes_ = 0;
  std::vector<uint64_t> slots_of_node_;
};

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
  std::vector<TargetStream> targets;
  targets.reserve(static_cast<size_t>(world));
  for (StreamStorage& storage : scratch.streams) {
    targets.emplace_back(storage, dedup != Dedup::kNone);
  }
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
  // A token's delivered slots, and the combine term of each slot and of each node's partial.
  std::vector<SlotOnNode> slots(static_cast<size_t>(topk));
  std::vector<CombineTerm> slot_term(static_cast<size_t>(topk));
  std::vector<CombineTerm> node_term(static_cast<size_t>(topo.num_nodes()));
  ProgramWriter program(plan, layout.num_rows(), tokens);
  TokenGroups groups(slot_term, node_term, dedup == Dedup::kNode, relays, my_node, topk);
  BalancedRelays balanced_relays(topo, me);
  int64_t dropped = 0;
  plan.slot_ranks.assign(static_cast<size_t>(tokens * topk), -1);
  for (int64_t t = 0; t < tokens; ++t) {
    if (balanced) {
      balanced_relays.choose(t, ids + t * topk, topk, map, direct_lo, direct_hi, targets,
                             relay_of_node);
    }
    SlotOnNode* slots_end = slots.data();
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
      *slots_end++ = {node, j};
      groups.note(node, j);
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
      stream.add(static_cast<int32_t>(t), {static_cast<int32_t>(d), j, row});
      const int64_t relative = (partial_to(target) ? stream.entries() : stream.fanout_rows()) - 1;
      slot_term[static_cast<size_t>(j)] = pending_return(target, j, relative);
      node_term[static_cast<size_t>(node)] =
          pending_return(target, CombineTerm::kUnitWeight, stream.entries() - 1);
    }
    groups.emit(slots.data(), slots_end, program);
    program.close_token();
  }
  program.finish();

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
