// fusco_plan: plans every rank of a (possibly large) MoE group on this machine with fusco's
// own planner and models the dispatch on a GPU cluster, side by side with the plans other
// systems make. See plan_usage() and docs/benchmarks.md.

#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "model/cost_model.hpp"
#include "model/group_plan.hpp"
#include "model/redundant_placement.hpp"
#include "plan_args.hpp"
#include "testing/npy.hpp"
#include "testing/routing.hpp"

namespace fusco::bench {
namespace {

struct Strategy {
  const char* name;
  const char* label;
  Dedup dedup;
  RelayPolicy relay;
  bool replicas;
};

constexpr Strategy kStrategies[] = {
    {"flat", "flat all-to-all (NCCL)", Dedup::kNone, RelayPolicy::kRailAligned, false},
    {"rank", "rank dedup", Dedup::kRank, RelayPolicy::kRailAligned, false},
    {"deepep", "node dedup, rail relay (DeepEP)", Dedup::kNode, RelayPolicy::kRailAligned, false},
    {"fusco", "fusco (balanced relay, replicas)", Dedup::kNode, RelayPolicy::kBalanced, true},
};

// Where each rank's routing comes from: a .npy file or a generated scenario.
struct RoutingSource {
  const PlanArgs& args;
  Topology topology;
  testing::NpyArray file;  // empty unless --routing-file
  int64_t tokens = 0;      // per rank, for the current size

  Result<std::vector<int64_t>> operator()(int rank) const {
    if (!args.routing_file.empty()) {
      const auto begin = file.values.begin() + rank * tokens * args.topk;
      return std::vector<int64_t>(begin, begin + tokens * args.topk);
    }
    const std::vector<int32_t> ids = testing::generate_routing(
        args.routing, tokens, args.topk, args.experts, rank, topology, args.seed);
    return std::vector<int64_t>(ids.begin(), ids.end());
  }
};

Status load_routing_file(PlanArgs& args, RoutingSource& source) {
  Result<testing::NpyArray> array = testing::read_npy(args.routing_file);
  FUSCO_RETURN_IF_ERROR(array.status());
  const std::vector<int64_t>& shape = array.value().shape;
  const int64_t world = source.topology.world_size;
  int64_t tokens = 0;
  if (shape.size() == 3 && shape[0] == world) {
    tokens = shape[1];
  } else if (shape.size() == 2 && shape[0] % world == 0) {
    tokens = shape[0] / world;
  } else {
    std::string text;
    for (int64_t dim : shape) text += (text.empty() ? "" : ", ") + std::to_string(dim);
    return Status(StatusCode::kInvalidArgument, args.routing_file + ": shape (" + text +
                                                    ") is neither [W=" + std::to_string(world) +
                                                    ", T, k] nor [W*T, k]");
  }
  const int64_t topk = shape.back();
  if (topk < 1 || topk > 64) {
    return Status(StatusCode::kInvalidArgument,
                  args.routing_file + ": k = " + std::to_string(topk) + " is outside [1, 64]");
  }
  args.topk = static_cast<int>(topk);
  args.tokens = {tokens};
  source.file = std::move(array).value();
  return Status();
}

// Rows per expert over all ranks: the loads redundant copies are placed by.
Result<std::vector<int64_t>> expert_loads(const PlanArgs& args, const RoutingSource& source) {
  std::vector<int64_t> loads(static_cast<size_t>(args.experts), 0);
  for (int r = 0; r < source.topology.world_size; ++r) {
    Result<std::vector<int64_t>> ids = source(r);
    FUSCO_RETURN_IF_ERROR(ids.status());
    for (int64_t e : ids.value()) {
      if (e >= 0 && e < args.experts) ++loads[static_cast<size_t>(e)];
    }
  }
  return loads;
}

Status write_csv(const std::string& path, const plan::GroupTraffic& traffic, int64_t row_bytes) {
  std::ofstream out(path);
  if (!out) {
    return Status(StatusCode::kInvalidArgument, path + ": cannot write");
  }
  for (int s = 0; s < traffic.world_size; ++s) {
    for (int d = 0; d < traffic.world_size; ++d) {
      out << (d > 0 ? "," : "") << traffic.at(s, d) * row_bytes;
    }
    out << '\n';
  }
  return out ? Status() : Status(StatusCode::kInvalidArgument, path + ": write failed");
}

int run(PlanArgs& args) {
  const Topology topology = args.cluster.topology();
  RoutingSource source{args, topology, {}, 0};
  if (!args.routing_file.empty()) {
    const Status loaded = load_routing_file(args, source);
    if (!loaded.ok()) {
      std::fprintf(stderr, "fusco_plan: %s\n", loaded.to_string().c_str());
      return 2;
    }
  }
  if (args.experts % topology.world_size != 0) {
    std::fprintf(stderr, "fusco_plan: -E %lld is not a multiple of the %d ranks\n",
                 static_cast<long long>(args.experts), topology.world_size);
    return 2;
  }
  const int64_t row_bytes = args.hidden * static_cast<int64_t>(dtype_size(args.dtype));
  std::printf(
      "# fusco_plan: %d ranks (%d nodes x %d), NVLink %.0f GB/s per GPU, %d NICs x %.0f "
      "Gb/s per node\n",
      topology.world_size, args.cluster.nodes, args.cluster.ranks_per_node,
      args.cluster.nvlink_gbytes_per_s, args.cluster.nics_per_node, args.cluster.nic_gbits_per_s);
  std::printf(
      "# H %lld %s (%lld bytes per row), k %d, E %lld, routing %s, redundant copies "
      "%lld\n",
      static_cast<long long>(args.hidden), dtype_name(args.dtype),
      static_cast<long long>(row_bytes), args.topk, static_cast<long long>(args.experts),
      args.routing_file.empty() ? args.routing.to_string().c_str() : args.routing_file.c_str(),
      static_cast<long long>(args.redundant));
  for (int64_t tokens : args.tokens) {
    source.tokens = tokens;
    ExpertMap balanced_map;
    if (args.redundant > 0) {
      Result<std::vector<int64_t>> loads = expert_loads(args, source);
      Result<std::vector<std::vector<int32_t>>> placed =
          loads.ok()
              ? plan::place_redundant_experts(loads.value(), topology.world_size, args.redundant)
              : Result<std::vector<std::vector<int32_t>>>(loads.status());
      if (!placed.ok()) {
        std::fprintf(stderr, "fusco_plan: %s\n", placed.status().to_string().c_str());
        return 2;
      }
      balanced_map = ExpertMap::with_replicas(std::move(placed).value());
    }
    std::printf("\n# %lld tokens per rank\n", static_cast<long long>(tokens));
    std::printf("%-34s %10s %10s %9s %-28s %9s %8s %8s %9s\n", "plan", "network GB", "NVLink GB",
                "dedup", "busiest link", "its GB", "est. ms", "vs flat", "max recv");
    double flat_seconds = 0;
    for (const Strategy& strategy : kStrategies) {
      PlanOptions options;
      options.dedup = strategy.dedup;
      options.relay = strategy.relay;
      const auto start = std::chrono::steady_clock::now();
      Result<plan::GroupTraffic> traffic =
          plan::plan_group(topology, args.topk, args.experts,
                           strategy.replicas ? balanced_map : ExpertMap(), options, source);
      const double planning_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!traffic.ok()) {
        std::fprintf(stderr, "fusco_plan: %s\n", traffic.status().to_string().c_str());
        return 2;
      }
      Result<plan::PlanCost> cost = plan::estimate_cost(traffic.value(), args.cluster, row_bytes);
      if (!cost.ok()) {
        std::fprintf(stderr, "fusco_plan: %s\n", cost.status().to_string().c_str());
        return 2;
      }
      const plan::PlanCost& c = cost.value();
      if (flat_seconds == 0) flat_seconds = c.seconds;
      int64_t max_received = 0;
      for (int64_t rows : traffic.value().received_rows)
        max_received = std::max(max_received, rows);
      std::printf("%-34s %10.4g %10.4g %9.2f %-28s %9.4g %8.4g %7.2fx %9lld  (planned in %.2f s)\n",
                  strategy.label, static_cast<double>(c.network_bytes) / 1e9,
                  static_cast<double>(c.nvlink_bytes) / 1e9, traffic.value().dedup_ratio(),
                  c.busiest.link.c_str(), static_cast<double>(c.busiest.bytes) / 1e9,
                  c.seconds * 1e3, flat_seconds / c.seconds, static_cast<long long>(max_received),
                  planning_s);
      if (!args.csv_prefix.empty()) {
        const std::string path =
            args.csv_prefix + "_" + strategy.name + "_T" + std::to_string(tokens) + ".csv";
        const Status written = write_csv(path, traffic.value(), row_bytes);
        if (!written.ok()) {
          std::fprintf(stderr, "fusco_plan: %s\n", written.to_string().c_str());
          return 2;
        }
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace fusco::bench

int main(int argc, char** argv) {
  try {
    fusco::Result<fusco::bench::PlanArgs> args = fusco::bench::parse_plan_args(argc, argv);
    if (!args.ok()) {
      std::fprintf(stderr, "fusco_plan: %s\n", args.status().message().c_str());
      return 2;
    }
    if (args.value().help) {
      std::printf("%s", fusco::bench::plan_usage().c_str());
      return 0;
    }
    return fusco::bench::run(args.value());
  } catch (const std::exception& error) {  // allocation failure of a too-large group
    std::fprintf(stderr, "fusco_plan: %s\n", error.what());
    return 2;
  }
}
