#include "gpu/staged_programme.hpp"

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

StagedBlocks dispatch_blocks(const StagedStreams& streams) {
  StagedBlocks blocks;
  for (const StagedStreams::Out& out : streams.out) {
    if (out.entries > 0) blocks.sends.push_back({out.target, out.send_begin, out.entries});
  }
  for (const StagedStreams::In& in : streams.in) {
    if (in.entries > 0) blocks.recvs.push_back({in.source, in.arrive_begin, in.entries});
  }
  return blocks;
}

StagedBlocks return_blocks(const StagedStreams& streams) {
  StagedBlocks blocks;
  for (const StagedStreams::In& in : streams.in) {
    if (in.return_rows > 0) {
      blocks.sends.push_back({in.source, in.relay_return_begin, in.return_rows});
    }
  }
  for (const StagedStreams::Out& out : streams.out) {
    if (out.return_rows > 0)
      blocks.recvs.push_back({out.target, out.return_begin, out.return_rows});
  }
  return blocks;
}

Result<std::vector<StagedCopy>> match_blocks(const std::vector<StagedBlocks>& ranks) {
  const size_t world = ranks.size();
  // next[t][s]: how many of t's receives from s are matched so far.
  std::vector<std::vector<size_t>> next(world, std::vector<size_t>(world, 0));
  const auto unmatched = [](size_t from, size_t to, const std::string& why) {
    return Status(StatusCode::kInternal, "staged rows from rank " + std::to_string(from) +
                                             " to rank " + std::to_string(to) + ": " + why);
  };
  std::vector<StagedCopy> copies;
  for (size_t s = 0; s < world; ++s) {
    for (const StagedBlock& send : ranks[s].sends) {
      const auto t = static_cast<size_t>(send.peer);
      if (t >= world) return unmatched(s, t, "no such rank");
      // The receive of t from s that this send meets.
      const StagedBlock* recv = nullptr;
      size_t seen = 0;
      for (const StagedBlock& candidate : ranks[t].recvs) {
        if (candidate.peer != static_cast<int32_t>(s)) continue;
        if (seen++ == next[t][s]) {
          recv = &candidate;
          break;
        }
      }
      if (recv == nullptr) return unmatched(s, t, "the receiver posts no receive for them");
      if (recv->rows != send.rows) {
        return unmatched(s, t,
                         std::to_string(send.rows) + " rows sent but " +
                             std::to_string(recv->rows) + " received");
      }
      ++next[t][s];
      copies.push_back({static_cast<int32_t>(s), send.peer, send.begin, recv->begin, send.rows});
    }
  }
  for (size_t t = 0; t < world; ++t) {  // and every receive met its send
    std::vector<size_t> posted(world, 0);
    for (const StagedBlock& recv : ranks[t].recvs) {
      const auto s = static_cast<size_t>(recv.peer);
      if (s >= world || ++posted[s] > next[t][s]) {
        return unmatched(s, t, "the receiver waits for rows never sent");
      }
    }
  }
  return copies;
}

}  // namespace fusco::detail
