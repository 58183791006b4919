// The public Plan handle and its statistics.

#include "fusco/plan.hpp"

#include <sstream>

#include "plan/plan_data.hpp"

namespace fusco {

int Plan::rank() const { return data_->rank; }
const Topology& Plan::topology() const { return data_->topology; }
int64_t Plan::num_tokens() const { return data_->num_tokens; }
int Plan::topk() const { return data_->topk; }
int64_t Plan::num_experts() const { return data_->num_experts; }
const std::vector<int64_t>& Plan::tokens_per_expert() const { return data_->tokens_per_expert; }
const std::vector<int64_t>& Plan::local_experts() const { return data_->local_experts; }
const std::vector<int32_t>& Plan::slot_ranks() const { return data_->slot_ranks; }
const std::vector<int64_t>& Plan::padded_tokens_per_expert() const {
  return data_->padded_tokens_per_expert;
}
const std::vector<int64_t>& Plan::dropped_per_expert() const { return data_->dropped_per_expert; }
const std::vector<int32_t>& Plan::recv_local_experts() const { return data_->recv_local_experts; }
int64_t Plan::num_recv_rows() const { return data_->num_recv_rows; }
const PlanStats& Plan::stats() const { return data_->stats; }
const PlanOptions& Plan::options() const { return data_->options; }

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
      << " bytes (+ " << relay_forwarded_rows << " rows forwarded as relay)\n";
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
