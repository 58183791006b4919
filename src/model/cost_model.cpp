#include "model/cost_model.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <sstream>
#include <vector>

namespace fusco::plan {

ClusterSpec ClusterSpec::fusco_testbed() {
  ClusterSpec spec;
  spec.nodes = 8;
  spec.ranks_per_node = 8;
  spec.nvlink_gbytes_per_s = 480;
  spec.nics_per_node = 10;
  spec.nic_gbits_per_s = 400;
  return spec;
}

Topology ClusterSpec::topology() const {
  return Topology::nodes_of(nodes * ranks_per_node, ranks_per_node);
}

std::string ClusterSpec::to_string() const {
  std::ostringstream out;
  out << "nodes=" << nodes << ",ranks_per_node=" << ranks_per_node
      << ",nvlink_gbytes_per_s=" << nvlink_gbytes_per_s << ",nics_per_node=" << nics_per_node
      << ",nic_gbits_per_s=" << nic_gbits_per_s << ",nvlink_latency_us=" << nvlink_latency_us
      << ",network_latency_us=" << network_latency_us;
  return out.str();
}

namespace {

Status bad_value(std::string_view key, std::string_view value, const char* range) {
  return Status(StatusCode::kInvalidArgument, "cluster spec: " + std::string(key) + "=" +
                                                  std::string(value) + " is not " + range);
}

Status set_int(std::string_view key, std::string_view value, int lo, int hi, int* out) {
  int parsed = 0;
  const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), parsed);
  if (error != std::errc() || end != value.data() + value.size() || parsed < lo || parsed > hi) {
    const std::string range =
        "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return bad_value(key, value, range.c_str());
  }
  *out = parsed;
  return Status();
}

Status set_positive(std::string_view key, std::string_view value, double* out) {
  const std::string copy(value);
  char* end = nullptr;
  const double parsed = std::strtod(copy.c_str(), &end);
  if (copy.empty() || end != copy.c_str() + copy.size() || !std::isfinite(parsed) ||
      !(parsed > 0) || parsed > 1e9) {
    return bad_value(key, value, "a number in (0, 1e9]");
  }
  *out = parsed;
  return Status();
}

}  // namespace

Result<ClusterSpec> parse_cluster_spec(std::string_view text, const ClusterSpec& base) {
  ClusterSpec spec = base;
  size_t at = 0;
  while (at < text.size()) {
    const char c = text[at];
    if (c == '#') {
      while (at < text.size() && text[at] != '\n') ++at;
      continue;
    }
    if (c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      ++at;
      continue;
    }
    size_t end = at;
    while (end < text.size() && text[end] != ',' && text[end] != ' ' && text[end] != '\t' &&
           text[end] != '\n' && text[end] != '\r' && text[end] != '#') {
      ++end;
    }
    const std::string_view pair = text.substr(at, end - at);
    at = end;
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      return Status(StatusCode::kInvalidArgument,
                    "cluster spec: '" + std::string(pair) + "' is not key=value");
    }
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value = pair.substr(eq + 1);
    Status set;
    if (key == "nodes") {
      set = set_int(key, value, 1, 65536, &spec.nodes);
    } else if (key == "ranks_per_node") {
      set = set_int(key, value, 1, 1024, &spec.ranks_per_node);
    } else if (key == "nics_per_node") {
      set = set_int(key, value, 1, 1024, &spec.nics_per_node);
    } else if (key == "nvlink_gbytes_per_s") {
      set = set_positive(key, value, &spec.nvlink_gbytes_per_s);
    } else if (key == "nic_gbits_per_s") {
      set = set_positive(key, value, &spec.nic_gbits_per_s);
    } else if (key == "nvlink_latency_us") {
      set = set_positive(key, value, &spec.nvlink_latency_us);
    } else if (key == "network_latency_us") {
      set = set_positive(key, value, &spec.network_latency_us);
    } else {
      return Status(StatusCode::kInvalidArgument,
                    "cluster spec: unknown key '" + std::string(key) +
                        "'; expected nodes, ranks_per_node, nvlink_gbytes_per_s, nics_per_node, "
                        "nic_gbits_per_s, nvlink_latency_us or network_latency_us");
    }
    FUSCO_RETURN_IF_ERROR(set);
  }
  if (static_cast<int64_t>(spec.nodes) * spec.ranks_per_node > 65536) {
    return Status(StatusCode::kInvalidArgument,
                  "cluster spec: nodes * ranks_per_node = " +
                      std::to_string(static_cast<int64_t>(spec.nodes) * spec.ranks_per_node) +
                      " ranks; at most 65536 are supported");
  }
  return spec;
}

Result<PlanCost> estimate_cost(const GroupTraffic& traffic, const ClusterSpec& cluster,
                               int64_t row_bytes) {
  const Topology topo = cluster.topology();
  if (traffic.world_size != topo.world_size) {
    return Status(StatusCode::kInvalidArgument, "traffic of " + std::to_string(traffic.world_size) +
                                                    " ranks on a cluster of " +
                                                    std::to_string(topo.world_size));
  }
  const auto world = static_cast<size_t>(topo.world_size);
  const auto nics = static_cast<size_t>(cluster.nics_per_node);
  std::vector<int64_t> nvlink_out(world, 0);
  std::vector<int64_t> nvlink_in(world, 0);
  std::vector<int64_t> nic_out(static_cast<size_t>(cluster.nodes) * nics, 0);
  std::vector<int64_t> nic_in(nic_out.size(), 0);
  auto nic_of = [&](int rank) {
    return static_cast<size_t>(topo.node_of(rank)) * nics +
           static_cast<size_t>(topo.local_index(rank)) * nics /
               static_cast<size_t>(cluster.ranks_per_node);
  };
  PlanCost cost;
  for (int s = 0; s < topo.world_size; ++s) {
    for (int d = 0; d < topo.world_size; ++d) {
      const int64_t bytes = traffic.at(s, d) * row_bytes;
      if (bytes == 0) continue;
      if (s == d) {
        cost.local_bytes += bytes;
      } else if (topo.same_node(s, d)) {
        cost.nvlink_bytes += bytes;
        nvlink_out[static_cast<size_t>(s)] += bytes;
        nvlink_in[static_cast<size_t>(d)] += bytes;
      } else {
        cost.network_bytes += bytes;
        nic_out[nic_of(s)] += bytes;
        nic_in[nic_of(d)] += bytes;
      }
    }
  }
  const double nvlink_bps = cluster.nvlink_gbytes_per_s * 1e9;
  const double nic_bps = cluster.nic_gbits_per_s * 1e9 / 8;
  auto busiest = [](const std::vector<int64_t>& out, const std::vector<int64_t>& in,
                    double bytes_per_s, auto&& name) {
    LinkLoad load;
    for (size_t i = 0; i < out.size(); ++i) {
      for (int dir = 0; dir < 2; ++dir) {
        const int64_t bytes = dir == 0 ? out[i] : in[i];
        if (bytes > load.bytes) {
          load.bytes = bytes;
          load.link = name(dir == 0 ? "out" : "in", i);
        }
      }
    }
    load.seconds = static_cast<double>(load.bytes) / bytes_per_s;
    return load;
  };
  cost.busiest_nvlink = busiest(nvlink_out, nvlink_in, nvlink_bps, [](const char* dir, size_t i) {
    return std::string("nvlink ") + dir + " rank " + std::to_string(i);
  });
  cost.busiest_nic = busiest(nic_out, nic_in, nic_bps, [nics](const char* dir, size_t i) {
    return std::string("nic ") + dir + " node " + std::to_string(i / nics) + " nic " +
           std::to_string(i % nics);
  });
  cost.busiest = cost.busiest_nic.seconds > cost.busiest_nvlink.seconds ? cost.busiest_nic
                                                                        : cost.busiest_nvlink;
  cost.latency_seconds = (cost.network_bytes > 0 ? cluster.network_latency_us * 1e-6 : 0) +
                         (cost.nvlink_bytes > 0 ? cluster.nvlink_latency_us * 1e-6 : 0);
  cost.seconds = cost.busiest.seconds + cost.latency_seconds;
  return cost;
}

}  // namespace fusco::plan
