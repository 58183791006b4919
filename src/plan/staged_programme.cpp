#include "plan/staged_programme.hpp"

#include <string>

namespace fusco::detail {

namespace {

// The staged_in stream of `target` whose source is `source`.
const StagedIn* incoming(const PlanData& target, int32_t source, size_t* index) {
  for (size_t i = 0; i < target.staged_in.size(); ++i) {
    if (target.staged_in[i].source == source) {
      *index = i;
      return &target.staged_in[i];
    }
  }
  return nullptr;
}

// The target's half of a hop: fanout stores, return terms and weight rows.
void target_lists(const StagedIn& in, StagedHop& hop) {
  hop.group_term_begin.push_back(0);
  for (int64_t e = 0; e < in.num_entries(); ++e) {
    const auto entry = static_cast<size_t>(e);
    for (int64_t f = in.fanout_begin[entry]; f < in.fanout_begin[entry + 1]; ++f) {
      const FanoutRow& row = in.fanout[static_cast<size_t>(f)];
      hop.fanout.push_back({static_cast<int32_t>(e), row.rank, row.row});
      hop.terms.push_back(
          {row.rank, in.partial ? row.slot : core::DirectTerm::kUnitWeight, row.row});
      if (!in.partial) {  // every fanout row comes back as it is
        hop.group_term_begin.push_back(static_cast<int64_t>(hop.terms.size()));
        hop.weight_rows.push_back(in.tokens[entry]);
      }
    }
    if (in.partial) {  // one partial sum per entry
      hop.group_term_begin.push_back(static_cast<int64_t>(hop.terms.size()));
      hop.weight_rows.push_back(in.tokens[entry]);
    }
  }
  hop.return_rows = static_cast<int64_t>(hop.weight_rows.size());
}

}  // namespace

Result<StagedProgramme> staged_programme(const std::vector<const PlanData*>& plans) {
  const auto world = static_cast<int>(plans.size());
  if (world >= core::kMaxDirectPeers) {
    return Status(StatusCode::kUnsupported,
                  "world_size = " + std::to_string(world) + ": staged rows need a table entry " +
                      "beyond the ranks' (at most " + std::to_string(core::kMaxDirectPeers - 1) +
                      " ranks)");
  }
  StagedProgramme programme;
  const auto ranks = static_cast<size_t>(world);
  programme.send_rows.assign(ranks, 0);
  programme.arrive_rows.assign(ranks, 0);
  programme.relay_return_rows.assign(ranks, 0);
  programme.return_rows.assign(ranks, 0);
  // Where each target's streams start in its arrival buffer and its return staging.
  std::vector<std::vector<int64_t>> arrive_begin(ranks), relay_begin(ranks);
  for (size_t t = 0; t < ranks; ++t) {
    const PlanData& plan = *plans[t];
    if (!plan.forward_out.empty() || !plan.forward_in.empty() || plan.forward_rows != 0) {
      return Status(StatusCode::kUnsupported,
                    "rank " + std::to_string(t) +
                        "'s plan forwards rows between processes; the GPU engine's ranks reach "
                        "each other's memory");
    }
    for (const StagedIn& in : plan.staged_in) {
      arrive_begin[t].push_back(programme.arrive_rows[t]);
      relay_begin[t].push_back(programme.relay_return_rows[t]);
      programme.arrive_rows[t] += in.num_entries();
      programme.relay_return_rows[t] += in.return_rows;
    }
  }
  for (size_t s = 0; s < ranks; ++s) {
    const PlanData& plan = *plans[s];
    for (const StagedOut& out : plan.staged_out) {
      StagedHop hop;
      hop.source = static_cast<int32_t>(s);
      hop.target = out.target;
      hop.entries = static_cast<int64_t>(out.tokens.size());
      hop.send_begin = programme.send_rows[s];
      for (size_t i = 0; i < out.tokens.size(); ++i) {
        hop.gather.push_back({out.tokens[i], 0, hop.send_begin + static_cast<int64_t>(i)});
      }
      programme.send_rows[s] += hop.entries;
      size_t index = 0;
      const StagedIn* in = incoming(*plans[static_cast<size_t>(out.target)], hop.source, &index);
      if (in == nullptr || in->num_entries() != hop.entries) {
        return Status(StatusCode::kInternal, "plans disagree on the staged rows from rank " +
                                                 std::to_string(s) + " to rank " +
                                                 std::to_string(out.target));
      }
      const auto t = static_cast<size_t>(out.target);
      hop.arrive_begin = arrive_begin[t][index];
      hop.relay_return_begin = relay_begin[t][index];
      target_lists(*in, hop);
      hop.return_begin = out.return_begin;
      if (hop.return_rows != out.return_rows) {
        return Status(StatusCode::kInternal, "plans disagree on the rows returned from rank " +
                                                 std::to_string(out.target) + " to rank " +
                                                 std::to_string(s));
      }
      programme.hops.push_back(std::move(hop));
    }
    programme.return_rows[s] = plan.return_rows_total;
    std::vector<core::DirectTerm> terms;
    terms.reserve(plan.terms.size());
    for (const CombineTerm& term : plan.terms) {
      terms.push_back(
          {term.rank == CombineTerm::kReturnBuffer ? world : term.rank, term.slot, term.row});
    }
    programme.terms.push_back(std::move(terms));
  }
  return programme;
}

}  // namespace fusco::detail
