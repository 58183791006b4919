#include "plan/staged_programme.hpp"

#include <string>

namespace fusco::detail {

namespace {

// The target's lists of one incoming stream whose entries arrive from row `arrive_begin`:
// fanout stores, return terms and, per return row, its entry's arrival row.
void add_target_lists(const StagedIn& in, int64_t arrive_begin, RankStaged& staged) {
  for (int64_t e = 0; e < in.num_entries(); ++e) {
    const auto entry = static_cast<size_t>(e);
    const int64_t arrived = arrive_begin + e;
    for (int64_t f = in.fanout_begin[entry]; f < in.fanout_begin[entry + 1]; ++f) {
      const FanoutRow& row = in.fanout[static_cast<size_t>(f)];
      staged.fanout.push_back({static_cast<int32_t>(arrived), row.rank, row.row});
      staged.relay_terms.push_back(
          {row.rank, in.partial ? row.slot : core::DirectTerm::kUnitWeight, row.row});
      if (!in.partial) {  // every fanout row comes back as it is
        staged.group_term_begin.push_back(static_cast<int64_t>(staged.relay_terms.size()));
        staged.weight_rows.push_back(static_cast<int32_t>(arrived));
      }
    }
    if (in.partial) {  // one partial sum per entry
      staged.group_term_begin.push_back(static_cast<int64_t>(staged.relay_terms.size()));
      staged.weight_rows.push_back(static_cast<int32_t>(arrived));
    }
  }
}

Status disagree(const char* what, int32_t source, int32_t target) {
  return Status(StatusCode::kInternal,
                std::string("plans disagree on the ") + what + " of the staged stream from rank " +
                    std::to_string(source) + " to rank " + std::to_string(target));
}

}  // namespace

Result<RankStaged> rank_staged(const PlanData& plan) {
  const int world = plan.topology.world_size;
  if (world >= core::kMaxDirectPeers) {
    return Status(StatusCode::kUnsupported,
                  "world_size = " + std::to_string(world) + ": staged rows need a table entry " +
                      "beyond the ranks' (at most " + std::to_string(core::kMaxDirectPeers - 1) +
                      " ranks)");
  }
  if (!plan.forward_out.empty() || !plan.forward_in.empty() || plan.forward_rows != 0) {
    return Status(StatusCode::kUnsupported,
                  "rank " + std::to_string(plan.rank) +
                      "'s plan forwards rows between processes; the GPU engine's relays store "
                      "into their node peers' memory");
  }
  RankStaged staged;
  StagedStreams& streams = staged.streams;
  for (const StagedOut& out : plan.staged_out) {
    StagedStreams::Out stream;
    stream.target = out.target;
    stream.send_begin = streams.send_rows;
    stream.entries = static_cast<int64_t>(out.tokens.size());
    stream.return_begin = out.return_begin;
    stream.return_rows = out.return_rows;
    for (int64_t i = 0; i < stream.entries; ++i) {
      staged.gather.push_back({out.tokens[static_cast<size_t>(i)], 0, stream.send_begin + i});
    }
    streams.send_rows += stream.entries;
    streams.out.push_back(stream);
  }
  streams.return_rows = plan.return_rows_total;
  staged.group_term_begin.push_back(0);
  for (const StagedIn& in : plan.staged_in) {
    StagedStreams::In stream;
    stream.source = in.source;
    stream.arrive_begin = streams.arrive_rows;
    stream.entries = in.num_entries();
    stream.relay_return_begin = streams.relay_return_rows;
    stream.return_rows = in.return_rows;
    add_target_lists(in, stream.arrive_begin, staged);
    streams.arrive_rows += stream.entries;
    streams.relay_return_rows += stream.return_rows;
    if (static_cast<int64_t>(staged.weight_rows.size()) != streams.relay_return_rows) {
      return disagree("return rows", in.source, plan.rank);
    }
    streams.in.push_back(stream);
  }
  staged.terms.reserve(plan.terms.size());
  for (const CombineTerm& term : plan.terms) {
    staged.terms.push_back(
        {term.rank == CombineTerm::kReturnBuffer ? world : term.rank, term.slot, term.row});
  }
  return staged;
}

Result<std::vector<StagedTransfer>> staged_transfers(const std::vector<StagedStreams>& ranks) {
  std::vector<StagedTransfer> transfers;
  for (size_t s = 0; s < ranks.size(); ++s) {
    const auto source = static_cast<int32_t>(s);
    for (const StagedStreams::Out& out : ranks[s].out) {
      const auto t = static_cast<size_t>(out.target);
      const StagedStreams::In* in = nullptr;
      if (t < ranks.size()) {
        for (const StagedStreams::In& candidate : ranks[t].in) {
          if (candidate.source == source) in = &candidate;
        }
      }
      if (in == nullptr || in->entries != out.entries) {
        return disagree("entries", source, out.target);
      }
      if (in->return_rows != out.return_rows) return disagree("return rows", source, out.target);
      StagedTransfer transfer;
      transfer.source = source;
      transfer.target = out.target;
      transfer.entries = out.entries;
      transfer.send_begin = out.send_begin;
      transfer.arrive_begin = in->arrive_begin;
      transfer.return_rows = out.return_rows;
      transfer.relay_return_begin = in->relay_return_begin;
      transfer.return_begin = out.return_begin;
      transfers.push_back(transfer);
    }
  }
  for (size_t t = 0; t < ranks.size(); ++t) {  // and no target waits for a stream never sent
    for (const StagedStreams::In& in : ranks[t].in) {
      const auto s = static_cast<size_t>(in.source);
      bool sent = false;
      for (size_t i = 0; s < ranks.size() && i < ranks[s].out.size(); ++i) {
        sent = sent || ranks[s].out[i].target == static_cast<int32_t>(t);
      }
      if (!sent) return disagree("existence", in.source, static_cast<int32_t>(t));
    }
  }
  return transfers;
}

}  // namespace fusco::detail
