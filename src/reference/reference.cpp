#include "reference/reference.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>

#include "core/convert.hpp"

namespace fusco::reference {

namespace {

// The ranks holding a copy of `expert`, primary first.
std::vector<int> copies_of(int64_t expert, int64_t num_experts, const ExpertMap& map,
                           int world_size) {
  if (map.has_replicas()) {
    const auto& ranks = map.replicas()[static_cast<size_t>(expert)];
    return std::vector<int>(ranks.begin(), ranks.end());
  }
  if (map.is_contiguous()) {
    return {static_cast<int>(expert / (num_experts / world_size))};
  }
  return {map.owners()[static_cast<size_t>(expert)]};
}

bool holds(int rank, int64_t expert, int64_t num_experts, const ExpertMap& map, int world_size) {
  const std::vector<int> ranks = copies_of(expert, num_experts, map, world_size);
  return std::find(ranks.begin(), ranks.end(), rank) != ranks.end();
}

// Local slot of `expert` on `rank`: the experts below it that the rank holds.
int64_t slot_of(int64_t expert, int rank, int64_t num_experts, const ExpertMap& map,
                int world_size) {
  int64_t slot = 0;
  for (int64_t e = 0; e < expert; ++e) {
    slot += holds(rank, e, num_experts, map, world_size) ? 1 : 0;
  }
  return slot;
}

int64_t expert_at(const TensorView& idx, int64_t token, int slot) {
  const int64_t flat = token * idx.shape[1] + slot;
  return idx.dtype == DType::kInt32 ? static_cast<const int32_t*>(idx.data)[flat]
                                    : static_cast<const int64_t*>(idx.data)[flat];
}

// Element `index` of a row of `dtype`, widened (fp64 stays fp64).
double load(const std::byte* row, DType dtype, int64_t index) {
  switch (dtype) {
    case DType::kBFloat16:
      return core::bf16_to_float(reinterpret_cast<const uint16_t*>(row)[index]);
    case DType::kFloat16:
      return core::fp16_to_float(reinterpret_cast<const uint16_t*>(row)[index]);
    case DType::kFloat64:
      return reinterpret_cast<const double*>(row)[index];
    default:
      return reinterpret_cast<const float*>(row)[index];
  }
}

// Rounds to `dtype` and writes the element into `out`.
void store(float value, DType dtype, std::byte* out) {
  if (dtype == DType::kFloat32) {
    std::memcpy(out, &value, 4);
    return;
  }
  const uint16_t bits =
      dtype == DType::kBFloat16 ? core::float_to_bf16(value) : core::float_to_fp16(value);
  std::memcpy(out, &bits, 2);
}

void store(double value, DType /*fp64*/, std::byte* out) { std::memcpy(out, &value, 8); }

float round_trip(float value, DType dtype) {
  std::byte bits[4];
  store(value, dtype, bits);
  if (dtype == DType::kFloat32) {
    return value;
  }
  uint16_t half;
  std::memcpy(&half, bits, 2);
  return dtype == DType::kBFloat16 ? core::bf16_to_float(half) : core::fp16_to_float(half);
}

// One term of a token's sum.
struct Term {
  int rank;
  int64_t row;
  double weight;
};

// Element h of a token's combine result, in the accumulation type of the dtype (fp64 for
// fp64, else fp32). Every sum starts from its first term: ((a + b) + c) ...; with several
// groups each group's sum is rounded to the dtype before the groups are added in order.
template <typename Acc>
Acc element_sum(const std::map<int, std::vector<Term>>& groups, const RowReader& y, int64_t h,
                DType dtype) {
  Acc total = 0;
  bool first_group = true;
  for (const auto& [node, terms] : groups) {
    Acc partial = 0;
    for (size_t i = 0; i < terms.size(); ++i) {
      const Term& term = terms[i];
      const Acc element = static_cast<Acc>(load(y(term.rank, term.row), dtype, h));
      const Acc value = static_cast<Acc>(term.weight) * element;
      partial = i == 0 ? value : partial + value;
    }
    if (groups.size() > 1 && dtype != DType::kFloat64) {
      partial = static_cast<Acc>(round_trip(static_cast<float>(partial), dtype));
    }
    total = first_group ? partial : total + partial;
    first_group = false;
  }
  return total;
}

}  // namespace

namespace {

// The replica choice, written straight from its definition (plan/replica_choice.hpp), one row
// at a time: choice[s][(t, j)] is the rank sender s's row (t, j) goes to.
std::vector<std::map<std::pair<int64_t, int>, int>> choose_copies(
    const std::vector<TensorView>& topk_idx, int64_t num_experts, const ExpertMap& map,
    const Topology& topology, int world_size) {
  std::vector<int64_t> load(static_cast<size_t>(world_size), 0);
  // rows[s][e]: sender s's rows of expert e, in (token, slot) order.
  std::vector<std::map<int64_t, std::vector<std::pair<int64_t, int>>>> rows(
      static_cast<size_t>(world_size));
  for (int s = 0; s < world_size; ++s) {
    const TensorView& idx = topk_idx[static_cast<size_t>(s)];
    for (int64_t t = 0; t < idx.shape[0]; ++t) {
      for (int j = 0; j < static_cast<int>(idx.shape[1]); ++j) {
        const int64_t e = expert_at(idx, t, j);
        if (e >= 0) {
          rows[static_cast<size_t>(s)][e].emplace_back(t, j);
        }
      }
    }
  }
  // taken[s][e][c]: rows of block (s, e) copy c takes; blocks absent here are not placed yet.
  std::vector<std::map<int64_t, std::vector<int64_t>>> taken(static_cast<size_t>(world_size));
  for (int64_t e = 0; e < num_experts; ++e) {
    const std::vector<int> copies = copies_of(e, num_experts, map, world_size);
    for (int s = 0; s < world_size; ++s) {
      const auto n = static_cast<int64_t>(rows[static_cast<size_t>(s)][e].size());
      if (copies.size() == 1) {
        load[static_cast<size_t>(copies[0])] += n;
        taken[static_cast<size_t>(s)][e] = {n};
      }
    }
  }
  for (int phase = 1; phase <= 3; ++phase) {
    for (int64_t e = 0; e < num_experts; ++e) {
      const std::vector<int> copies = copies_of(e, num_experts, map, world_size);
      for (int s = 0; s < world_size; ++s) {
        if (taken[static_cast<size_t>(s)].count(e) != 0) {
          continue;
        }
        auto eligible = [&](int rank) {
          return phase == 3 || (phase == 2 && topology.same_node(rank, s)) ||
                 (phase == 1 && rank == s);
        };
        if (std::none_of(copies.begin(), copies.end(), eligible)) {
          continue;
        }
        std::vector<int64_t> counts(copies.size(), 0);
        for (size_t n = 0; n < rows[static_cast<size_t>(s)][e].size(); ++n) {
          size_t best = copies.size();
          for (size_t c = 0; c < copies.size(); ++c) {
            if (!eligible(copies[c])) continue;
            const auto better = [&](size_t a, size_t b) {
              const int64_t la = load[static_cast<size_t>(copies[a])];
              const int64_t lb = load[static_cast<size_t>(copies[b])];
              return la != lb ? la < lb : copies[a] < copies[b];
            };
            if (best == copies.size() || better(c, best)) best = c;
          }
          ++counts[best];
          ++load[static_cast<size_t>(copies[best])];
        }
        taken[static_cast<size_t>(s)][e] = counts;
      }
    }
  }
  std::vector<std::map<std::pair<int64_t, int>, int>> choice(static_cast<size_t>(world_size));
  for (int s = 0; s < world_size; ++s) {
    for (const auto& [e, block] : rows[static_cast<size_t>(s)]) {
      const std::vector<int> copies = copies_of(e, num_experts, map, world_size);
      const std::vector<int64_t>& counts = taken[static_cast<size_t>(s)][e];
      size_t c = 0;
      int64_t used = 0;
      for (const auto& row : block) {
        while (used == counts[c]) {
          ++c;
          used = 0;
        }
        choice[static_cast<size_t>(s)][row] = copies[c];
        ++used;
      }
    }
  }
  return choice;
}

}  // namespace

ReceiveLayout receive_layout(const std::vector<TensorView>& topk_idx, int64_t num_experts,
                             const ExpertMap& expert_map, const Topology& topology,
                             const RecvLayout& recv_layout) {
  const int world_size = topology.world_size;
  const auto choice = choose_copies(topk_idx, num_experts, expert_map, topology, world_size);
  // Collect (local slot, source, token, slot) per destination, then sort: the definition.
  std::vector<std::vector<std::tuple<int64_t, int, int64_t, int>>> keyed(
      static_cast<size_t>(world_size));
  for (int src = 0; src < world_size; ++src) {
    const TensorView& idx = topk_idx[static_cast<size_t>(src)];
    for (int64_t t = 0; t < idx.shape[0]; ++t) {
      for (int j = 0; j < static_cast<int>(idx.shape[1]); ++j) {
        const int64_t e = expert_at(idx, t, j);
        if (e < 0) {
          continue;
        }
        const int d = choice[static_cast<size_t>(src)].at({t, j});
        keyed[static_cast<size_t>(d)].emplace_back(
            slot_of(e, d, num_experts, expert_map, world_size), src, t, j);
      }
    }
  }
  ReceiveLayout layout;
  const auto ws = static_cast<size_t>(world_size);
  layout.rows.resize(ws);
  layout.tokens_per_expert.resize(ws);
  layout.padded_tokens_per_expert.resize(ws);
  layout.dropped_per_expert.resize(ws);
  layout.recv_local_experts.resize(ws);
  const RowSource padding{-1, 0, 0};
  for (int d = 0; d < world_size; ++d) {
    const auto dd = static_cast<size_t>(d);
    int64_t local_experts = 0;
    for (int64_t e = 0; e < num_experts; ++e) {
      local_experts += holds(d, e, num_experts, expert_map, world_size) ? 1 : 0;
    }
    auto& rows = keyed[dd];
    std::sort(rows.begin(), rows.end());
    const auto local = static_cast<size_t>(local_experts);
    layout.tokens_per_expert[dd].assign(local, 0);
    layout.padded_tokens_per_expert[dd].assign(local, 0);
    layout.dropped_per_expert[dd].assign(local, 0);
    if (recv_layout.kind == RecvLayout::Kind::kRankMajor) {
      std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return std::make_tuple(std::get<1>(a), std::get<2>(a), std::get<3>(a)) <
               std::make_tuple(std::get<1>(b), std::get<2>(b), std::get<3>(b));
      });
      for (const auto& [slot, src, t, j] : rows) {
        ++layout.tokens_per_expert[dd][static_cast<size_t>(slot)];
        ++layout.padded_tokens_per_expert[dd][static_cast<size_t>(slot)];
        layout.rows[dd].push_back({src, t, j});
        layout.recv_local_experts[dd].push_back(static_cast<int32_t>(slot));
      }
      continue;
    }
    // Expert-major blocks, one local expert after another.
    size_t next = 0;
    for (size_t e = 0; e < local; ++e) {
      int64_t in_block = 0;
      for (; next < rows.size() && static_cast<size_t>(std::get<0>(rows[next])) == e; ++next) {
        const auto& [slot, src, t, j] = rows[next];
        if (recv_layout.kind == RecvLayout::Kind::kCapacity && in_block == recv_layout.capacity) {
          ++layout.dropped_per_expert[dd][e];
          continue;
        }
        layout.rows[dd].push_back({src, t, j});
        ++in_block;
      }
      layout.tokens_per_expert[dd][e] = in_block;
      const int64_t block = recv_layout.kind == RecvLayout::Kind::kCapacity
                                ? recv_layout.capacity
                                : (in_block + recv_layout.alignment - 1) / recv_layout.alignment *
                                      recv_layout.alignment;
      layout.padded_tokens_per_expert[dd][e] = block;
      layout.rows[dd].insert(layout.rows[dd].end(), static_cast<size_t>(block - in_block), padding);
    }
  }
  return layout;
}

std::vector<std::byte> dispatch_rank(const ReceiveLayout& layout, const std::vector<TensorView>& x,
                                     int rank) {
  std::vector<std::byte> out;
  const auto row_bytes = static_cast<size_t>(x[0].shape[1]) * dtype_size(x[0].dtype);
  for (const RowSource& source : layout.rows[static_cast<size_t>(rank)]) {
    if (source.rank < 0) {
      out.insert(out.end(), row_bytes, std::byte{0});
      continue;
    }
    const TensorView& src = x[static_cast<size_t>(source.rank)];
    const auto* begin = static_cast<const std::byte*>(src.data) + source.token * row_bytes;
    out.insert(out.end(), begin, begin + row_bytes);
  }
  return out;
}

std::vector<std::vector<std::byte>> dispatch(const ReceiveLayout& layout,
                                             const std::vector<TensorView>& x) {
  std::vector<std::vector<std::byte>> out;
  for (size_t d = 0; d < layout.rows.size(); ++d) {
    out.push_back(dispatch_rank(layout, x, static_cast<int>(d)));
  }
  return out;
}

std::vector<std::byte> combine_rank(const ReceiveLayout& layout, int rank,
                                    const TensorView& topk_idx, const TensorView& weights,
                                    const RowReader& y, DType dtype, int64_t hidden,
                                    const Topology& topology, Dedup dedup) {
  // Where did (rank, token, slot) land?
  std::map<std::pair<int64_t, int>, std::pair<int, int64_t>> landed;
  for (size_t d = 0; d < layout.rows.size(); ++d) {
    for (size_t row = 0; row < layout.rows[d].size(); ++row) {
      const RowSource& s = layout.rows[d][row];
      if (s.rank == rank) {  // padding rows have rank -1
        landed[{s.token, s.slot}] = {static_cast<int>(d), static_cast<int64_t>(row)};
      }
    }
  }
  const size_t elem = dtype_size(dtype);
  auto weight = [&weights](int64_t index) {
    return weights.dtype == DType::kFloat64
               ? static_cast<const double*>(weights.data)[index]
               : static_cast<double>(static_cast<const float*>(weights.data)[index]);
  };
  const int topk = static_cast<int>(topk_idx.shape[1]);
  std::vector<std::byte> out(static_cast<size_t>(topk_idx.shape[0] * hidden) * elem, std::byte{0});
  for (int64_t t = 0; t < topk_idx.shape[0]; ++t) {
    // Terms grouped by node when partials are formed, else one group.
    std::map<int, std::vector<Term>> groups;
    for (int j = 0; j < topk; ++j) {
      const int64_t e = expert_at(topk_idx, t, j);
      if (e < 0) {
        continue;
      }
      const auto at = landed.find({t, j});
      if (at == landed.end()) {
        continue;  // dropped by a capacity: contributes nothing
      }
      const auto [d, row] = at->second;
      const int node = dedup == Dedup::kNode ? topology.node_of(d) : 0;
      groups[node].push_back({d, row, weight(t * topk + j)});
    }
    if (groups.empty()) {
      continue;  // zero row
    }
    std::byte* out_row = out.data() + static_cast<size_t>(t * hidden) * elem;
    for (int64_t h = 0; h < hidden; ++h) {
      if (dtype == DType::kFloat64) {
        store(element_sum<double>(groups, y, h, dtype), dtype, out_row + h * elem);
      } else {
        store(element_sum<float>(groups, y, h, dtype), dtype, out_row + h * elem);
      }
    }
  }
  return out;
}

std::vector<std::vector<std::byte>> combine(const ReceiveLayout& layout,
                                            const std::vector<TensorView>& topk_idx,
                                            const std::vector<TensorView>& weights,
                                            const std::vector<TensorView>& y,
                                            const Topology& topology, Dedup dedup) {
  const DType dtype = y[0].dtype;
  const int64_t hidden = y[0].shape[1];
  const size_t row_bytes = static_cast<size_t>(hidden) * dtype_size(dtype);
  const RowReader rows = [&y, row_bytes](int rank, int64_t row) {
    return static_cast<const std::byte*>(y[static_cast<size_t>(rank)].data) +
           static_cast<size_t>(row) * row_bytes;
  };
  std::vector<std::vector<std::byte>> out;
  for (size_t r = 0; r < topk_idx.size(); ++r) {
    out.push_back(combine_rank(layout, static_cast<int>(r), topk_idx[r], weights[r], rows, dtype,
                               hidden, topology, dedup));
  }
  return out;
}

}  // namespace fusco::reference
