#pragma once

// Command-line flags of fusco_bench (nccl-tests style).

#include <cstdint>
#include <string>

#include "fusco/dtype.hpp"
#include "fusco/options.hpp"
#include "fusco/status.hpp"
#include "testing/routing.hpp"

namespace fusco::bench {

struct BenchArgs {
  int ranks = 8;
  bool ranks_given = false;          // -r on the command line
  std::string transport = "inproc";  // -t: inproc (threads), shm or ucx (processes), gpu
  int ranks_per_node = 4;
  bool ranks_per_node_given = false;  // -p on the command line
  int64_t min_tokens = 256;           // -b
  int64_t max_tokens = 2048;          // -e
  int64_t factor = 2;                 // -f
  int64_t hidden = 7168;
  int topk = 8;
  int64_t experts = 256;
  DType dtype = DType::kBFloat16;
  testing::RoutingSpec routing;
  Dedup dedup = Dedup::kNode;
  RelayPolicy relay = RelayPolicy::kRailAligned;        // --relay
  ProcessRelays process_relays = ProcessRelays::kAuto;  // --process-relays
  int64_t redundant = 0;  // --redundant N: extra expert copies, placed EPLB style by load
  int64_t chunk_bytes = int64_t{1} << 20;
  int iters = 5;          // -n
  int warmup = 1;         // -w
  bool check = true;      // -c
  bool baseline = true;   // --no-baseline turns it off
  bool own_recv = false;  // --own-recv: fusco receives into the benchmark's buffers
  int repeat_check = 0;   // --repeat-check N: rerun dispatch + combine N times, compare hashes
  std::string json_path;  // -J
  uint64_t seed = 1;
  bool help = false;
};

/// Parses argv; errors name the flag and its value.
Result<BenchArgs> parse_bench_args(int argc, char** argv);

/// Checks what depends on the rank count: under -t shm the ranks are the MPI processes
/// (`world`; -r, when given, must match), under -t inproc `world` is -r.
Status settle_world(BenchArgs& args, int world);

/// The --help text.
std::string bench_usage();

}  // namespace fusco::bench
