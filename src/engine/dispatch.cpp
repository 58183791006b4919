// Dispatch: every row is gathered from x and written once into its final expert-major place.
// Rows for ranks of this node are stored directly; staged entries travel chunk by chunk into
// the target's staging window, and the target (relay or remote rank) fans each entry out. A
// companion tensor (extra) travels in the same chunks, its row right after the x row.

#include <algorithm>
#include <cstring>

#include "engine/chunk_pump.hpp"
#include "engine/engine.hpp"
#include "engine/op_start.hpp"
#include "engine/plan_checks.hpp"

namespace fusco::engine {

namespace {

// Where one row of a dispatched tensor lives on every rank, and how long it is.
struct RowStore {
  std::vector<std::byte*> base;  // each rank's receive buffer (this rank's only, without direct)
  size_t bytes = 0;

  std::byte* row(int rank, int64_t row_index) const {
    return base[static_cast<size_t>(rank)] + static_cast<size_t>(row_index) * bytes;
  }
};

// A receive buffer as peers reach it: the caller's view, or a shared region standing in for
// it (Transport::reaches) whose rows are copied out once every peer is done.
struct ReceiveTarget {
  TensorView view;
  transport::SharedRegion region;
  std::byte* at;

  Status reach(transport::Transport& transport, size_t row_bytes) {
    const size_t bytes = static_cast<size_t>(view.shape[0]) * row_bytes;
    if (transport.reaches(view.data, bytes)) return Status();
    Result<std::byte*> stand_in = transport.shared_region(region, bytes);
    FUSCO_RETURN_IF_ERROR(stand_in.status());
    at = stand_in.value();
    return Status();
  }
  void copy_out(size_t row_bytes) const {
    if (at != view.data && at != nullptr && view.shape[0] > 0 && row_bytes > 0) {
      std::memcpy(view.data, at, static_cast<size_t>(view.shape[0]) * row_bytes);
    }
  }
};

// The second hop of relays between processes: the rows parked in `parked` go to the node
// peers that own them (plan.forward_out), and the rows this rank's relays parked for it
// arrive and land in place (plan.forward_in).
Status forward_rows(transport::Transport& transport, const detail::PlanData& plan,
                    const std::vector<std::byte>& parked, const RowStore& rows,
                    const RowStore& extra_rows, int64_t rows_per_chunk, size_t slot_row,
                    const transport::Deadline& deadline) {
  const int me = transport.rank();
  std::vector<ChunkStream> outgoing;
  for (size_t i = 0; i < plan.forward_out.size(); ++i) {
    const detail::ForwardStream& out = plan.forward_out[i];
    outgoing.push_back({out.peer, static_cast<int>(i), &transport.window(me, out.peer), out.rows,
                        chunk_count(out.rows, rows_per_chunk), 0});
  }
  std::vector<ChunkStream> incoming;
  for (size_t i = 0; i < plan.forward_in.size(); ++i) {
    const detail::ForwardStream& in = plan.forward_in[i];
    incoming.push_back({in.peer, static_cast<int>(i), &transport.window(in.peer, me), in.rows,
                        chunk_count(in.rows, rows_per_chunk), 0});
  }
  auto produce = [&](const ChunkStream& s, int64_t first, int64_t count, std::byte* slot) {
    const detail::ForwardStream& out = plan.forward_out[static_cast<size_t>(s.index)];
    copy_row(slot, parked.data() + static_cast<size_t>(out.begin + first) * slot_row,
             static_cast<size_t>(count) * slot_row);
  };
  auto consume = [&](const ChunkStream& s, int64_t first, int64_t count, const std::byte* slot) {
    const detail::ForwardStream& in = plan.forward_in[static_cast<size_t>(s.index)];
    for (int64_t i = 0; i < count && !transport.broken(); ++i) {
      const int64_t row = in.recv_rows[static_cast<size_t>(first + i)];
      const std::byte* from = slot + static_cast<size_t>(i) * slot_row;
      copy_row(rows.row(me, row), from, rows.bytes);
      if (extra_rows.bytes > 0) {
        copy_row(extra_rows.row(me, row), from + rows.bytes, extra_rows.bytes);
      }
    }
  };
  return pump_chunks(transport, outgoing, incoming, rows_per_chunk, slot_row, deadline,
                     "dispatch (relay forwarding)", produce, consume, [] { return false; });
}

}  // namespace

Status dispatch(transport::Transport& transport, const detail::PlanData* plan, const TensorView& x,
                const TensorView& recv, const TensorView& extra, const TensorView& extra_recv) {
  const int me = transport.rank();
  FUSCO_RETURN_IF_ERROR(transport.health());
  const Status local = check_dispatch_args(transport, plan, x, recv, extra, extra_recv);
  const bool with_extra = local.ok() && has_extra(extra, extra_recv);
  const transport::Deadline deadline =
      transport::Deadline::after_ms(local.ok() ? plan->options.timeout_ms : 60000);
  const auto row_bytes =
      local.ok() ? static_cast<size_t>(x.shape[1]) * dtype_size(x.dtype) : size_t{0};
  const auto extra_bytes =
      with_extra ? static_cast<size_t>(extra.shape[1]) * dtype_size(extra.dtype) : size_t{0};
  // A staged chunk row: the x row, then the companion row.
  const size_t slot_row = row_bytes + extra_bytes;
  const int64_t rows_per_chunk =
      local.ok() ? engine::rows_per_chunk(transport, *plan, slot_row) : 1;
  if (local.ok()) {
    // This rank owns its incoming windows; size them before anyone may put.
    for (const detail::StagedIn& in : plan->staged_in) {
      transport.window(in.source, me)
          .reserve(std::max<size_t>(1, static_cast<size_t>(rows_per_chunk) * slot_row));
    }
    for (const detail::ForwardStream& in : plan->forward_in) {  // the relays' second hop
      transport.window(in.peer, me)
          .reserve(std::max<size_t>(1, static_cast<size_t>(rows_per_chunk) * slot_row));
    }
  }

  // Where peers store this rank's rows: recv itself, or a shared region copied out at the end.
  ReceiveTarget target{recv, transport::SharedRegion::kRecv, static_cast<std::byte*>(recv.data)};
  ReceiveTarget extra_target{extra_recv, transport::SharedRegion::kExtraRecv,
                             static_cast<std::byte*>(extra_recv.data)};
  Status reached = local;
  if (reached.ok()) reached = target.reach(transport, row_bytes);
  if (reached.ok() && with_extra) reached = extra_target.reach(transport, extra_bytes);

  OpHeader mine;
  mine.kind = static_cast<int32_t>(OpKind::kDispatch);
  if (reached.ok()) {
    mine.group_id = plan->group_id;
    mine.plan_sequence = plan->sequence;
    mine.hidden = x.shape[1];
    mine.dtype = static_cast<int32_t>(x.dtype);
    mine.src = static_cast<const std::byte*>(x.data);
    mine.dst = target.at;
    if (with_extra) {
      mine.extra_hidden = extra.shape[1];
      mine.extra_dtype = static_cast<int32_t>(extra.dtype);
      mine.extra_dst = extra_target.at;
    }
  }
  std::vector<OpHeader> headers;
  FUSCO_RETURN_IF_ERROR(start_op(transport, mine, reached, &headers, deadline, "dispatch"));

  // Without the direct ability only this rank's own buffers are stored into directly.
  RowStore rows{{}, row_bytes};
  RowStore extra_rows{{}, extra_bytes};
  for (const OpHeader& header : headers) {
    rows.base.push_back(header.dst);
    extra_rows.base.push_back(header.extra_dst);
  }
  const auto* x_rows = static_cast<const std::byte*>(x.data);
  const auto x_pitch = static_cast<size_t>(x.row_pitch_bytes());
  const auto* extra_src = static_cast<const std::byte*>(extra.data);
  const auto extra_pitch = with_extra ? static_cast<size_t>(extra.row_pitch_bytes()) : size_t{0};
  auto gather = [&](std::byte* to, int64_t token) {
    copy_row(to, x_rows + static_cast<size_t>(token) * x_pitch, row_bytes);
    if (with_extra) {
      copy_row(to + row_bytes, extra_src + static_cast<size_t>(token) * extra_pitch, extra_bytes);
    }
  };

  std::vector<ChunkStream> outgoing;
  for (size_t i = 0; i < plan->staged_out.size(); ++i) {
    const detail::StagedOut& out = plan->staged_out[i];
    const auto count = static_cast<int64_t>(out.tokens.size());
    outgoing.push_back({out.target, static_cast<int>(i), &transport.window(me, out.target), count,
                        chunk_count(count, rows_per_chunk), 0});
  }
  std::vector<ChunkStream> incoming;
  for (size_t i = 0; i < plan->staged_in.size(); ++i) {
    const detail::StagedIn& in = plan->staged_in[i];
    incoming.push_back({in.source, static_cast<int>(i), &transport.window(in.source, me),
                        in.num_entries(), chunk_count(in.num_entries(), rows_per_chunk), 0});
  }

  auto produce = [&](const ChunkStream& s, int64_t first, int64_t count, std::byte* slot) {
    const std::vector<int32_t>& tokens = plan->staged_out[static_cast<size_t>(s.index)].tokens;
    for (int64_t i = 0; i < count; ++i) {
      gather(slot + static_cast<size_t>(i) * slot_row, tokens[static_cast<size_t>(first + i)]);
    }
  };
  // Relays between processes park their node peers' rows here for the second hop.
  std::vector<std::byte> forward(static_cast<size_t>(local.ok() ? plan->forward_rows : 0) *
                                 slot_row);
  auto consume = [&](const ChunkStream& s, int64_t first, int64_t count, const std::byte* slot) {
    const detail::StagedIn& in = plan->staged_in[static_cast<size_t>(s.index)];
    for (int64_t i = 0; i < count && !transport.broken(); ++i) {
      const auto entry = static_cast<size_t>(first + i);
      const std::byte* from = slot + static_cast<size_t>(i) * slot_row;
      for (int64_t f = in.fanout_begin[entry]; f < in.fanout_begin[entry + 1]; ++f) {
        const detail::FanoutRow& row = in.fanout[static_cast<size_t>(f)];
        if (!in.forward.empty() && in.forward[static_cast<size_t>(f)] >= 0) {
          copy_row(
              forward.data() + static_cast<size_t>(in.forward[static_cast<size_t>(f)]) * slot_row,
              from, slot_row);
          continue;
        }
        copy_row(rows.row(row.rank, row.row), from, row_bytes);
        if (with_extra) {
          copy_row(extra_rows.row(row.rank, row.row), from + row_bytes, extra_bytes);
        }
      }
    }
  };
  // Padding rows of this rank's receive buffers are zeroed here; peers store only into the
  // delivered rows, so the two never overlap.
  for (const auto& [begin, end] : plan->padding) {
    for (const RowStore* store : {&rows, &extra_rows}) {
      if (store->bytes > 0) {
        std::memset(store->row(me, begin), 0, static_cast<size_t>(end - begin) * store->bytes);
      }
    }
  }
  // Direct stores in slices about one chunk long, so staged traffic keeps moving meanwhile.
  size_t direct_next = 0;
  auto local_work = [&]() {
    if (direct_next >= plan->direct.size()) {
      return false;
    }
    const size_t end =
        std::min(plan->direct.size(), direct_next + static_cast<size_t>(rows_per_chunk));
    for (; direct_next < end && !transport.broken(); ++direct_next) {
      const detail::DirectRow& row = plan->direct[direct_next];
      copy_row(rows.row(row.rank, row.row), x_rows + static_cast<size_t>(row.token) * x_pitch,
               row_bytes);
      if (with_extra) {
        copy_row(extra_rows.row(row.rank, row.row),
                 extra_src + static_cast<size_t>(row.token) * extra_pitch, extra_bytes);
      }
    }
    return true;
  };
  PeerAccess access(transport, plan->options.timeout_ms);
  const Status pumped = pump_chunks(transport, outgoing, incoming, rows_per_chunk, slot_row,
                                    deadline, "dispatch", produce, consume, local_work);
  if (!pumped.ok()) {
    return access.fail(pumped);
  }
  if (!plan->forward_out.empty() || !plan->forward_in.empty()) {
    // The relays' second hop: parked rows to their node peers, into place on arrival.
    const Status forwarded = forward_rows(transport, *plan, forward, rows, extra_rows,
                                          rows_per_chunk, slot_row, deadline);
    if (!forwarded.ok()) {
      return access.fail(forwarded);
    }
  }
  access.done();
  // Peers store into this rank's buffers until they are done; nobody returns before all are.
  const Status finished = transport.barrier(deadline, "dispatch (completion)");
  if (!finished.ok()) {
    return access.fail(finished);
  }
  target.copy_out(row_bytes);
  if (with_extra) extra_target.copy_out(extra_bytes);
  return Status();
}

}  // namespace fusco::engine
