#pragma once

// fusco_bench -t nccl: ranks as MPI processes, one GPU each (this process's index among the
// processes of its machine), through fusco::gpu::NcclCommunicator. Per size, side by side:
// the fused engine (the device-API path: LSA stores inside a node, and with -p below the
// process count the staged path between nodes) and the unfused pipeline (NcclPath::kSendRecv
// on one node: rows gathered by destination, grouped ncclSend/ncclRecv, placed — what a
// permute, an all-to-all and a re-sort do), each step timed between MPI barriers to the end
// of its GPU work (slowest rank), medians over the iterations. #wrong: elements where the
// fused and the unfused received rows (and, without node partials, combined outputs) differ.

#include <cstdint>
#include <string>

#include "bench_args.hpp"
#include "bench_ranks.hpp"
#include "fusco/status.hpp"

namespace fusco::bench {

struct NcclSize {
  double recv_rows = 0;  // mean per rank
  double plan_us = 0;    // the fused plan on this rank (host planning + upload)
  double dispatch_us = 0, combine_us = 0;
  double base_dispatch_us = 0, base_combine_us = 0;
  int64_t wrong = 0;   // over every rank
  std::string device;  // rank 0's GPU
  std::string path;    // the fused communicator's path between nodes
};

/// One size (every process calls it; `ranks` is the MPI driver). kUnsupported where a process
/// has no GPU of its own.
Result<NcclSize> run_nccl_size(const BenchArgs& args, int64_t tokens, Ranks& ranks);

/// Drops the communicators (before MPI is finalised).
void finish_nccl();

}  // namespace fusco::bench
