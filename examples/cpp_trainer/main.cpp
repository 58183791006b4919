// A trainer-style program built against the installed fusco package: four in-process ranks
// (two nodes of two) route tokens with a softmax top-k router, dispatch them to their experts,
// run each local expert (a scale, standing in for the expert MLP) on its expert-major block,
// and combine the results with the router weights. It checks the output against a dense
// computation and prints the plan statistics.

#include <cmath>
#include <cstdio>
#include <fusco/fusco.hpp>
#include <random>
#include <thread>
#include <vector>

namespace {

constexpr int kWorld = 4;
constexpr int64_t kTokens = 64;
constexpr int64_t kHidden = 32;
constexpr int kTopk = 2;
constexpr int64_t kExperts = 8;

float expert_scale(int64_t expert) { return 1.0f + 0.25f * static_cast<float>(expert); }

int run_rank(fusco::Communicator& comm, bool* ok) {
  const int rank = comm.rank();
  std::mt19937 rng(1234 + rank);
  std::normal_distribution<float> normal;
  std::vector<float> x(kTokens * kHidden);
  for (float& v : x) v = normal(rng);

  // Router: softmax over random logits, top-k.
  std::vector<int32_t> topk_idx(kTokens * kTopk);
  std::vector<float> topk_weights(kTokens * kTopk);
  for (int64_t t = 0; t < kTokens; ++t) {
    std::vector<float> logits(kExperts);
    for (float& l : logits) l = normal(rng);
    for (int j = 0; j < kTopk; ++j) {
      int64_t best = 0;
      for (int64_t e = 1; e < kExperts; ++e) {
        if (logits[e] > logits[best]) best = e;
      }
      topk_idx[t * kTopk + j] = static_cast<int32_t>(best);
      topk_weights[t * kTopk + j] = std::exp(logits[best]);
      logits[best] = -INFINITY;
    }
    const float sum = topk_weights[t * kTopk] + topk_weights[t * kTopk + 1];
    for (int j = 0; j < kTopk; ++j) topk_weights[t * kTopk + j] /= sum;
  }

  auto plan = comm.plan(
      fusco::TensorView::host(topk_idx.data(), fusco::DType::kInt32, {kTokens, kTopk}), kExperts);
  if (!plan.ok()) {
    std::fprintf(stderr, "rank %d: plan: %s\n", rank, plan.status().to_string().c_str());
    return 1;
  }
  const int64_t rows = plan.value().num_recv_rows();
  std::vector<float> recv(rows * kHidden);
  fusco::Status status = comm.dispatch(
      plan.value(), fusco::TensorView::host(x.data(), fusco::DType::kFloat32, {kTokens, kHidden}),
      fusco::TensorView::host(recv.data(), fusco::DType::kFloat32, {rows, kHidden}));
  if (!status.ok()) {
    std::fprintf(stderr, "rank %d: dispatch: %s\n", rank, status.to_string().c_str());
    return 1;
  }
  // Local experts: each owns a contiguous block of rows (grouped-GEMM-ready layout).
  const int64_t experts_per_rank = kExperts / kWorld;
  int64_t row = 0;
  for (int64_t slot = 0; slot < experts_per_rank; ++slot) {
    const float scale = expert_scale(rank * experts_per_rank + slot);
    for (int64_t i = 0; i < plan.value().tokens_per_expert()[slot]; ++i, ++row) {
      for (int64_t h = 0; h < kHidden; ++h) recv[row * kHidden + h] *= scale;
    }
  }
  std::vector<float> out(kTokens * kHidden);
  status = comm.combine(
      plan.value(), fusco::TensorView::host(recv.data(), fusco::DType::kFloat32, {rows, kHidden}),
      fusco::TensorView::host(topk_weights.data(), fusco::DType::kFloat32, {kTokens, kTopk}),
      fusco::TensorView::host(out.data(), fusco::DType::kFloat32, {kTokens, kHidden}));
  if (!status.ok()) {
    std::fprintf(stderr, "rank %d: combine: %s\n", rank, status.to_string().c_str());
    return 1;
  }
  double max_error = 0;
  for (int64_t t = 0; t < kTokens; ++t) {
    for (int64_t h = 0; h < kHidden; ++h) {
      float want = 0;
      for (int j = 0; j < kTopk; ++j) {
        want += topk_weights[t * kTopk + j] * expert_scale(topk_idx[t * kTopk + j]) *
                x[t * kHidden + h];
      }
      max_error = std::fmax(max_error, std::fabs(want - out[t * kHidden + h]));
    }
  }
  *ok = max_error < 1e-4;
  std::printf("rank %d: %ld rows received, max |dense - fused| = %.2e\n%s", rank,
              static_cast<long>(rows), max_error,
              rank == 0 ? plan.value().stats().to_string(kHidden * 4).c_str() : "");
  return 0;
}

}  // namespace

int main() {
  auto comms = fusco::Communicator::create_local(kWorld, fusco::Topology::nodes_of(kWorld, 2));
  if (!comms.ok()) {
    std::fprintf(stderr, "create_local: %s\n", comms.status().to_string().c_str());
    return 1;
  }
  std::vector<int> codes(kWorld);
  bool oks[kWorld] = {};
  std::vector<std::thread> threads;
  for (int r = 0; r < kWorld; ++r) {
    threads.emplace_back([&, r] { codes[r] = run_rank(comms.value()[r], &oks[r]); });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kWorld; ++r) {
    if (codes[r] != 0 || !oks[r]) {
      std::printf("cpp_trainer: FAILED on rank %d\n", r);
      return 1;
    }
  }
  std::printf("cpp_trainer: OK (fusco %s)\n", fusco::version());
  return 0;
}
