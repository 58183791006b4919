// fusco across simulated machines (network and UTS namespaces, UCX over tcp between them; see
// simulated_machines.hpp), with relays between processes off and on, on a rate-limited link:
// the time of dispatch + combine and the bytes that crossed the machines' links. Needs root.
//
//   fusco_machines_bench [--machines M] [--per-machine R] [--tokens T] [--hidden H] [--topk K]
//                        [--experts E] [--rate 1gbit] [--iters N] [--runs N]

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "fusco/fusco.hpp"
#include "process/child_processes.hpp"
#include "process/simulated_machines.hpp"
#include "process/ucx_join.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {
namespace {

struct Shape {
  int machines = 2;
  int per_machine = 2;
  int64_t tokens = 512;
  int64_t hidden = 2048;
  int topk = 8;
  int64_t experts = 64;
  std::string rate = "1gbit";
  int iters = 5;
  int runs = 3;
  int world() const { return machines * per_machine; }
};

// What one rank measured in one run.
struct Sample {
  double ms = 0;           // median dispatch + combine
  int64_t link_bytes = 0;  // bytes its machine's link sent per iteration (first rank of a machine)
  int64_t inter_node_rows = 0;
};

int64_t link_tx_bytes() {
  std::ifstream in("/sys/class/net/fsim0/statistics/tx_bytes");
  int64_t bytes = 0;
  in >> bytes;
  return bytes;
}

// One rank's run: plan with `relays`, warm up, then time `iters` dispatch + combine rounds.
Result<Sample> run_rank(Communicator& comm, const Shape& shape, ProcessRelays relays) {
  std::mt19937_64 rng(static_cast<uint64_t>(comm.rank()) + 7);
  std::vector<int64_t> ids = random_topk(shape.tokens, shape.topk, shape.experts, 0.0, 0.0, rng);
  PlanOptions options;
  options.process_relays = relays;
  options.timeout_ms = 120000;
  Result<Plan> plan =
      comm.plan(TensorView::host(ids.data(), DType::kInt64, {shape.tokens, shape.topk}),
                shape.experts, ExpertMap(), options);
  FUSCO_RETURN_IF_ERROR(plan.status());
  const int64_t rows = plan.value().num_recv_rows();
  std::vector<uint16_t> x(static_cast<size_t>(shape.tokens * shape.hidden), 0x3f80);
  std::vector<uint16_t> recv(static_cast<size_t>(rows * shape.hidden));
  std::vector<float> weights(static_cast<size_t>(shape.tokens * shape.topk), 0.125F);
  std::vector<uint16_t> out(x.size());
  std::vector<double> times;
  int64_t bytes_before = 0;
  for (int i = -1; i < shape.iters; ++i) {  // i = -1: warm-up
    if (i == 0) bytes_before = link_tx_bytes();
    const auto start = std::chrono::steady_clock::now();
    FUSCO_RETURN_IF_ERROR(comm.dispatch(
        plan.value(), TensorView::host(x.data(), DType::kBFloat16, {shape.tokens, shape.hidden}),
        TensorView::host(recv.data(), DType::kBFloat16, {rows, shape.hidden})));
    FUSCO_RETURN_IF_ERROR(comm.combine(
        plan.value(), TensorView::host(recv.data(), DType::kBFloat16, {rows, shape.hidden}),
        TensorView::host(weights.data(), DType::kFloat32, {shape.tokens, shape.topk}),
        TensorView::host(out.data(), DType::kBFloat16, {shape.tokens, shape.hidden})));
    if (i >= 0) {
      times.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count());
    }
  }
  std::sort(times.begin(), times.end());
  Sample sample;
  sample.ms = times[times.size() / 2];
  sample.link_bytes = (link_tx_bytes() - bytes_before) / shape.iters;
  sample.inter_node_rows = plan.value().stats().inter_node_rows;
  return sample;
}

// One run of the whole group; returns {slowest rank's median ms, link bytes of all machines,
// inter-node rows of all ranks}, or an error message.
Result<Sample> run_group(const SimulatedMachines& machines, const Shape& shape,
                         ProcessRelays relays) {
  int report[2];
  if (pipe(report) != 0) return Status(StatusCode::kInternal, "pipe");
  const std::string name = fresh_group_name();
  const std::vector<ChildEnd> ends = run_children(
      shape.world(),
      [&](int rank) {
        const int machine = rank / shape.per_machine;
        if (!machines.enter(machine).ok()) return 9;
        Result<Communicator> comm =
            join_ucx_through_shm(name, rank, Topology::by_machine(shape.world()), 60000);
        if (!comm.ok()) {
          std::fprintf(stderr, "rank %d: %s\n", rank, comm.status().to_string().c_str());
          return 1;
        }
        Result<Sample> sample = run_rank(comm.value(), shape, relays);
        if (!sample.ok()) {
          std::fprintf(stderr, "rank %d: %s\n", rank, sample.status().to_string().c_str());
          return 2;
        }
        Sample mine = sample.value();
        if (rank % shape.per_machine != 0) mine.link_bytes = 0;  // one reader per machine
        return write(report[1], &mine, sizeof(mine)) == sizeof(mine) ? 0 : 3;
      },
      std::chrono::milliseconds(600000));
  close(report[1]);
  std::string why;
  if (!all_passed(ends, &why)) {
    close(report[0]);
    return Status(StatusCode::kInternal, why);
  }
  Sample total;
  Sample one;
  while (read(report[0], &one, sizeof(one)) == sizeof(one)) {
    total.ms = std::max(total.ms, one.ms);
    total.link_bytes += one.link_bytes;
    total.inter_node_rows += one.inter_node_rows;
  }
  close(report[0]);
  return total;
}

bool parse(int argc, char** argv, Shape* shape) {
  const std::map<std::string, std::function<void(const char*)>> flags = {
      {"--machines", [&](const char* v) { shape->machines = std::atoi(v); }},
      {"--per-machine", [&](const char* v) { shape->per_machine = std::atoi(v); }},
      {"--tokens", [&](const char* v) { shape->tokens = std::atoll(v); }},
      {"--hidden", [&](const char* v) { shape->hidden = std::atoll(v); }},
      {"--topk", [&](const char* v) { shape->topk = std::atoi(v); }},
      {"--experts", [&](const char* v) { shape->experts = std::atoll(v); }},
      {"--rate", [&](const char* v) { shape->rate = v; }},
      {"--iters", [&](const char* v) { shape->iters = std::atoi(v); }},
      {"--runs", [&](const char* v) { shape->runs = std::atoi(v); }},
  };
  for (int i = 1; i + 1 < argc; i += 2) {
    const auto flag = flags.find(argv[i]);
    if (flag == flags.end()) return false;
    flag->second(argv[i + 1]);
  }
  return argc % 2 == 1 && shape->machines >= 2 && shape->per_machine >= 1 && shape->tokens >= 1 &&
         shape->hidden >= 1 && shape->topk >= 1 && shape->experts % shape->world() == 0 &&
         shape->iters >= 1 && shape->runs >= 1;
}

int bench(int argc, char** argv) {
  Shape shape;
  if (!parse(argc, argv, &shape)) {
    std::fprintf(stderr,
                 "usage: %s [--machines M>=2] [--per-machine R] [--tokens T] [--hidden H] "
                 "[--topk K] [--experts E (a multiple of M*R)] [--rate 1gbit] [--iters N] "
                 "[--runs N]\n",
                 argv[0]);
    return 2;
  }
  auto machines = SimulatedMachines::create(shape.machines);
  if (!machines.ok()) {
    std::fprintf(stderr, "%s\n", machines.status().to_string().c_str());
    return 1;
  }
  if (shape.rate != "none" && !machines.value()->limit_rate(shape.rate).ok()) {
    std::fprintf(stderr, "cannot limit the links to %s\n", shape.rate.c_str());
    return 1;
  }
  std::printf(
      "# %d machines x %d ranks, UCX over tcp, link %s; T=%lld H=%lld bf16 k=%d E=%lld; "
      "median of %d iterations per run\n",
      shape.machines, shape.per_machine, shape.rate.c_str(), static_cast<long long>(shape.tokens),
      static_cast<long long>(shape.hidden), shape.topk, static_cast<long long>(shape.experts),
      shape.iters);
  std::printf(
      "run,relays,dispatch+combine ms (slowest rank),link MB per iteration,"
      "inter-node rows\n");
  for (int run = 0; run < shape.runs; ++run) {
    for (const ProcessRelays relays : {ProcessRelays::kOff, ProcessRelays::kOn}) {
      const Result<Sample> got = run_group(*machines.value(), shape, relays);
      if (!got.ok()) {
        std::fprintf(stderr, "%s\n", got.status().to_string().c_str());
        return 1;
      }
      std::printf("%d,%s,%.1f,%.2f,%lld\n", run, process_relays_name(relays), got.value().ms,
                  static_cast<double>(got.value().link_bytes) / 1e6,
                  static_cast<long long>(got.value().inter_node_rows));
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace fusco::testing

int main(int argc, char** argv) { return fusco::testing::bench(argc, argv); }
