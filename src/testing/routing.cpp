#include "testing/routing.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

namespace fusco::testing {

std::string RoutingSpec::to_string() const {
  switch (kind) {
    case RoutingKind::kUniform:
      return "uniform";
    case RoutingKind::kZipf:
      return "zipf:" + std::to_string(param);
    case RoutingKind::kNodeConfined:
      return "node-confined";
    case RoutingKind::kHot:
      return "hot:" + std::to_string(param);
  }
  return "invalid";
}

Result<RoutingSpec> parse_routing(std::string_view text) {
  auto number = [&](std::string_view digits, double* out) {
    const std::string copy(digits);
    char* end = nullptr;
    *out = std::strtod(copy.c_str(), &end);
    return !copy.empty() && end == copy.c_str() + copy.size();
  };
  const auto bad = [&](const std::string& why) {
    return Status(StatusCode::kInvalidArgument,
                  "routing '" + std::string(text) + "' " + why +
                      "; expected uniform, zipf:<s> (s > 0), node-confined or hot:<f> (0..1)");
  };
  if (text == "uniform") {
    return RoutingSpec{RoutingKind::kUniform, 0.0};
  }
  if (text == "node-confined") {
    return RoutingSpec{RoutingKind::kNodeConfined, 0.0};
  }
  if (text.starts_with("zipf:")) {
    double s = 0;
    if (!number(text.substr(5), &s) || !(s > 0)) {
      return bad("has an invalid exponent");
    }
    return RoutingSpec{RoutingKind::kZipf, s};
  }
  if (text.starts_with("hot:")) {
    double f = 0;
    if (!number(text.substr(4), &f) || !(f >= 0 && f <= 1)) {
      return bad("has an invalid fraction");
    }
    return RoutingSpec{RoutingKind::kHot, f};
  }
  return bad("is not known");
}

std::vector<int32_t> generate_routing(const RoutingSpec& spec, int64_t tokens, int topk,
                                      int64_t num_experts, int rank, const Topology& topology,
                                      uint64_t seed) {
  std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(rank));
  std::vector<int32_t> ids(static_cast<size_t>(tokens * topk), -1);
  const int64_t per_rank = num_experts / topology.world_size;
  // The experts a token may pick from, and a sampler over them.
  int64_t first = 0;
  int64_t count = num_experts;
  if (spec.kind == RoutingKind::kNodeConfined) {
    const int node = topology.node_of(rank);
    first = topology.node_first_rank(node) * per_rank;
    count = topology.node_size(node) * per_rank;
  }
  std::vector<double> cdf;
  if (spec.kind == RoutingKind::kZipf) {
    cdf.resize(static_cast<size_t>(count));
    double sum = 0;
    for (int64_t i = 0; i < count; ++i) {
      sum += 1.0 / std::pow(static_cast<double>(i + 1), spec.param);
      cdf[static_cast<size_t>(i)] = sum;
    }
    for (double& c : cdf) {
      c /= sum;
    }
  }
  // A fixed, seed-dependent popularity order (the same on every rank).
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), first);
  std::mt19937_64 shuffle_rng(seed);
  std::shuffle(order.begin(), order.end(), shuffle_rng);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<int64_t> any(0, count - 1);
  const int distinct = static_cast<int>(std::min<int64_t>(topk, count));
  auto is_new = [](const std::vector<int32_t>& chosen, int64_t pick) {
    return std::find(chosen.begin(), chosen.end(), static_cast<int32_t>(pick)) == chosen.end();
  };
  // Draws that may repeat an expert the token already has before the most popular expert it
  // lacks is taken instead: under an extreme skew (zipf:50) a draw almost never finds a new
  // expert, and sampling without replacement would take them in popularity order anyway.
  constexpr int kRepeatsBeforeFallback = 64;
  std::vector<int32_t> chosen;
  for (int64_t t = 0; t < tokens; ++t) {
    chosen.clear();
    if (spec.kind == RoutingKind::kHot && unit(rng) < spec.param) {
      chosen.push_back(0);
    }
    int repeats = 0;
    while (static_cast<int>(chosen.size()) < distinct) {
      int64_t pick = 0;
      if (spec.kind == RoutingKind::kZipf) {
        pick = order[static_cast<size_t>(std::lower_bound(cdf.begin(), cdf.end(), unit(rng)) -
                                         cdf.begin())];
      } else {
        pick = first + any(rng);
      }
      pick = std::min(pick, num_experts - 1);
      if (!is_new(chosen, pick) && ++repeats == kRepeatsBeforeFallback) {
        pick =
            *std::find_if(order.begin(), order.end(), [&](int64_t e) { return is_new(chosen, e); });
      }
      if (is_new(chosen, pick)) {
        chosen.push_back(static_cast<int32_t>(pick));
        repeats = 0;
      }
    }
    std::copy(chosen.begin(), chosen.end(), ids.begin() + t * topk);
  }
  return ids;
}

std::vector<int64_t> random_topk(int64_t tokens, int topk, int64_t num_experts, double masked,
                                 double masked_token, std::mt19937_64& rng) {
  std::uniform_int_distribution<int64_t> expert(0, num_experts - 1);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::vector<int64_t> ids(static_cast<size_t>(tokens * topk));
  for (int64_t t = 0; t < tokens; ++t) {
    const bool token_masked = unit(rng) < masked_token;
    for (int j = 0; j < topk; ++j) {
      ids[static_cast<size_t>(t * topk + j)] =
          token_masked || unit(rng) < masked ? -1 : expert(rng);
    }
  }
  return ids;
}

}  // namespace fusco::testing
