#pragma once

// Command-line flags of fusco_plan.

#include <cstdint>
#include <string>
#include <vector>

#include "fusco/dtype.hpp"
#include "fusco/status.hpp"
#include "model/cost_model.hpp"
#include "testing/routing.hpp"

namespace fusco::bench {

struct PlanArgs {
  plan::ClusterSpec cluster;          // --preset / --topology
  std::vector<int64_t> tokens{4096};  // -T: tokens per rank, one or more sizes
  int topk = 8;                       // -k
  int64_t experts = 256;              // -E
  int64_t hidden = 7168;              // -H
  DType dtype = DType::kBFloat16;     // -d
  testing::RoutingSpec routing;       // -R
  std::string routing_file;           // --routing-file: .npy [W, T, k] or [W*T, k]
  int64_t redundant = 0;              // --redundant: extra expert copies for fusco's plan
  std::string csv_prefix;             // --csv: per-pair traffic matrices
  uint64_t seed = 1;                  // -s
  bool help = false;
};

/// Parses argv; errors name the flag and its value. `--topology @FILE` reads the spec from
/// FILE.
Result<PlanArgs> parse_plan_args(int argc, char** argv);

/// The --help text.
std::string plan_usage();

}  // namespace fusco::bench
