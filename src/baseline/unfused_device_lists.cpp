#include "baseline/unfused_device_lists.hpp"

#include <algorithm>
#include <limits>
#include <string>

namespace fusco::baseline {

namespace {

Status too_many_rows(const char* what, int64_t rows) {
  return Status(StatusCode::kInvalidArgument,
                std::string(what) + " has " + std::to_string(rows) +
                    " rows, more than the 2^31 - 1 the baseline's row lists index");
}

}  // namespace

Result<std::vector<UnfusedDeviceLists>> unfused_device_lists(
    const std::vector<const detail::PlanData*>& plans) {
  const size_t world = plans.size();
  constexpr int64_t kMaxRows = std::numeric_limits<int32_t>::max();
  std::vector<UnfusedDeviceLists> lists(world);
  // Send side: the plan's direct rows are sorted by (destination rank, row), i.e. by rank,
  // then expert, source token and slot: Megatron's permute order.
  std::vector<std::vector<int64_t>> counts(world, std::vector<int64_t>(world, 0));
  for (size_t s = 0; s < world; ++s) {
    const detail::PlanData& plan = *plans[s];
    UnfusedDeviceLists& mine = lists[s];
    if (static_cast<int64_t>(plan.direct.size()) > kMaxRows) {
      return too_many_rows("a send buffer", static_cast<int64_t>(plan.direct.size()));
    }
    for (size_t i = 0; i < plan.direct.size(); ++i) {
      mine.permute.push_back({plan.direct[i].token, 0, static_cast<int64_t>(i)});
      ++counts[s][static_cast<size_t>(plan.direct[i].rank)];
    }
    mine.send_offsets.assign(world + 1, 0);
    for (size_t d = 0; d < world; ++d) {
      mine.send_offsets[d + 1] = mine.send_offsets[d] + counts[s][d];
    }
  }
  // Receive side: staging holds the blocks of ranks 0, 1, ... in their send order.
  for (size_t d = 0; d < world; ++d) {
    UnfusedDeviceLists& mine = lists[d];
    mine.stage_offsets.assign(world + 1, 0);
    for (size_t s = 0; s < world; ++s) {
      mine.stage_offsets[s + 1] = mine.stage_offsets[s] + counts[s][d];
      const detail::PlanData& source = *plans[s];
      const auto begin = static_cast<size_t>(lists[s].send_offsets[d]);
      for (size_t i = 0; i < static_cast<size_t>(counts[s][d]); ++i) {
        mine.resort.push_back(
            {static_cast<int32_t>(mine.stage_offsets[s] + static_cast<int64_t>(i)), 0,
             source.direct[begin + i].row});
      }
    }
    if (mine.stage_offsets[world] > kMaxRows || plans[d]->num_recv_rows > kMaxRows) {
      return too_many_rows("a receive buffer", plans[d]->num_recv_rows);
    }
  }
  // Combine: term (rank d, row r) reads the returned row at the send position of (d, r).
  for (size_t s = 0; s < world; ++s) {
    const detail::PlanData& plan = *plans[s];
    for (const detail::CombineTerm& term : plan.terms) {
      const detail::DirectRow key{0, term.rank, term.row};
      const auto at = std::lower_bound(plan.direct.begin(), plan.direct.end(), key,
                                       [](const auto& a, const auto& b) {
                                         return a.rank != b.rank ? a.rank < b.rank : a.row < b.row;
                                       });
      if (at == plan.direct.end() || at->rank != term.rank || at->row != term.row) {
        return Status(StatusCode::kInternal, "a combine term of rank " + std::to_string(s) +
                                                 " reads a row its plan does not send");
      }
      lists[s].return_terms.push_back({0, term.slot, at - plan.direct.begin()});
    }
  }
  return lists;
}

}  // namespace fusco::baseline
