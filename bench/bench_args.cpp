#include "bench_args.hpp"

#include <cstdlib>
#include <string_view>

#include "flags.hpp"

namespace fusco::bench {

std::string bench_usage() {
  return R"(fusco_bench: fused MoE dispatch/combine against the unfused baseline.

  -t, --transport T        inproc: ranks are threads of this process;        [inproc]
                           shm: ranks are processes of one machine, started by
                           mpirun -np N (fusco's shared-memory transport; the
                           baseline's all-to-all is MPI_Alltoallv);
                           ucx: processes under mpirun connected by UCX
                           (UCX_TLS chooses shm, tcp, ...);
                           gpu: -r logical ranks on one GPU (fusco's GPU
                           engine against the unfused GPU pipeline; builds
                           with CUDA)
                           nccl: processes under mpirun, one GPU each
                           (NcclCommunicator fused against its ncclSend/
                           ncclRecv pipeline; -p below -np: nodes)
  -r, --ranks N            ranks (threads; with -t shm: the process count)    [8]
  -p, --ranks-per-node N   ranks per node (-t gpu, nccl: one node unless
                           given; below -r the staged path runs)      [4]
  -b, --min-tokens N       tokens per rank, first size             [256]
  -e, --max-tokens N       tokens per rank, last size              [2048]
  -f, --factor N           size multiplier between sizes           [2]
  -H, --hidden N           hidden size                             [7168]
  -k, --topk N             experts per token                       [8]
  -E, --experts N          experts (multiple of ranks)             [256]
  -d, --dtype T            fp32 fp16 bf16 fp8_e4m3 fp8_e5m2 int8 int32 int64  [bf16]
  -R, --routing S          uniform | zipf:<s> | node-confined | hot:<f>        [uniform]
  -D, --dedup M            none | rank | node                      [node]
      --relay P            rail | balanced (node dedup's relay)    [rail]
      --process-relays M   auto | on | off: node dedup's relays between
                           processes (auto: when nodes are machines)   [auto]
      --redundant N        N extra expert copies placed EPLB style on the least
                           loaded ranks (by this routing); the planner picks a
                           copy per row; the baseline keeps one copy each   [0]
  -C, --chunk-bytes N      staged-path chunk size in bytes         [1048576]
  -n, --iters N            timed iterations per size               [5]
  -w, --warmup N           untimed iterations per size             [1]
  -c, --check 0|1          check results against the reference     [1]
      --no-baseline        do not run the unfused baseline
      --own-recv           fusco dispatches into buffers of the benchmark's own
                           instead of Communicator::recv_buffer (processes then
                           land rows in shared memory and copy them out)
      --repeat-check N     pressure mode: after timing, rerun dispatch + combine N
                           times per size and hash every output; exit 1 if any
                           rerun differs from the first result                [0]
  -J, --json FILE          also write the results as JSON
  -s, --seed N             routing and data seed                   [1]
  -h, --help               this text
Exit status: 0 when every result is right, 1 when #wrong > 0, 2 on bad flags or errors.
)";
}

Result<BenchArgs> parse_bench_args(int argc, char** argv) {
  BenchArgs args;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      args.help = true;
      continue;
    }
    if (flag == "--no-baseline") {
      args.baseline = false;
      continue;
    }
    if (flag == "--own-recv") {
      args.own_recv = true;
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
    if (flag == "-r" || flag == "--ranks") {
      status = set_int(&args.ranks, 1, 1024);
      args.ranks_given = true;
    } else if (flag == "-t" || flag == "--transport") {
      if (value != "inproc" && value != "shm" && value != "ucx" && value != "gpu" &&
          value != "nccl") {
        return bad_flag(flag, value, "not one of inproc, shm, ucx, gpu, nccl");
      }
      args.transport = value;
    } else if (flag == "-p" || flag == "--ranks-per-node") {
      status = set_int(&args.ranks_per_node, 1, 1024);
      args.ranks_per_node_given = true;
    } else if (flag == "-b" || flag == "--min-tokens") {
      status = set_int(&args.min_tokens, 0, int64_t{1} << 24);
    } else if (flag == "-e" || flag == "--max-tokens") {
      status = set_int(&args.max_tokens, 0, int64_t{1} << 24);
    } else if (flag == "-f" || flag == "--factor") {
      status = set_int(&args.factor, 2, 1024);
    } else if (flag == "-H" || flag == "--hidden") {
      status = set_int(&args.hidden, 1, int64_t{1} << 20);
    } else if (flag == "-k" || flag == "--topk") {
      status = set_int(&args.topk, 1, 64);
    } else if (flag == "-E" || flag == "--experts") {
      status = set_int(&args.experts, 1, int64_t{1} << 20);
    } else if (flag == "-C" || flag == "--chunk-bytes") {
      status = set_int(&args.chunk_bytes, 1, int64_t{1} << 30);
    } else if (flag == "-n" || flag == "--iters") {
      status = set_int(&args.iters, 1, 100000);
    } else if (flag == "-w" || flag == "--warmup") {
      status = set_int(&args.warmup, 0, 100000);
    } else if (flag == "-c" || flag == "--check") {
      int64_t check = 0;
      status = set_int(&check, 0, 1);
      args.check = check == 1;
    } else if (flag == "--repeat-check") {
      status = set_int(&args.repeat_check, 0, 1000000);
    } else if (flag == "-s" || flag == "--seed") {
      status = set_int(&args.seed, 0, INT64_MAX);
    } else if (flag == "-J" || flag == "--json") {
      args.json_path = value;
    } else if (flag == "-d" || flag == "--dtype") {
      Result<DType> dtype = dtype_from_name(value);
      status = dtype.status();
      if (dtype.ok()) args.dtype = dtype.value();
    } else if (flag == "-R" || flag == "--routing") {
      Result<testing::RoutingSpec> routing = testing::parse_routing(value);
      status = routing.status();
      if (routing.ok()) args.routing = routing.value();
    } else if (flag == "--relay") {
      Result<RelayPolicy> relay = relay_policy_from_name(value);
      if (!relay.ok()) return bad_flag(flag, value, relay.status().message());
      args.relay = relay.value();
    } else if (flag == "--process-relays") {
      Result<ProcessRelays> mode = process_relays_from_name(value);
      if (!mode.ok()) return bad_flag(flag, value, mode.status().message());
      args.process_relays = mode.value();
    } else if (flag == "--redundant") {
      status = set_int(&args.redundant, 0, int64_t{1} << 20);
    } else if (flag == "-D" || flag == "--dedup") {
      Result<Dedup> dedup = dedup_from_name(value);
      status = dedup.status();
      if (dedup.ok()) args.dedup = dedup.value();
    } else {
      return bad_flag(flag, value, "unknown flag");
    }
    if (!status.ok()) {
      return Status(StatusCode::kInvalidArgument, flag + ": " + status.message());
    }
  }
  if (args.min_tokens > args.max_tokens) {
    return bad_flag("-b", std::to_string(args.min_tokens),
                    "larger than -e " + std::to_string(args.max_tokens));
  }
  if (args.topk > args.experts) {
    return bad_flag("-k", std::to_string(args.topk), "more than the expert count");
  }
  if (args.transport == "inproc" || args.transport == "gpu") {
    FUSCO_RETURN_IF_ERROR(settle_world(args, args.ranks));
  }
  if ((args.transport == "gpu" || args.transport == "nccl") && args.redundant > 0) {
    return bad_flag(
        "--redundant", std::to_string(args.redundant),
        "not offered with -t " + args.transport + " (the GPU runs use the contiguous expert map)");
  }
  return args;
}

Status settle_world(BenchArgs& args, int world) {
  if (args.ranks_given && args.ranks != world) {
    return bad_flag("-r", std::to_string(args.ranks),
                    "differs from the " + std::to_string(world) + " processes mpirun started");
  }
  args.ranks = world;
  if (args.experts % args.ranks != 0) {
    return bad_flag("-E", std::to_string(args.experts),
                    "not a multiple of the rank count " + std::to_string(args.ranks));
  }
  return Status();
}

}  // namespace fusco::bench
