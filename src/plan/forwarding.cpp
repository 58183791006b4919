#include "plan/forwarding.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace fusco::plan {

Status set_up_forwarding(transport::Transport& transport, detail::PlanData& plan,
                         const transport::Deadline& deadline) {
  const Topology& topo = plan.topology;
  const int me = plan.rank;
  const int my_node = topo.node_of(me);
  const int first = topo.node_first_rank(my_node);
  const int size = topo.node_size(my_node);
  // Rows for each node peer, in staged_in order: by source, entry, slot.
  std::vector<int64_t> begin(static_cast<size_t>(size) + 1, 0);
  for (const detail::StagedIn& in : plan.staged_in) {
    for (const detail::FanoutRow& row : in.fanout) {
      if (row.rank == me) continue;
      if (row.rank < first || row.rank >= first + size) {
        return Status(StatusCode::kInternal,
                      "staged metadata from rank " + std::to_string(in.source) + " names rank " +
                          std::to_string(row.rank) + ", which is not on this relay's node");
      }
      ++begin[static_cast<size_t>(row.rank - first) + 1];
    }
  }
  for (size_t p = 0; p < static_cast<size_t>(size); ++p) begin[p + 1] += begin[p];
  plan.forward_rows = begin.back();
  std::vector<int64_t> cursor(begin.begin(), begin.end() - 1);
  std::vector<std::vector<int64_t>> rows(static_cast<size_t>(size));
  for (detail::StagedIn& in : plan.staged_in) {
    if (plan.forward_rows == 0) break;
    in.forward.assign(in.fanout.size(), -1);
    for (size_t f = 0; f < in.fanout.size(); ++f) {
      const detail::FanoutRow& row = in.fanout[f];
      if (row.rank == me) continue;
      const auto p = static_cast<size_t>(row.rank - first);
      in.forward[f] = cursor[p]++;
      rows[p].push_back(row.row);
    }
  }
  // To every node peer: the receive rows of what it will get from this relay, in order.
  std::vector<transport::Bytes> send(static_cast<size_t>(transport.world_size()));
  for (size_t p = 0; p < static_cast<size_t>(size); ++p) {
    if (rows[p].empty()) continue;
    plan.forward_out.push_back({static_cast<int32_t>(first + static_cast<int>(p)),
                                begin[p],
                                static_cast<int64_t>(rows[p].size()),
                                {}});
    transport::Bytes& bytes = send[static_cast<size_t>(first) + p];
    bytes.resize(rows[p].size() * sizeof(int64_t));
    std::memcpy(bytes.data(), rows[p].data(), bytes.size());
  }
  plan.forward_in.clear();
  FUSCO_RETURN_IF_ERROR(transport.alltoallv_consume(
      send,
      [&plan](int source, const transport::Bytes& bytes) {
        if (bytes.empty()) return Status();
        if (bytes.size() % sizeof(int64_t) != 0 ||
            plan.topology.node_of(source) != plan.topology.node_of(plan.rank)) {
          return Status(StatusCode::kInternal, "forwarding metadata from rank " +
                                                   std::to_string(source) + " is malformed");
        }
        detail::ForwardStream in{static_cast<int32_t>(source),
                                 0,
                                 static_cast<int64_t>(bytes.size() / sizeof(int64_t)),
                                 {}};
        in.recv_rows.resize(static_cast<size_t>(in.rows));
        std::memcpy(in.recv_rows.data(), bytes.data(), bytes.size());
        for (const int64_t row : in.recv_rows) {
          if (row < 0 || row >= plan.num_recv_rows) {
            return Status(StatusCode::kInternal, "forwarding metadata from rank " +
                                                     std::to_string(source) + " names row " +
                                                     std::to_string(row) + " of " +
                                                     std::to_string(plan.num_recv_rows));
          }
        }
        plan.forward_in.push_back(std::move(in));
        return Status();
      },
      deadline, "plan (relay forwarding exchange)"));
  std::sort(plan.forward_in.begin(), plan.forward_in.end(),
            [](const detail::ForwardStream& a, const detail::ForwardStream& b) {
              return a.peer < b.peer;
            });
  return Status();
}

}  // namespace fusco::plan
