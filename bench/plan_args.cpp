#include "plan_args.hpp"

#include <cstdint>
#include <string_view>

#include "flags.hpp"
#include "testing/files.hpp"

namespace fusco::bench {

std::string plan_usage() {
  return R"(fusco_plan: plans a whole MoE group on this machine and models the dispatch on a
GPU cluster: flat all-to-all (NCCL), rank dedup, node dedup through the rail-aligned rank
(DeepEP), and fusco (node dedup, balanced relays, replica balancing), side by side.

  --preset NAME            fusco: the FUSCO paper's testbed (8 nodes x 8 GPUs,
                           480 GB/s NVLink, 10 x 400 Gb/s NICs per node, H 7168,
                           k 8, E 256, 4096..32768 tokens per GPU)
  --topology SPEC|@FILE    cluster as key=value pairs (after --preset): nodes,
                           ranks_per_node, nvlink_gbytes_per_s, nics_per_node,
                           nic_gbits_per_s, nvlink_latency_us, network_latency_us
                                                   [nodes=1,ranks_per_node=8,...]
  -T, --tokens N[,N...]    tokens per rank                          [4096]
  -k, --topk N             experts per token                        [8]
  -E, --experts N          experts (multiple of ranks)              [256]
  -H, --hidden N           hidden size                              [7168]
  -d, --dtype T            fp32 fp16 bf16 fp8_e4m3 ... (row bytes)  [bf16]
  -R, --routing S          uniform | zipf:<s> | node-confined | hot:<f>  [uniform]
      --routing-file F     routing from a .npy of int ids: [W, T, k] or [W*T, k]
                           (-T is then taken from the file)
      --redundant N        extra expert copies for fusco's plan, placed EPLB style
                           on the least loaded ranks                 [0]
      --csv PREFIX         write each plan's per-pair bytes as PREFIX_<plan>_T<T>.csv
                           (bench/plot_traffic.py draws them)
  -s, --seed N             routing seed                             [1]
  -h, --help               this text
Exit status: 0, or 2 on bad flags or errors.
)";
}

namespace {

// A --topology file is a line of key=value pairs: 1 MiB is far more than one needs.
constexpr int64_t kMaxTopologyFileBytes = int64_t{1} << 20;

Result<std::string> read_text(const std::string& flag, const std::string& path) {
  Result<std::string> text = testing::read_file_bounded(path, kMaxTopologyFileBytes);
  if (!text.ok()) {
    return bad_flag(flag, "@" + path, text.status().message());
  }
  return text;
}

Result<std::vector<int64_t>> token_list(const std::string& flag, const std::string& value) {
  std::vector<int64_t> tokens;
  size_t at = 0;
  while (at <= value.size()) {
    const size_t comma = std::min(value.find(',', at), value.size());
    Result<int64_t> parsed = flag_integer(flag, value.substr(at, comma - at), 0, int64_t{1} << 24);
    FUSCO_RETURN_IF_ERROR(parsed.status());
    tokens.push_back(parsed.value());
    at = comma + 1;
    if (tokens.size() > 64) return bad_flag(flag, value, "more than 64 sizes");
  }
  return tokens;
}

}  // namespace

Result<PlanArgs> parse_plan_args(int argc, char** argv) {
  PlanArgs args;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      args.help = true;
      continue;
    }
    if (i + 1 >= argc) {
      return bad_flag(flag, "", "missing value");
    }
    const std::string value = argv[++i];
    auto set_int = [&](auto* field, int64_t min, int64_t max) {
      return set_flag_integer(field, flag, value, min, max);
    };
    Status status;
    if (flag == "--preset") {
      if (value != "fusco") return bad_flag(flag, value, "not a known preset (fusco)");
      args.cluster = plan::ClusterSpec::fusco_testbed();
      args.hidden = 7168;
      args.topk = 8;
      args.experts = 256;
      args.tokens = {4096, 8192, 16384, 32768};
    } else if (flag == "--topology") {
      std::string text = value;
      if (value.starts_with("@")) {
        Result<std::string> read = read_text(flag, value.substr(1));
        FUSCO_RETURN_IF_ERROR(read.status());
        text = std::move(read).value();
      }
      Result<plan::ClusterSpec> spec = plan::parse_cluster_spec(text, args.cluster);
      if (!spec.ok()) return bad_flag(flag, value, spec.status().message());
      args.cluster = spec.value();
    } else if (flag == "-T" || flag == "--tokens") {
      Result<std::vector<int64_t>> tokens = token_list(flag, value);
      FUSCO_RETURN_IF_ERROR(tokens.status());
      args.tokens = std::move(tokens).value();
    } else if (flag == "-k" || flag == "--topk") {
      status = set_int(&args.topk, 1, 64);
    } else if (flag == "-E" || flag == "--experts") {
      status = set_int(&args.experts, 1, int64_t{1} << 20);
    } else if (flag == "-H" || flag == "--hidden") {
      status = set_int(&args.hidden, 1, int64_t{1} << 20);
    } else if (flag == "-d" || flag == "--dtype") {
      Result<DType> dtype = dtype_from_name(value);
      if (!dtype.ok()) return bad_flag(flag, value, dtype.status().message());
      args.dtype = dtype.value();
    } else if (flag == "-R" || flag == "--routing") {
      Result<testing::RoutingSpec> routing = testing::parse_routing(value);
      if (!routing.ok()) return bad_flag(flag, value, routing.status().message());
      args.routing = routing.value();
    } else if (flag == "--routing-file") {
      args.routing_file = value;
    } else if (flag == "--redundant") {
      status = set_int(&args.redundant, 0, int64_t{1} << 20);
    } else if (flag == "--csv") {
      args.csv_prefix = value;
    } else if (flag == "-s" || flag == "--seed") {
      status = set_int(&args.seed, 0, int64_t{1} << 62);
    } else {
      return bad_flag(flag, value, "unknown flag");
    }
    FUSCO_RETURN_IF_ERROR(status);
  }
  return args;
}

}  // namespace fusco::bench
