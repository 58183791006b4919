// fusco_bench: the standalone benchmark. For each size it runs fusco's fused dispatch and
// combine and the unfused baseline (permute -> all-to-all -> re-sort) on the same routing, in
// the same process, checks the results against the reference, and reports time, bandwidth,
// wire bytes, dedup ratio, speed-up and how close dispatch comes to this machine's memcpy
// bound. Columns are defined in docs/benchmarks.md.

#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <vector>

#include "baseline/unfused.hpp"
#include "bench_args.hpp"
#include "bench_ranks.hpp"
#include "count_wrong.hpp"
#include "fusco/fusco.hpp"
#ifdef FUSCO_BENCH_WITH_GPU
#include "gpu_sizes.hpp"
#endif
#ifdef FUSCO_BENCH_WITH_MPI
#include "mpi_ranks.hpp"
#endif
#ifdef FUSCO_BENCH_WITH_NCCL
#include "nccl_sizes.hpp"
#endif
#include "model/redundant_placement.hpp"
#include "reference/reference.hpp"
#include "testing/data.hpp"
#include "testing/files.hpp"
#include "testing/routing.hpp"

namespace fusco::bench {
namespace {

using Buffer = std::vector<std::byte>;

// The planning line of -t gpu (see gpu_planning.hpp), in the JSON.
struct GpuPlanningRow {
  double host_plan_us = 0, device_plan_us = 0;
  int64_t capacity = 0, dropped = 0;
  double dispatch_us = 0, combine_us = 0;
};

struct SizeResult {
  int64_t tokens = 0;
  double recv_rows = 0;  // mean per rank
  double plan_us = 0, dispatch_us = 0, combine_us = 0;
  double base_dispatch_us = 0, base_combine_us = 0;
  double dispatch_algbw = 0, dispatch_busbw = 0, combine_algbw = 0, combine_busbw = 0;
  double wire_mb = 0;  // inter-node bytes per rank (mean), after dedup
  double dedup_ratio = 1;
  double speedup = 0;      // baseline (dispatch + combine) / fusco (dispatch + combine)
  double memcpy_gbps = 0;  // all ranks copying their received bytes concurrently
  double bound_ratio = 0;  // dispatch time / memcpy-bound time
  int64_t wrong = 0;
  int64_t repeat_mismatches = 0;  // --repeat-check: outputs whose hash changed on a rerun
  bool direct_peers = false;      // rows to node peers stored directly (PlanStats)
  bool gpu_planning = false;      // -t gpu on one node: the planning line's numbers
  GpuPlanningRow planning;
};

// Per-rank buffers for the memcpy bound: each rank copies as many bytes as it receives in
// dispatch, in pieces of kCopyPiece, concurrently with the other ranks.
constexpr size_t kCopyPiece = size_t{64} << 20;

struct CopyBuffers {
  std::vector<Buffer> src, dst;  // per rank of this process
  explicit CopyBuffers(int ranks)
      : src(static_cast<size_t>(ranks)), dst(static_cast<size_t>(ranks)) {
    for (int r = 0; r < ranks; ++r) {
      src[static_cast<size_t>(r)].assign(kCopyPiece, std::byte{1});
      dst[static_cast<size_t>(r)].assign(kCopyPiece, std::byte{0});
    }
  }
  void copy(size_t index, size_t bytes) {
    for (size_t done = 0; done < bytes; done += kCopyPiece) {
      std::memcpy(dst[index].data(), src[index].data(), std::min(kCopyPiece, bytes - done));
    }
  }
};

uint64_t hash_bytes(const Buffer& bytes) {
  uint64_t hash = 1469598103934665603ULL;  // FNV-1a
  for (const std::byte b : bytes) {
    hash = (hash ^ static_cast<uint64_t>(b)) * 1099511628211ULL;
  }
  return hash;
}

// The inputs of every rank (routing always; data only where needed), made the same way in
// every process from the seed.
struct Inputs {
  std::vector<std::vector<int32_t>> ids;
  std::vector<std::vector<int64_t>> ids64;  // for the reference
  std::vector<Buffer> x;
  std::vector<std::vector<float>> weights;
  std::vector<std::vector<double>> weights64;  // with fp64 rows (combine's pairing)
};

Inputs make_inputs(const BenchArgs& args, int64_t tokens, const Topology& topology,
                   const Ranks& ranks) {
  const auto ws = static_cast<size_t>(ranks.world());
  Inputs in;
  in.ids.resize(ws);
  in.ids64.resize(ws);
  in.x.resize(ws);
  in.weights.resize(ws);
  in.weights64.resize(ws);
  for (int r = 0; r < ranks.world(); ++r) {
    const auto rr = static_cast<size_t>(r);
    in.ids[rr] = testing::generate_routing(args.routing, tokens, args.topk, args.experts, r,
                                           topology, args.seed + static_cast<uint64_t>(tokens));
    in.ids64[rr].assign(in.ids[rr].begin(), in.ids[rr].end());
    const bool mine = r >= ranks.first() && r < ranks.first() + ranks.count();
    if (!mine && !args.check) {
      continue;  // other processes' data: only the reference needs it
    }
    in.x[rr] = testing::random_elements(args.dtype, tokens * args.hidden, args.seed * 1000 + rr);
    in.weights[rr].resize(static_cast<size_t>(tokens * args.topk));
    for (size_t i = 0; i < in.weights[rr].size(); ++i) {  // router-like
      in.weights[rr][i] = 1.0f / static_cast<float>(args.topk) + 0.01f * static_cast<float>(i % 7);
    }
    if (args.dtype == DType::kFloat64) {
      in.weights64[rr].assign(in.weights[rr].begin(), in.weights[rr].end());
    }
  }
  return in;
}

// The expert map fusco plans with: contiguous, or with --redundant N extra copies placed by
// the routing's expert loads (every rank's routing is generated on every process).
Result<ExpertMap> expert_map_for(const BenchArgs& args, const Inputs& in, int world) {
  if (args.redundant == 0) {
    return ExpertMap();
  }
  std::vector<int64_t> loads(static_cast<size_t>(args.experts), 0);
  for (const std::vector<int32_t>& ids : in.ids) {
    for (int32_t e : ids) {
      if (e >= 0) ++loads[static_cast<size_t>(e)];
    }
  }
  Result<std::vector<std::vector<int32_t>>> placed =
      plan::place_redundant_experts(loads, world, args.redundant);
  FUSCO_RETURN_IF_ERROR(placed.status());
  return ExpertMap::with_replicas(std::move(placed).value());
}

Result<SizeResult> run_size(const BenchArgs& args, int64_t tokens, Ranks& ranks,
                            CopyBuffers& copies) {
  const int world = ranks.world();
  const int first = ranks.first();
  const Topology topology = Topology::nodes_of(world, args.ranks_per_node);
  const size_t elem = dtype_size(args.dtype);
  const auto row_bytes = static_cast<size_t>(args.hidden) * elem;
  const bool combines = dtype_supports_combine(args.dtype);
  const bool f64 = args.dtype == DType::kFloat64;
  Inputs in = make_inputs(args, tokens, topology, ranks);
  // Per rank of this process: index = rank - first.
  auto at = [first](int r) { return static_cast<size_t>(r - first); };
  const auto mine = static_cast<size_t>(ranks.count());
  std::vector<Buffer> recv(mine), out(mine), base_recv(mine), base_out(mine);
  std::vector<TensorView> recv_at(mine);  // where fusco's dispatch writes
  // What fusco's dispatch wrote on rank index i, for the checks.
  auto received = [&](size_t i) {
    const auto* rows = static_cast<const std::byte*>(recv_at[i].data);
    return Buffer(rows, rows + static_cast<size_t>(recv_at[i].shape[0]) * row_bytes);
  };

  auto idx_view = [&](int r) {
    return TensorView::host(in.ids[static_cast<size_t>(r)].data(), DType::kInt32,
                            {tokens, args.topk});
  };
  auto x_view = [&](int r) {
    return TensorView::host(in.x[static_cast<size_t>(r)].data(), args.dtype, {tokens, args.hidden});
  };
  auto rows_view = [&](std::vector<Buffer>& buffers, int r, int64_t rows) {
    return TensorView::host(buffers[at(r)].data(), args.dtype, {rows, args.hidden});
  };
  auto w_view = [&](int r) {
    const auto rr = static_cast<size_t>(r);
    return f64 ? TensorView::host(in.weights64[rr].data(), DType::kFloat64, {tokens, args.topk})
               : TensorView::host(in.weights[rr].data(), DType::kFloat32, {tokens, args.topk});
  };

  SizeResult result;
  result.tokens = tokens;
  PlanOptions options;
  options.dedup = args.dedup;
  options.chunk_bytes = args.chunk_bytes;
  options.relay = args.relay;
  options.process_relays = args.process_relays;
  Result<ExpertMap> map = expert_map_for(args, in, world);
  FUSCO_RETURN_IF_ERROR(map.status());
  Result<std::vector<Communicator>> made = ranks.group(topology);
  FUSCO_RETURN_IF_ERROR(made.status());
  std::vector<Communicator>& comms = made.value();
  std::vector<Plan> plans(mine);
  Result<std::vector<double>> plan_s = ranks.time(
      0, 1, {[&](int r) {
        Result<Plan> plan = comms[at(r)].plan(idx_view(r), args.experts, map.value(), options);
        FUSCO_RETURN_IF_ERROR(plan.status());
        plans[at(r)] = plan.value();
        return Status();
      }});
  FUSCO_RETURN_IF_ERROR(plan_s.status());
  result.plan_us = plan_s.value()[0] * 1e6;
  double total_rows = 0, inter_rows = 0, inter_rows_plain = 0;
  for (size_t i = 0; i < mine; ++i) {
    const Plan& plan = plans[i];
    total_rows += static_cast<double>(plan.num_recv_rows());
    inter_rows += static_cast<double>(plan.stats().inter_node_rows);
    inter_rows_plain += static_cast<double>(plan.stats().inter_node_rows_without_dedup);
    // fusco receives into the communicator's buffer (peers store straight into it), or with
    // --own-recv into the caller's (processes then copy out of shared memory).
    if (args.own_recv) {
      recv[i].assign(static_cast<size_t>(plan.num_recv_rows()) * row_bytes, std::byte{0});
      recv_at[i] =
          TensorView::host(recv[i].data(), args.dtype, {plan.num_recv_rows(), args.hidden});
    } else {
      Result<TensorView> view = comms[i].recv_buffer(plan, args.dtype, args.hidden);
      FUSCO_RETURN_IF_ERROR(view.status());
      recv_at[i] = view.value();
    }
    result.direct_peers = plan.stats().direct_peers;
    out[i].assign(static_cast<size_t>(tokens) * row_bytes, std::byte{0});
  }
  total_rows = ranks.sum(total_rows);
  inter_rows = ranks.sum(inter_rows);
  inter_rows_plain = ranks.sum(inter_rows_plain);
  result.recv_rows = total_rows / world;
  result.wire_mb = inter_rows * static_cast<double>(row_bytes) / world / 1e6;
  result.dedup_ratio = inter_rows > 0 ? inter_rows_plain / inter_rows : 1.0;

  std::vector<baseline::UnfusedRank> unfused;
  if (args.baseline) {
    unfused = ranks.baselines();
    const Status prepared = ranks.run([&](int r) {
      FUSCO_RETURN_IF_ERROR(unfused[at(r)].prepare(idx_view(r), args.experts, ExpertMap(), 600000));
      base_recv[at(r)].assign(static_cast<size_t>(unfused[at(r)].num_recv_rows()) * row_bytes,
                              std::byte{0});
      base_out[at(r)].assign(static_cast<size_t>(tokens) * row_bytes, std::byte{0});
      return Status();
    });
    FUSCO_RETURN_IF_ERROR(prepared);
  }

  // Side by side, every iteration: memcpy of the received bytes, fusco dispatch and combine
  // (identity experts: the expert output is the received rows), baseline dispatch and combine.
  std::vector<RankStep> steps;
  steps.push_back([&](int r) {
    copies.copy(at(r), static_cast<size_t>(plans[at(r)].num_recv_rows()) * row_bytes);
    return Status();
  });
  steps.push_back([&](int r) {
    const Plan& plan = plans[at(r)];
    return comms[at(r)].dispatch(plan, x_view(r), recv_at[at(r)]);
  });
  if (combines) {
    steps.push_back([&](int r) {
      const Plan& plan = plans[at(r)];
      return comms[at(r)].combine(plan, recv_at[at(r)], w_view(r), rows_view(out, r, tokens));
    });
  }
  if (args.baseline) {
    steps.push_back([&](int r) {
      return unfused[at(r)].dispatch(x_view(r),
                                     rows_view(base_recv, r, unfused[at(r)].num_recv_rows()));
    });
    if (combines) {
      steps.push_back([&](int r) {
        const int64_t rows = unfused[at(r)].num_recv_rows();
        return unfused[at(r)].combine(rows_view(base_recv, r, rows), w_view(r),
                                      rows_view(base_out, r, tokens));
      });
    }
  }
  Result<std::vector<double>> timed = ranks.time(args.warmup, args.iters, steps);
  FUSCO_RETURN_IF_ERROR(timed.status());
  size_t next = 0;
  const double copy_s = timed.value()[next++];
  const double dispatch_s = timed.value()[next++];
  const double combine_s = combines ? timed.value()[next++] : 0.0;
  result.dispatch_us = dispatch_s * 1e6;
  result.combine_us = combine_s * 1e6;
  double wrong = 0;
  if (args.baseline) {
    result.base_dispatch_us = timed.value()[next++] * 1e6;
    result.base_combine_us = combines ? timed.value()[next++] * 1e6 : 0.0;
    result.speedup = (result.base_dispatch_us + result.base_combine_us) /
                     (result.dispatch_us + result.combine_us);
    // The baseline must agree with fusco's dispatch too (with redundant copies it routes to
    // the primaries instead; it is checked against its own reference below).
    if (args.check && args.redundant == 0) {
      for (size_t i = 0; i < mine; ++i) {
        wrong += static_cast<double>(count_wrong(base_recv[i], received(i), elem));
      }
    }
  }
  const double bytes_per_rank = result.recv_rows * static_cast<double>(row_bytes);
  result.dispatch_algbw = bytes_per_rank / dispatch_s / 1e9;
  result.dispatch_busbw = result.dispatch_algbw * (world - 1) / world;
  if (combines) {
    result.combine_algbw = bytes_per_rank / combine_s / 1e9;
    result.combine_busbw = result.combine_algbw * (world - 1) / world;
  }
  // The memcpy bound: the received bytes copied at this machine's concurrent memcpy speed.
  const double total_bytes = total_rows * static_cast<double>(row_bytes);
  result.memcpy_gbps = copy_s > 0 ? total_bytes / copy_s / 1e9 : 0.0;
  result.bound_ratio = copy_s > 0 ? dispatch_s / copy_s : 0.0;

  if (args.repeat_check > 0) {
    // Pressure mode: the same calls again and again must give the same bits every time.
    std::vector<uint64_t> first_recv(mine), first_out(mine);
    for (size_t i = 0; i < mine; ++i) {
      first_recv[i] = hash_bytes(received(i));
      first_out[i] = hash_bytes(out[i]);
    }
    double mismatches = 0;
    for (int n = 0; n < args.repeat_check; ++n) {
      for (size_t s = 1; s < (combines ? 3U : 2U); ++s) {  // steps 1, 2: dispatch, combine
        FUSCO_RETURN_IF_ERROR(ranks.run(steps[s]));
      }
      for (size_t i = 0; i < mine; ++i) {
        mismatches += hash_bytes(received(i)) != first_recv[i] ? 1 : 0;
        mismatches += hash_bytes(out[i]) != first_out[i] ? 1 : 0;
      }
    }
    result.repeat_mismatches = static_cast<int64_t>(ranks.sum(mismatches));
  }

  if (args.check) {
    // Each process checks its own ranks; the reference reads expert-output rows (identity
    // experts: the dispatched x rows) straight from the inputs.
    std::vector<TensorView> idx_views, x_views;
    for (int r = 0; r < world; ++r) {
      idx_views.push_back(TensorView::host(in.ids64[static_cast<size_t>(r)].data(), DType::kInt64,
                                           {tokens, args.topk}));
      x_views.push_back(x_view(r));
    }
    const auto layout = reference::receive_layout(idx_views, args.experts, map.value(), topology);
    const reference::RowReader y_rows = [&](int rank, int64_t row) {
      const reference::RowSource& source =
          layout.rows[static_cast<size_t>(rank)][static_cast<size_t>(row)];
      return in.x[static_cast<size_t>(source.rank)].data() +
             static_cast<size_t>(source.token) * row_bytes;
    };
    if (args.baseline && args.redundant > 0) {
      const auto primaries =
          reference::receive_layout(idx_views, args.experts, ExpertMap(), topology);
      for (int r = first; r < first + ranks.count(); ++r) {
        wrong += static_cast<double>(
            count_wrong(base_recv[at(r)], reference::dispatch_rank(primaries, x_views, r), elem));
      }
    }
    for (int r = first; r < first + ranks.count(); ++r) {
      wrong += static_cast<double>(
          count_wrong(received(at(r)), reference::dispatch_rank(layout, x_views, r), elem));
      if (combines) {
        const Buffer want =
            reference::combine_rank(layout, r, idx_views[static_cast<size_t>(r)], w_view(r), y_rows,
                                    args.dtype, args.hidden, topology, args.dedup);
        wrong += static_cast<double>(count_wrong(out[at(r)], want, elem));
      }
    }
  }
  result.wrong = static_cast<int64_t>(ranks.sum(wrong));
  return result;
}

void print_header(const BenchArgs& args) {
  std::printf(
      "# fusco_bench %s: %d ranks (%d per node, transport %s), hidden %ld %s, top-%d of %ld "
      "experts, "
      "routing %s, dedup %s, relay %s (between processes: %s), %ld redundant copies, chunk %ld "
      "B, %d iters (+%d warm-up)\n",
      version(), args.ranks, args.ranks_per_node, args.transport.c_str(),
      static_cast<long>(args.hidden), dtype_name(args.dtype), args.topk,
      static_cast<long>(args.experts), args.routing.to_string().c_str(), dedup_name(args.dedup),
      relay_policy_name(args.relay), process_relays_name(args.process_relays),
      static_cast<long>(args.redundant), static_cast<long>(args.chunk_bytes), args.iters,
      args.warmup);
  std::printf(
      "# times: median over iterations of (last rank end - first rank start); each iteration\n"
      "# runs memcpy, fusco and the baseline side by side (see docs/benchmarks.md)\n");
  std::printf(
      "#\n# %8s %9s %9s | %10s %7s %7s | %10s %7s %7s | %9s %6s | %10s %10s %7s | %7s %6s %7s\n",
      "tokens", "recv_rows", "plan_us", "disp_us", "algbw", "busbw", "comb_us", "algbw", "busbw",
      "wire_MB", "dedup", "base_disp", "base_comb", "speedup", "cpyGB/s", "bound", "#wrong");
}

void print_row(const SizeResult& r) {
  std::printf(
      "  %8ld %9.0f %9.0f | %10.0f %7.2f %7.2f | %10.0f %7.2f %7.2f | %9.2f %6.2f | "
      "%10.0f %10.0f %7.2f | %7.2f %6.2f %7ld\n",
      static_cast<long>(r.tokens), r.recv_rows, r.plan_us, r.dispatch_us, r.dispatch_algbw,
      r.dispatch_busbw, r.combine_us, r.combine_algbw, r.combine_busbw, r.wire_mb, r.dedup_ratio,
      r.base_dispatch_us, r.base_combine_us, r.speedup, r.memcpy_gbps, r.bound_ratio,
      static_cast<long>(r.wrong));
}

Status write_json(const BenchArgs& args, const std::vector<SizeResult>& rows) {
  std::ofstream json(args.json_path);
  json << "{\n  \"version\": \"" << version() << "\",\n  \"ranks\": " << args.ranks
       << ", \"ranks_per_node\": " << args.ranks_per_node << ", \"transport\": \"" << args.transport
       << "\", \"hidden\": " << args.hidden << ", \"dtype\": \"" << dtype_name(args.dtype)
       << "\", \"topk\": " << args.topk << ", \"experts\": " << args.experts << ", \"routing\": \""
       << args.routing.to_string() << "\", \"dedup\": \"" << dedup_name(args.dedup)
       << "\", \"relay\": \"" << relay_policy_name(args.relay) << "\", \"process_relays\": \""
       << process_relays_name(args.process_relays) << "\", \"redundant\": " << args.redundant
       << ", \"chunk_bytes\": " << args.chunk_bytes << ", \"iters\": " << args.iters
       << ",\n  \"results\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const SizeResult& r = rows[i];
    json << "    {\"tokens\": " << r.tokens << ", \"recv_rows\": " << r.recv_rows
         << ", \"plan_us\": " << r.plan_us << ", \"dispatch_us\": " << r.dispatch_us
         << ", \"dispatch_algbw\": " << r.dispatch_algbw
         << ", \"dispatch_busbw\": " << r.dispatch_busbw << ", \"combine_us\": " << r.combine_us
         << ", \"combine_algbw\": " << r.combine_algbw << ", \"combine_busbw\": " << r.combine_busbw
         << ", \"wire_mb\": " << r.wire_mb << ", \"dedup_ratio\": " << r.dedup_ratio
         << ", \"baseline_dispatch_us\": " << r.base_dispatch_us
         << ", \"baseline_combine_us\": " << r.base_combine_us << ", \"speedup\": " << r.speedup
         << ", \"memcpy_gbps\": " << r.memcpy_gbps << ", \"bound_ratio\": " << r.bound_ratio
         << ", \"wrong\": " << r.wrong << ", \"repeat_mismatches\": " << r.repeat_mismatches
         << ", \"direct_peers\": " << (r.direct_peers ? "true" : "false");
    if (r.gpu_planning) {
      json << ", \"planning\": {\"host_plan_us\": " << r.planning.host_plan_us
           << ", \"device_plan_us\": " << r.planning.device_plan_us
           << ", \"capacity\": " << r.planning.capacity << ", \"dropped\": " << r.planning.dropped
           << ", \"dispatch_us\": " << r.planning.dispatch_us
           << ", \"combine_us\": " << r.planning.combine_us << "}";
    }
    json << "}" << (i + 1 < rows.size() ? "," : "") << "\n";
  }
  json << "  ]\n}\n";
  json.close();
  if (!json) {
    return Status(StatusCode::kInvalidArgument, "-J " + args.json_path + ": writing failed");
  }
  return Status();
}

// A GPU run's size (-t gpu or nccl: `m` has recv_rows, the four times, plan_us and wrong) in
// the columns of the other transports: bandwidths over a rank's received bytes, the bus
// bandwidth counting the share of them that came from other ranks.
template <typename Measured>
SizeResult gpu_row(const BenchArgs& args, int64_t tokens, const Measured& m) {
  SizeResult r;
  r.tokens = tokens;
  r.recv_rows = m.recv_rows;
  r.plan_us = m.plan_us;
  r.dispatch_us = m.dispatch_us;
  r.combine_us = m.combine_us;
  r.base_dispatch_us = m.base_dispatch_us;
  r.base_combine_us = m.base_combine_us;
  const double rank_bytes =
      m.recv_rows * static_cast<double>(args.hidden) * static_cast<double>(dtype_size(args.dtype));
  const double share = static_cast<double>(args.ranks - 1) / args.ranks;
  r.dispatch_algbw = m.dispatch_us > 0 ? rank_bytes / m.dispatch_us / 1e3 : 0;
  r.dispatch_busbw = r.dispatch_algbw * share;
  r.combine_algbw = m.combine_us > 0 ? rank_bytes / m.combine_us / 1e3 : 0;
  r.combine_busbw = r.combine_algbw * share;
  r.speedup = (m.base_dispatch_us + m.base_combine_us) / (m.dispatch_us + m.combine_us);
  r.wrong = m.wrong;
  return r;
}

// -t gpu: one size on one GPU, in the columns of the other transports (no wire bytes: the
// logical ranks share the device; cpyGB/s is the device-to-device copy of the delivered bytes).
Result<SizeResult> run_gpu_row(const BenchArgs& args, int64_t tokens) {
#ifdef FUSCO_BENCH_WITH_GPU
  Result<GpuSize> measured = run_gpu_size(args, tokens);
  if (!measured.ok() && measured.status().code() == StatusCode::kUnsupported) {
    return Status(StatusCode::kUnsupported,
                  "-t gpu: no usable CUDA device (" + measured.status().message() + ")");
  }
  FUSCO_RETURN_IF_ERROR(measured.status());
  const GpuSize& g = measured.value();
  SizeResult r = gpu_row(args, tokens, g);
  r.memcpy_gbps = g.copy_us > 0 ? g.delivered_bytes / g.copy_us / 1e3 : 0;
  r.bound_ratio = g.copy_us > 0 ? g.dispatch_us / g.copy_us : 0;
  std::printf(
      "# %ld tokens on %s: dispatch bandwidth / D2D copy bandwidth %.2f (goal >= 0.80), "
      "unfused / fused time %.2fx (goal >= 1.8x)\n",
      static_cast<long>(tokens), g.device.c_str(),
      g.dispatch_us > 0 ? g.copy_us / g.dispatch_us : 0, r.speedup);
  const GpuPlanning& p = g.planning;
  if (args.ranks_per_node < args.ranks) return r;  // planning on the device: one node only
  r.gpu_planning = true;
  r.planning = {p.host_plan_us, p.device_plan_us, p.capacity,
                p.dropped,      p.dispatch_us,    p.combine_us};
  std::printf(
      "# %ld tokens, planning from routing on the GPU (capacity %ld rows per expert, %ld "
      "dropped): DeviceGroup::plan %.0f us, plan_on_device %.0f us (%.1fx); dispatch %.0f us, "
      "combine %.0f us with the device-made plans\n",
      static_cast<long>(tokens), static_cast<long>(p.capacity), static_cast<long>(p.dropped),
      p.host_plan_us, p.device_plan_us,
      p.device_plan_us > 0 ? p.host_plan_us / p.device_plan_us : 0, p.dispatch_us, p.combine_us);
  return r;
#else
  (void)args;
  (void)tokens;
  return Status(StatusCode::kUnsupported,
                "flag -t = 'gpu': this fusco_bench was built without CUDA (FUSCO_WITH_CUDA)");
#endif
}

// fusco_bench -t nccl: one size over the MPI processes (nccl_sizes.hpp).
Result<SizeResult> run_nccl_row(const BenchArgs& args, int64_t tokens, Ranks& ranks) {
#ifdef FUSCO_BENCH_WITH_NCCL
  Result<NcclSize> measured = run_nccl_size(args, tokens, ranks);
  FUSCO_RETURN_IF_ERROR(measured.status());
  const NcclSize& n = measured.value();
  const SizeResult r = gpu_row(args, tokens, n);
  if (ranks.reports()) {
    std::printf("# %ld tokens on %d x %s (%s): unfused / fused time %.2fx\n",
                static_cast<long>(tokens), args.ranks, n.device.c_str(), n.path.c_str(), r.speedup);
  }
  return r;
#else
  (void)args;
  (void)tokens;
  (void)ranks;
  return Status(StatusCode::kUnsupported,
                "flag -t = 'nccl': this fusco_bench was built without NCCL and MPI "
                "(FUSCO_WITH_NCCL, FUSCO_WITH_MPI)");
#endif
}

// The rank driver for args.transport; settles the rank count.
Result<std::unique_ptr<Ranks>> make_ranks(BenchArgs& args, int* argc, char*** argv) {
  if (args.transport == "inproc") {
    return std::unique_ptr<Ranks>(std::make_unique<ThreadRanks>(args.ranks));
  }
#ifdef FUSCO_BENCH_WITH_MPI
  std::unique_ptr<Ranks> ranks = make_mpi_ranks(args.transport, argc, argv);
  FUSCO_RETURN_IF_ERROR(settle_world(args, ranks->world()));
  return ranks;
#else
  (void)argc;
  (void)argv;
  return Status(StatusCode::kUnsupported, "flag -t = '" + args.transport +
                                              "': this fusco_bench was built without MPI "
                                              "(FUSCO_WITH_MPI)");
#endif
}

int run(int argc, char** argv) {
  Result<BenchArgs> parsed = parse_bench_args(argc, argv);
  if (!parsed.ok()) {
    std::fprintf(stderr, "fusco_bench: %s\n", parsed.status().message().c_str());
    return 2;
  }
  BenchArgs& args = parsed.value();
  if (args.help) {
    std::fputs(bench_usage().c_str(), stdout);
    return 0;
  }
  // Refused before the run, not after it: a report that cannot be written is an error.
  if (const Status writable =
          args.json_path.empty() ? Status() : testing::check_writable(args.json_path);
      !writable.ok()) {
    std::fprintf(stderr, "fusco_bench: flag -J = '%s': %s (see --help)\n", args.json_path.c_str(),
                 writable.message().c_str());
    return 2;
  }
  if (args.transport == "gpu" && !args.ranks_per_node_given) {
    args.ranks_per_node = args.ranks;  // the logical ranks share one device: one node unless -p
  }
  Result<std::unique_ptr<Ranks>> made =
      args.transport == "gpu" ? Result<std::unique_ptr<Ranks>>(std::make_unique<ThreadRanks>(1))
                              : make_ranks(args, &argc, &argv);
  if (!made.ok()) {
    std::fprintf(stderr, "fusco_bench: %s\n", made.status().message().c_str());
    return 2;
  }
  Ranks& ranks = *made.value();
  if (args.transport == "nccl" && !args.ranks_per_node_given) {
    args.ranks_per_node = args.ranks;  // the processes form one node unless -p says otherwise
  }
  const bool reports = ranks.reports();
  CopyBuffers copies(ranks.count());
  if (reports) {
    print_header(args);
  }
  std::vector<SizeResult> rows;
  for (int64_t tokens = args.min_tokens; tokens <= args.max_tokens;
       tokens = tokens == 0 ? 1 : tokens * args.factor) {
    Result<SizeResult> row = args.transport == "gpu"    ? run_gpu_row(args, tokens)
                             : args.transport == "nccl" ? run_nccl_row(args, tokens, ranks)
                                                        : run_size(args, tokens, ranks, copies);
    if (!row.ok()) {
      std::fprintf(stderr, "fusco_bench: rank %d, %ld tokens: %s\n", ranks.first(),
                   static_cast<long>(tokens), row.status().to_string().c_str());
      return 2;
    }
    if (reports) {
      print_row(row.value());
      std::fflush(stdout);
    }
    rows.push_back(row.value());
  }
  SizeResult mean;
  int64_t wrong = 0;
  int64_t repeat_mismatches = 0;
  for (const SizeResult& r : rows) {
    mean.dispatch_algbw += r.dispatch_algbw / static_cast<double>(rows.size());
    mean.dispatch_busbw += r.dispatch_busbw / static_cast<double>(rows.size());
    mean.combine_algbw += r.combine_algbw / static_cast<double>(rows.size());
    mean.combine_busbw += r.combine_busbw / static_cast<double>(rows.size());
    mean.speedup += r.speedup / static_cast<double>(rows.size());
    mean.bound_ratio += r.bound_ratio / static_cast<double>(rows.size());
    wrong += r.wrong;
    repeat_mismatches += r.repeat_mismatches;
  }
  if (reports && args.repeat_check > 0) {
    std::printf("# Repeat check : %d reruns per size, %ld outputs differed from the first run %s\n",
                args.repeat_check, static_cast<long>(repeat_mismatches),
                repeat_mismatches == 0 ? "OK" : "DIFFERENT");
  }
  if (reports && !rows.empty()) {
    std::printf(
        "# Rows to node peers : %s, into %s\n",
        rows.back().direct_peers ? "stored directly" : "through staging windows",
        args.own_recv ? "the benchmark's buffers (--own-recv)" : "Communicator::recv_buffer");
  }
  if (reports) {
    std::printf("# Out of bounds values : %ld %s\n", static_cast<long>(wrong),
                wrong == 0 ? "OK" : "WRONG");
    std::printf(
        "# Avg dispatch bus bandwidth : %.3f GB/s, combine : %.3f GB/s, speed-up over "
        "unfused : %.2fx, dispatch / memcpy bound : %.2f\n",
        mean.dispatch_busbw, mean.combine_busbw, mean.speedup, mean.bound_ratio);
    const Status written = args.json_path.empty() ? Status() : write_json(args, rows);
    if (!written.ok()) {
      std::fprintf(stderr, "fusco_bench: %s\n", written.message().c_str());
      return 2;
    }
  }
  return wrong == 0 && repeat_mismatches == 0 ? 0 : 1;
}

}  // namespace
}  // namespace fusco::bench

int main(int argc, char** argv) {
  try {
    const int code = fusco::bench::run(argc, argv);
#ifdef FUSCO_BENCH_WITH_NCCL
    fusco::bench::finish_nccl();  // its communicators go before MPI does
#endif
#ifdef FUSCO_BENCH_WITH_MPI
    fusco::bench::finish_mpi();
#endif
    return code;
  } catch (const std::exception& error) {  // allocation failure of a too-large size
    std::fprintf(stderr, "fusco_bench: %s\n", error.what());
    return 2;
  }
}
