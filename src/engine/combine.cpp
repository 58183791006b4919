// Combine: the reverse of dispatch. Targets send rows back through the staging windows (under
// node dedup, one partial sum per (token, node), formed at the relay and rounded to the dtype
// of the expert output); then every token is reduced in the plan's fixed order, reading rows
// of this node's ranks directly and the rest from the return buffer.

#include <algorithm>
#include <cstring>
#include <utility>

#include "engine/chunk_pump.hpp"
#include "engine/engine.hpp"
#include "engine/op_start.hpp"
#include "engine/plan_checks.hpp"
#include "engine/row_math.hpp"

namespace fusco::engine {

namespace {

using detail::CombineTerm;

double weight_at(const void* weights, bool f64, int64_t index) {
  return f64 ? static_cast<const double*>(weights)[index]
             : static_cast<const float*>(weights)[index];
}

struct CombineSources {
  std::vector<const std::byte*> rows_of;  // expert_out of every rank
  std::vector<size_t> pitch_of;           // bytes between its rows (strided expert_out)
  std::vector<const void*> weights_of;    // topk_weights of every rank
  bool weights_f64 = false;               // fp64 weights (with fp64 expert outputs), else fp32
  std::byte* returned = nullptr;          // this rank's return buffer (the current round's rows)
  size_t row_bytes = 0;
  // Rounds: the return buffer holds one round's rows, stream after stream. A plan return row
  // g of stream i (rows from return_begin[i]) sits at g + shift[i]. Empty: g itself.
  std::vector<int64_t> return_begin;
  std::vector<int64_t> shift;

  const std::byte* returned_row(int64_t g) const {
    if (shift.empty()) {
      return returned + static_cast<size_t>(g) * row_bytes;
    }
    const auto i = static_cast<size_t>(
        std::upper_bound(return_begin.begin(), return_begin.end(), g) - return_begin.begin() - 1);
    return returned + static_cast<size_t>(g + shift[i]) * row_bytes;
  }
};

// One round's slice of a stream: its entries and its return rows.
struct Slice {
  int64_t entry_lo = 0;
  int64_t entry_hi = 0;
  int64_t row_lo = 0;
  int64_t row_hi = 0;
  int64_t rows() const { return row_hi - row_lo; }
};

// The entries of `tokens` (ascending) with tokens in [begin, end).
std::pair<int64_t, int64_t> entries_of(const std::vector<int32_t>& tokens, int64_t begin,
                                       int64_t end) {
  const auto lo = std::lower_bound(tokens.begin(), tokens.end(), begin) - tokens.begin();
  const auto hi = std::lower_bound(tokens.begin(), tokens.end(), end) - tokens.begin();
  return {lo, hi};
}

// Source `header`'s token range in round r.
std::pair<int64_t, int64_t> round_tokens(const OpHeader& header, int r) {
  const int32_t last = header.round_end[header.rounds - 1];
  if (r >= header.rounds) return {last, last};
  return {r == 0 ? 0 : header.round_end[r - 1], header.round_end[r]};
}

// Token t's combine program as a list of terms and groups (empty: no valid slot).
void collect_token(const detail::PlanData& plan, const CombineSources& src, const void* weights,
                   int64_t t, ReduceList& list) {
  list.clear();
  const auto g_begin = static_cast<size_t>(plan.token_group_begin[static_cast<size_t>(t)]);
  const auto g_end = static_cast<size_t>(plan.token_group_begin[static_cast<size_t>(t) + 1]);
  for (size_t g = g_begin; g < g_end; ++g) {
    const int64_t first = plan.group_term_begin[g];
    const int64_t last = plan.group_term_begin[g + 1];
    list.group_sizes.push_back(static_cast<int32_t>(last - first));
    for (int64_t i = first; i < last; ++i) {
      const CombineTerm& term = plan.terms[static_cast<size_t>(i)];
      const std::byte* row =
          term.rank == CombineTerm::kReturnBuffer
              ? src.returned_row(term.row)
              : src.rows_of[static_cast<size_t>(term.rank)] +
                    static_cast<size_t>(term.row) * src.pitch_of[static_cast<size_t>(term.rank)];
      list.terms.push_back(
          {row, term.slot == CombineTerm::kUnitWeight
                    ? 1.0
                    : weight_at(weights, src.weights_f64, t * plan.topk + term.slot)});
    }
  }
}

// Reduces tokens [begin, end) with the plan's combine program: one pass over each output row,
// the next token's rows prefetched meanwhile. Stops (before reading peers' rows) once the
// group is broken.
void reduce_tokens(const transport::Transport& transport, const detail::PlanData& plan,
                   const CombineSources& src, DType dtype, const void* weights, std::byte* out,
                   int64_t hidden, Workspace& ws, int64_t begin, int64_t end) {
  ReduceList* current = &ws.lists[0];
  ReduceList* next = &ws.lists[1];
  if (begin < end) {
    collect_token(plan, src, weights, begin, *current);
  }
  for (int64_t t = begin; t < end && !transport.broken(); ++t) {
    if (t + 1 < end) {
      collect_token(plan, src, weights, t + 1, *next);
      prefetch_rows(dtype, next->terms.data(), next->terms.size(), hidden);
    }
    std::byte* out_row = out + static_cast<size_t>(t) * src.row_bytes;
    if (current->group_sizes.empty()) {
      if (src.row_bytes > 0) {
        std::memset(out_row, 0, src.row_bytes);
      }
    } else {
      reduce_row(dtype, current->terms.data(), current->group_sizes.data(),
                 static_cast<int32_t>(current->group_sizes.size()), out_row, hidden);
    }
    std::swap(current, next);
  }
}

// What a relay between processes reads instead of its peers' memory: the rows its node
// peers sent back (by forward-buffer place) and the weights rows its sources sent (per
// stream, one [k] row per entry).
struct RelayInputs {
  const std::byte* returned = nullptr;          // forward-buffer rows
  std::vector<std::vector<std::byte>> weights;  // per staged_in stream
};

// Entry `entry`'s relay partial as one group: its node's rows, slots ascending.
void collect_entry(const detail::StagedIn& in, size_t stream, const CombineSources& src,
                   const RelayInputs& relay, int topk, size_t entry, ReduceList& list) {
  list.clear();
  const bool shipped = !relay.weights.empty();  // processes: the weights came with the call
  const void* weights =
      shipped ? static_cast<const void*>(relay.weights[stream].data() +
                                         entry * static_cast<size_t>(topk) *
                                             (src.weights_f64 ? sizeof(double) : sizeof(float)))
              : src.weights_of[static_cast<size_t>(in.source)];
  const int64_t token = shipped ? 0 : in.tokens[entry];
  for (int64_t f = in.fanout_begin[entry]; f < in.fanout_begin[entry + 1]; ++f) {
    const detail::FanoutRow& row = in.fanout[static_cast<size_t>(f)];
    const int64_t parked = in.forward.empty() ? -1 : in.forward[static_cast<size_t>(f)];
    const std::byte* value =
        parked >= 0
            ? relay.returned + static_cast<size_t>(parked) * src.row_bytes
            : src.rows_of[static_cast<size_t>(row.rank)] +
                  static_cast<size_t>(row.row) * src.pitch_of[static_cast<size_t>(row.rank)];
    list.terms.push_back({value, weight_at(weights, src.weights_f64, token * topk + row.slot)});
  }
  list.group_sizes.push_back(static_cast<int32_t>(list.terms.size()));
}

// Relays between processes, before the rounds: every source sends its relays the weights of
// each entry's token, and every node peer sends its relays the expert outputs of the rows they
// forwarded to it (into `relay`).
Status gather_relay_inputs(transport::Transport& transport, const detail::PlanData& plan,
                           const CombineSources& src, const TensorView& topk_weights,
                           RelayInputs& relay, std::vector<std::byte>& returned,
                           const transport::Deadline& deadline) {
  const int me = transport.rank();
  const size_t weight_row = static_cast<size_t>(plan.topk) * dtype_size(topk_weights.dtype);
  const int64_t weight_chunk = rows_per_chunk(transport, plan, weight_row);
  std::vector<ChunkStream> outgoing;
  std::vector<ChunkStream> incoming;
  for (size_t i = 0; i < plan.staged_out.size(); ++i) {
    const detail::StagedOut& out = plan.staged_out[i];
    if (!out.partial) continue;
    const auto rows = static_cast<int64_t>(out.tokens.size());
    outgoing.push_back({out.target, static_cast<int>(i), &transport.window(me, out.target), rows,
                        chunk_count(rows, weight_chunk), 0});
  }
  relay.weights.assign(plan.staged_in.size(), {});
  for (size_t i = 0; i < plan.staged_in.size(); ++i) {
    const detail::StagedIn& in = plan.staged_in[i];
    if (!in.partial) continue;
    relay.weights[i].resize(static_cast<size_t>(in.num_entries()) * weight_row);
    incoming.push_back({in.source, static_cast<int>(i), &transport.window(in.source, me),
                        in.num_entries(), chunk_count(in.num_entries(), weight_chunk), 0});
  }
  const auto* weights = static_cast<const std::byte*>(topk_weights.data);
  FUSCO_RETURN_IF_ERROR(pump_chunks(
      transport, outgoing, incoming, weight_chunk, weight_row, deadline, "combine (relay weights)",
      [&](const ChunkStream& s, int64_t first, int64_t count, std::byte* slot) {
        const std::vector<int32_t>& tokens = plan.staged_out[static_cast<size_t>(s.index)].tokens;
        for (int64_t i = 0; i < count; ++i) {
          copy_row(
              slot + static_cast<size_t>(i) * weight_row,
              weights + static_cast<size_t>(tokens[static_cast<size_t>(first + i)]) * weight_row,
              weight_row);
        }
      },
      [&](const ChunkStream& s, int64_t first, int64_t count, const std::byte* slot) {
        copy_row(relay.weights[static_cast<size_t>(s.index)].data() +
                     static_cast<size_t>(first) * weight_row,
                 slot, static_cast<size_t>(count) * weight_row);
      },
      [] { return false; }));
  // The forwarded rows' expert outputs, back from the node peers that own them.
  const int64_t row_chunk = rows_per_chunk(transport, plan, src.row_bytes);
  outgoing.clear();
  incoming.clear();
  for (size_t i = 0; i < plan.forward_in.size(); ++i) {
    const detail::ForwardStream& in = plan.forward_in[i];
    outgoing.push_back({in.peer, static_cast<int>(i), &transport.window(me, in.peer), in.rows,
                        chunk_count(in.rows, row_chunk), 0});
  }
  for (size_t i = 0; i < plan.forward_out.size(); ++i) {
    const detail::ForwardStream& out = plan.forward_out[i];
    incoming.push_back({out.peer, static_cast<int>(i), &transport.window(out.peer, me), out.rows,
                        chunk_count(out.rows, row_chunk), 0});
  }
  returned.resize(static_cast<size_t>(plan.forward_rows) * src.row_bytes);
  relay.returned = returned.data();
  const std::byte* mine = src.rows_of[static_cast<size_t>(me)];
  const size_t pitch = src.pitch_of[static_cast<size_t>(me)];
  return pump_chunks(
      transport, outgoing, incoming, row_chunk, src.row_bytes, deadline,
      "combine (forwarded rows back to relays)",
      [&](const ChunkStream& s, int64_t first, int64_t count, std::byte* slot) {
        const detail::ForwardStream& in = plan.forward_in[static_cast<size_t>(s.index)];
        for (int64_t i = 0; i < count && !transport.broken(); ++i) {
          copy_row(slot + static_cast<size_t>(i) * src.row_bytes,
                   mine + static_cast<size_t>(in.recv_rows[static_cast<size_t>(first + i)]) * pitch,
                   src.row_bytes);
        }
      },
      [&](const ChunkStream& s, int64_t first, int64_t count, const std::byte* slot) {
        const detail::ForwardStream& out = plan.forward_out[static_cast<size_t>(s.index)];
        copy_row(returned.data() + static_cast<size_t>(out.begin + first) * src.row_bytes, slot,
                 static_cast<size_t>(count) * src.row_bytes);
      },
      [] { return false; });
}

}  // namespace

Status combine(transport::Transport& transport, const detail::PlanData* plan,
               const TensorView& expert_out, const TensorView& topk_weights, const TensorView& out,
               Workspace& workspace) {
  const int me = transport.rank();
  FUSCO_RETURN_IF_ERROR(transport.health());
  Status local = check_combine_args(transport, plan, expert_out, topk_weights, out);
  const transport::Deadline deadline =
      transport::Deadline::after_ms(local.ok() ? plan->options.timeout_ms : 60000);
  const int64_t hidden = local.ok() ? expert_out.shape[1] : 0;
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(expert_out.dtype);
  const int64_t rows_per_chunk =
      local.ok() ? engine::rows_per_chunk(transport, *plan, row_bytes) : 1;
  std::vector<int32_t> my_rounds{0};
  if (local.ok()) {
    my_rounds = detail::combine_round_ends(*plan, static_cast<int64_t>(row_bytes));
    if (my_rounds.size() > static_cast<size_t>(kMaxCombineRounds)) {
      local = Status(
          StatusCode::kInvalidArgument,
          "options.combine_buffer_bytes = " + std::to_string(plan->options.combine_buffer_bytes) +
              " holds " +
              std::to_string(plan->options.combine_buffer_bytes /
                             static_cast<int64_t>(std::max<size_t>(1, row_bytes))) +
              " rows of " + std::to_string(row_bytes) + " bytes; this combine's " +
              std::to_string(plan->return_rows_total) + " returned rows would need more than " +
              std::to_string(kMaxCombineRounds) + " rounds");
    }
  }
  // Relays between processes need their sources' weights and their node peers' rows first.
  const bool relays_between_processes = local.ok() && plan->partial_sums && !plan->direct_peers;
  if (local.ok()) {
    for (const detail::StagedOut& staged : plan->staged_out) {
      transport.window(staged.target, me)
          .reserve(std::max<size_t>(1, static_cast<size_t>(rows_per_chunk) * row_bytes));
    }
  }
  if (relays_between_processes) {
    const size_t weight_row = static_cast<size_t>(plan->topk) * dtype_size(topk_weights.dtype);
    const int64_t weight_chunk = engine::rows_per_chunk(transport, *plan, weight_row);
    for (const detail::StagedIn& in : plan->staged_in) {
      if (in.partial) {
        transport.window(in.source, me)
            .reserve(std::max<size_t>(1, static_cast<size_t>(weight_chunk) * weight_row));
      }
    }
    for (const detail::ForwardStream& peer : plan->forward_out) {
      transport.window(peer.peer, me)
          .reserve(std::max<size_t>(1, static_cast<size_t>(rows_per_chunk) * row_bytes));
    }
  }

  OpHeader mine;
  mine.kind = static_cast<int32_t>(OpKind::kCombine);
  // Peers read this rank's expert outputs and weights where they reach them (a copy in a
  // shared region when processes cannot reach the caller's buffers).
  if (local.ok()) {
    local = publish_rows(transport, transport::SharedRegion::kExpertOut, expert_out, &mine.src,
                         &mine.src_pitch);
  }
  if (local.ok()) {
    const std::byte* weights = nullptr;
    int64_t weights_pitch = 0;
    local = publish_rows(transport, transport::SharedRegion::kWeights, topk_weights, &weights,
                         &weights_pitch);
    mine.weights = weights;
  }
  if (local.ok()) {
    mine.group_id = plan->group_id;
    mine.plan_sequence = plan->sequence;
    mine.hidden = hidden;
    mine.dtype = static_cast<int32_t>(expert_out.dtype);
    mine.rounds = static_cast<int32_t>(my_rounds.size());
    std::copy(my_rounds.begin(), my_rounds.end(), mine.round_end);
  }
  std::vector<OpHeader> headers;
  FUSCO_RETURN_IF_ERROR(start_op(transport, mine, local, &headers, deadline, "combine"));
  int rounds = 1;
  for (const OpHeader& header : headers) {
    rounds = std::max(rounds, static_cast<int>(header.rounds));
  }

  CombineSources src;
  src.row_bytes = row_bytes;
  src.weights_f64 = topk_weights.dtype == DType::kFloat64;
  for (const OpHeader& header : headers) {
    src.rows_of.push_back(header.src);
    src.pitch_of.push_back(static_cast<size_t>(header.src_pitch));
    src.weights_of.push_back(header.weights);
  }

  // Each round's slice of every stream: as a target, the entries of the source's round
  // tokens (outgoing); as a source, the entries of this rank's round tokens (incoming).
  auto outgoing_slice = [&](const detail::StagedIn& in, int r) {
    const auto [begin, end] = round_tokens(headers[static_cast<size_t>(in.source)], r);
    const auto [lo, hi] = entries_of(in.tokens, begin, end);
    if (in.partial) return Slice{lo, hi, lo, hi};
    return Slice{lo, hi, in.fanout_begin[static_cast<size_t>(lo)],
                 in.fanout_begin[static_cast<size_t>(hi)]};
  };
  auto incoming_slice = [&](const detail::StagedOut& staged, int r) {
    const auto [begin, end] = round_tokens(headers[static_cast<size_t>(me)], r);
    const auto [lo, hi] = entries_of(staged.tokens, begin, end);
    return Slice{lo, hi, staged.return_rows_before(lo), staged.return_rows_before(hi)};
  };
  // Every round's incoming slices, computed once: they size the buffer and drive the rounds.
  std::vector<std::vector<Slice>> in_slices(static_cast<size_t>(rounds));
  int64_t buffer_rows = 0;
  for (int r = 0; r < rounds; ++r) {
    int64_t rows = 0;
    for (const detail::StagedOut& staged : plan->staged_out) {
      in_slices[static_cast<size_t>(r)].push_back(incoming_slice(staged, r));
      rows += in_slices[static_cast<size_t>(r)].back().rows();
    }
    buffer_rows = std::max(buffer_rows, rows);
  }
  src.returned =
      workspace.return_buffer(std::max<size_t>(1, static_cast<size_t>(buffer_rows) * row_bytes));
  for (const detail::StagedOut& staged : plan->staged_out) {
    src.return_begin.push_back(staged.return_begin);
  }

  const DType dtype = expert_out.dtype;
  RelayInputs relay;
  std::vector<std::byte> relay_rows;
  std::vector<Slice> out_slice(plan->staged_in.size());
  std::vector<int64_t> in_offset(plan->staged_out.size());  // a stream's place in the buffer
  auto produce = [&](const ChunkStream& s, int64_t first, int64_t count, std::byte* slot) {
    const detail::StagedIn& in = plan->staged_in[static_cast<size_t>(s.index)];
    const Slice& slice = out_slice[static_cast<size_t>(s.index)];
    if (!in.partial) {
      for (int64_t i = 0; i < count && !transport.broken(); ++i) {
        const detail::FanoutRow& row = in.fanout[static_cast<size_t>(slice.row_lo + first + i)];
        copy_row(slot + static_cast<size_t>(i) * row_bytes,
                 src.rows_of[static_cast<size_t>(row.rank)] +
                     static_cast<size_t>(row.row) * src.pitch_of[static_cast<size_t>(row.rank)],
                 row_bytes);
      }
      return;
    }
    // Relay partial sums, the next entry's rows prefetched meanwhile.
    const int64_t base = slice.entry_lo + first;
    ReduceList* current = &workspace.lists[0];
    ReduceList* next = &workspace.lists[1];
    const auto stream = static_cast<size_t>(s.index);
    collect_entry(in, stream, src, relay, plan->topk, static_cast<size_t>(base), *current);
    for (int64_t i = 0; i < count && !transport.broken(); ++i) {
      if (i + 1 < count) {
        collect_entry(in, stream, src, relay, plan->topk, static_cast<size_t>(base + i + 1), *next);
        prefetch_rows(dtype, next->terms.data(), next->terms.size(), hidden);
      }
      reduce_row(dtype, current->terms.data(), current->group_sizes.data(), 1,
                 slot + static_cast<size_t>(i) * row_bytes, hidden);
      std::swap(current, next);
    }
  };
  auto consume = [&](const ChunkStream& s, int64_t first, int64_t count, const std::byte* slot) {
    copy_row(src.returned +
                 static_cast<size_t>(in_offset[static_cast<size_t>(s.index)] + first) * row_bytes,
             slot, static_cast<size_t>(count) * row_bytes);
  };
  auto no_local_work = [] { return false; };
  PeerAccess access(transport, plan->options.timeout_ms);
  if (relays_between_processes) {
    const Status gathered =
        gather_relay_inputs(transport, *plan, src, topk_weights, relay, relay_rows, deadline);
    if (!gathered.ok()) {
      return access.fail(gathered);
    }
  }
  for (int r = 0; r < rounds; ++r) {
    // Outgoing: as a target, send rows (or partial sums) back to each source.
    std::vector<ChunkStream> outgoing;
    for (size_t i = 0; i < plan->staged_in.size(); ++i) {
      out_slice[i] = outgoing_slice(plan->staged_in[i], r);
      const int64_t rows = out_slice[i].rows();
      outgoing.push_back({plan->staged_in[i].source, static_cast<int>(i),
                          &transport.window(me, plan->staged_in[i].source), rows,
                          chunk_count(rows, rows_per_chunk), 0});
    }
    // Incoming: as a source, collect what each target sends back, stream after stream.
    std::vector<ChunkStream> incoming;
    int64_t offset = 0;
    src.shift.clear();
    for (size_t i = 0; i < plan->staged_out.size(); ++i) {
      const detail::StagedOut& staged = plan->staged_out[i];
      const Slice& slice = in_slices[static_cast<size_t>(r)][i];
      in_offset[i] = offset;
      if (rounds > 1) {
        src.shift.push_back(offset - staged.return_begin - slice.row_lo);
      }
      const int64_t rows = slice.rows();
      offset += rows;
      incoming.push_back({staged.target, static_cast<int>(i), &transport.window(staged.target, me),
                          rows, chunk_count(rows, rows_per_chunk), 0});
    }
    const Status pumped = pump_chunks(transport, outgoing, incoming, rows_per_chunk, row_bytes,
                                      deadline, "combine", produce, consume, no_local_work);
    if (!pumped.ok()) {
      return access.fail(pumped);
    }
    const auto [begin, end] = round_tokens(headers[static_cast<size_t>(me)], r);
    reduce_tokens(transport, *plan, src, dtype, topk_weights.data,
                  static_cast<std::byte*>(out.data), hidden, workspace, begin, end);
    if (transport.broken()) {
      return access.fail(transport.health());
    }
  }
  access.done();
  // Peers read this rank's expert_out and weights until they are done.
  const Status finished = transport.barrier(deadline, "combine (completion)");
  return finished.ok() ? finished : access.fail(finished);
}

}  // namespace fusco::engine
