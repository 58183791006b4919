#include "gpu/unfused_device_lists.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace fusco::gpu {

namespace {

constexpr int64_t kMaxRows = std::numeric_limits<int32_t>::max();

Status too_many_rows(const char* what, int64_t rows) {
  return Status(StatusCode::kInvalidArgument,
                std::string(what) + " has " + std::to_string(rows) +
                    " rows, more than the 2^31 - 1 the baseline's row lists index");
}

}  // namespace

Result<UnfusedDeviceLists> send_side_lists(const detail::PlanData& plan, int world) {
  UnfusedDeviceLists lists;
  if (static_cast<int64_t>(plan.direct.size()) > kMaxRows) {
    return too_many_rows("a send buffer", static_cast<int64_t>(plan.direct.size()));
  }
  // The plan's direct rows are sorted by (destination rank, row), i.e. by rank, then expert,
  // source token and slot: Megatron's permute order.
  lists.send_offsets.assign(static_cast<size_t>(world) + 1, 0);
  for (size_t i = 0; i < plan.direct.size(); ++i) {
    lists.permute.push_back({plan.direct[i].token, 0, static_cast<int64_t>(i)});
    ++lists.send_offsets[static_cast<size_t>(plan.direct[i].rank) + 1];
  }
  for (size_t d = 0; d < static_cast<size_t>(world); ++d) {
    lists.send_offsets[d + 1] += lists.send_offsets[d];
  }
  // Combine: term (rank d, row r) reads the returned row at the send position of (d, r).
  for (const detail::CombineTerm& term : plan.terms) {
    const detail::DirectRow key{0, term.rank, term.row};
    const auto at = std::lower_bound(plan.direct.begin(), plan.direct.end(), key,
                                     [](const auto& a, const auto& b) {
                                       return a.rank != b.rank ? a.rank < b.rank : a.row < b.row;
                                     });
    if (at == plan.direct.end() || at->rank != term.rank || at->row != term.row) {
      return Status(StatusCode::kInternal, "a combine term of rank " + std::to_string(plan.rank) +
                                               " reads a row its plan does not send");
    }
    lists.return_terms.push_back({0, term.slot, at - plan.direct.begin()});
  }
  return lists;
}

Status set_receive_side(UnfusedDeviceLists& lists, const std::vector<int64_t>& counts,
                        const std::vector<int64_t>& rows, int64_t num_recv_rows) {
  lists.stage_offsets.assign(counts.size() + 1, 0);
  for (size_t s = 0; s < counts.size(); ++s) {
    lists.stage_offsets[s + 1] = lists.stage_offsets[s] + counts[s];
  }
  if (lists.stage_offsets.back() > kMaxRows || num_recv_rows > kMaxRows) {
    return too_many_rows("a receive buffer", std::max(lists.stage_offsets.back(), num_recv_rows));
  }
  if (static_cast<int64_t>(rows.size()) != lists.stage_offsets.back()) {
    return Status(StatusCode::kInternal,
                  "the receive side got " + std::to_string(rows.size()) + " rows for " +
                      std::to_string(lists.stage_offsets.back()) + " counted");
  }
  lists.resort.clear();
  for (size_t j = 0; j < rows.size(); ++j) {
    if (rows[j] < 0 || rows[j] >= num_recv_rows) {
      return Status(StatusCode::kInternal, "an incoming row " + std::to_string(rows[j]) +
                                               " is outside the " + std::to_string(num_recv_rows) +
                                               " receive rows");
    }
    lists.resort.push_back({static_cast<int32_t>(j), 0, rows[j]});
  }
  return Status();
}

std::vector<RowMove> inverse_moves(const std::vector<RowMove>& moves) {
  std::vector<RowMove> out;
  out.reserve(moves.size());
  for (const RowMove& move : moves) {
    out.push_back({static_cast<int32_t>(move.to), 0, move.from});
  }
  return out;
}

Result<std::vector<UnfusedDeviceLists>> unfused_device_lists(
    const std::vector<const detail::PlanData*>& plans) {
  const int world = static_cast<int>(plans.size());
  std::vector<UnfusedDeviceLists> lists;
  for (const detail::PlanData* plan : plans) {
    Result<UnfusedDeviceLists> mine = send_side_lists(*plan, world);
    FUSCO_RETURN_IF_ERROR(mine.status());
    lists.push_back(std::move(mine).value());
  }
  // Receive side: staging holds the blocks of ranks 0, 1, ... in their send order.
  for (size_t d = 0; d < plans.size(); ++d) {
    std::vector<int64_t> counts;
    std::vector<int64_t> rows;
    for (size_t s = 0; s < plans.size(); ++s) {
      const int64_t begin = lists[s].send_offsets[d];
      const int64_t end = lists[s].send_offsets[d + 1];
      counts.push_back(end - begin);
      for (int64_t i = begin; i < end; ++i) {
        rows.push_back(plans[s]->direct[static_cast<size_t>(i)].row);
      }
    }
    FUSCO_RETURN_IF_ERROR(set_receive_side(lists[d], counts, rows, plans[d]->num_recv_rows));
  }
  return lists;
}

}  // namespace fusco::gpu
