#include "process/survivors.hpp"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "multirank/harness.hpp"
#include "testing/routing.hpp"

namespace fusco::testing {

Status loop_until_failure(Communicator& comm, int64_t timeout_ms, int64_t* iterations) {
  Case c;
  c.world = comm.world_size();
  c.experts = 2 * c.world;
  c.hidden = 256;
  c.tokens_each = 256;
  c.dtype = DType::kFloat32;
  c.chunk_bytes = 4096;
  PlanOptions options;
  options.timeout_ms = timeout_ms;
  options.chunk_bytes = c.chunk_bytes;
  std::mt19937_64 rng(static_cast<uint64_t>(comm.rank()) + 1);
  std::vector<int64_t> ids = random_topk(c.tokens_each, c.topk, c.experts, 0.1, 0.0, rng);
  Result<Plan> plan =
      comm.plan(TensorView::host(ids.data(), DType::kInt64, {c.tokens_each, c.topk}), c.experts,
                ExpertMap(), options);
  FUSCO_RETURN_IF_ERROR(plan.status());
  const int64_t rows = plan.value().num_recv_rows();
  std::vector<float> x(static_cast<size_t>(c.tokens_each * c.hidden), 1.0F);
  std::vector<float> recv(static_cast<size_t>(rows * c.hidden));
  std::vector<float> weights(static_cast<size_t>(c.tokens_each * c.topk), 0.5F);
  std::vector<float> out(x.size());
  for (*iterations = 0;; ++*iterations) {
    FUSCO_RETURN_IF_ERROR(comm.dispatch(
        plan.value(), TensorView::host(x.data(), DType::kFloat32, {c.tokens_each, c.hidden}),
        TensorView::host(recv.data(), DType::kFloat32, {rows, c.hidden})));
    FUSCO_RETURN_IF_ERROR(
        comm.combine(plan.value(), TensorView::host(recv.data(), DType::kFloat32, {rows, c.hidden}),
                     TensorView::host(weights.data(), DType::kFloat32, {c.tokens_each, c.topk}),
                     TensorView::host(out.data(), DType::kFloat32, {c.tokens_each, c.hidden})));
  }
}

int survivor_checks(Communicator& comm, int victim, int64_t timeout_ms, bool exited) {
  int64_t iterations = 0;
  const Status failed = loop_until_failure(comm, timeout_ms, &iterations);
  const std::string text = failed.to_string();
  const std::string v = std::to_string(victim);
  const bool named =
      text.find("rank " + v) != std::string::npos || text.find("rank(s) " + v) != std::string::npos;
  const bool right_kind = exited ? text.find("exited") != std::string::npos
                                 : text.find("timed out") != std::string::npos;
  if (failed.ok() || !right_kind || comm.usable()) {
    std::fprintf(stderr, "rank %d after %lld iterations: unexpected end: %s (usable=%d)\n",
                 comm.rank(), static_cast<long long>(iterations), text.c_str(),
                 comm.usable() ? 1 : 0);
    return 1;
  }
  return named ? 0 : kNamedAnother;
}

std::string silent_ranks(const Status& failed) {
  const std::string text = failed.message();
  const size_t end = text.find(" do not answer");
  const size_t start = end == std::string::npos ? end : text.rfind("rank(s) ", end);
  if (start == std::string::npos) {
    std::fprintf(stderr, "no silent rank named: %s\n", failed.to_string().c_str());
    return "";
  }
  const std::string ranks = text.substr(start + 8, end - start - 8);
  std::fprintf(stderr, "named %s: %s\n", ranks.c_str(), failed.to_string().c_str());
  return ranks;
}

}  // namespace fusco::testing
