// The public Plan handle and its statistics.

#include "fusco/plan.hpp"

#include <algorithm>
#include <memory>
#include <sstream>

#include "plan/plan_data.hpp"

namespace fusco {

namespace {

// What the accessors of an empty (default-made) plan read: rank -1, no tokens, no rows.
const detail::PlanData& data_of(const std::shared_ptr<const detail::PlanData>& data) {
  static const detail::PlanData empty = [] {
    detail::PlanData plan;
    plan.rank = -1;
    return plan;
  }();
  return data ? *data : empty;
}

}  // namespace

int Plan::rank() const { return data_of(data_).rank; }
const Topology& Plan::topology() const { return data_of(data_).topology; }
int64_t Plan::num_tokens() const { return data_of(data_).num_tokens; }
int Plan::topk() const { return data_of(data_).topk; }
int64_t Plan::num_experts() const { return data_of(data_).num_experts; }
const std::vector<int64_t>& Plan::tokens_per_expert() const {
  return data_of(data_).tokens_per_expert;
}
const std::vector<int64_t>& Plan::local_experts() const { return data_of(data_).local_experts; }
const std::vector<int32_t>& Plan::slot_ranks() const { return data_of(data_).slot_ranks; }
const std::vector<int64_t>& Plan::padded_tokens_per_expert() const {
  return data_of(data_).padded_tokens_per_expert;
}
const std::vector<int64_t>& Plan::dropped_per_expert() const {
  return data_of(data_).dropped_per_expert;
}
const std::vector<int32_t>& Plan::recv_local_experts() const {
  return data_of(data_).recv_local_experts;
}
int64_t Plan::num_recv_rows() const { return data_of(data_).num_recv_rows; }
const PlanStats& Plan::stats() const { return data_of(data_).stats; }
const PlanOptions& Plan::options() const { return data_of(data_).options; }

int64_t Plan::combine_rounds(int64_t row_bytes) const {
  return static_cast<int64_t>(detail::combine_round_ends(data_of(data_), row_bytes).size());
}

namespace detail {

std::vector<int32_t> combine_round_ends(const PlanData& plan, int64_t row_bytes) {
  const int64_t tokens = plan.num_tokens;
  const int64_t buffer = plan.options.combine_buffer_bytes;
  if (buffer == 0 || row_bytes <= 0 || plan.return_rows_total <= buffer / row_bytes) {
    return {static_cast<int32_t>(tokens)};
  }
  const int64_t cap = std::max<int64_t>(1, buffer / row_bytes);
  std::vector<int32_t> ends;
  int64_t start = 0;
  int64_t base = 0;  // returned rows before `start`
  for (int64_t t = 0; t < tokens; ++t) {
    if (plan.token_return_end[static_cast<size_t>(t)] - base > cap && t > start) {
      ends.push_back(static_cast<int32_t>(t));
      base = plan.token_return_end[static_cast<size_t>(t) - 1];
      start = t;
    }
  }
  ends.push_back(static_cast<int32_t>(tokens));
  return ends;
}

}  // namespace detail

double PlanStats::dedup_ratio() const {
  return inter_node_rows == 0 ? 1.0
                              : static_cast<double>(inter_node_rows_without_dedup) /
                                    static_cast<double>(inter_node_rows);
}

std::string PlanStats::to_string(int64_t row_bytes) const {
  std::ostringstream out;
  out << "tokens " << num_tokens << ", rows " << logical_rows << ", received rows " << received_rows
      << "\n";
  out << "intra-node: " << intra_node_rows << " rows, " << bytes_for(intra_node_rows, row_bytes)
      << " bytes (+ " << relay_forwarded_rows << " rows forwarded as relay), "
      << (direct_peers ? "stored directly" : "through staging windows") << "\n";
  out << "inter-node: " << inter_node_rows << " rows, " << bytes_for(inter_node_rows, row_bytes)
      << " bytes (" << inter_node_rows_without_dedup << " without dedup, ratio " << dedup_ratio()
      << ")\n";
  out << "rows per destination:";
  for (int64_t rows : rows_per_destination) {
    out << ' ' << rows;
  }
  out << "\nwire rows per destination:";
  for (int64_t rows : wire_rows_per_destination) {
    out << ' ' << rows;
  }
  out << '\n';
  if (!received_rows_per_rank.empty()) {
    out << "received rows per rank, primary copies only:";
    for (int64_t rows : received_rows_per_rank_unbalanced) {
      out << ' ' << rows;
    }
    out << "\nreceived rows per rank, replicas balanced:";
    for (int64_t rows : received_rows_per_rank) {
      out << ' ' << rows;
    }
    out << '\n';
  }
  return out.str();
}

}  // namespace fusco
