// Steps 1, 2 and 4 of planning: the count exchange that fixes every row's place in the
// receiver's expert-major buffer, and the decoding of staged metadata at targets.

#include <algorithm>
#include <cstring>
#include <string>

#include "core/wire.hpp"
#include "plan/planner.hpp"

namespace fusco::plan {

std::vector<Bytes> encode_expert_counts(const core::Layout& layout,
                                        const core::ResolvedExpertMap& map) {
  std::vector<Bytes> out(static_cast<size_t>(map.world_size));
  for (int d = 0; d < map.world_size; ++d) {
    core::WireWriter writer;
    for (int64_t p = map.rank_begin[static_cast<size_t>(d)];
         p < map.rank_begin[static_cast<size_t>(d) + 1]; ++p) {
      writer.put<int64_t>(layout.expert_begin[static_cast<size_t>(p) + 1] -
                          layout.expert_begin[static_cast<size_t>(p)]);
    }
    out[static_cast<size_t>(d)] = writer.take();
  }
  return out;
}

Result<ReceiverOffsets> compute_receiver_offsets(const std::vector<Bytes>& counts_from_sources,
                                                 int64_t num_local_experts,
                                                 const RecvLayout& layout) {
  const size_t sources = counts_from_sources.size();
  const auto local = static_cast<size_t>(num_local_experts);
  std::vector<int64_t> counts(sources * local);
  for (size_t s = 0; s < sources; ++s) {
    core::WireReader reader(counts_from_sources[s]);
    FUSCO_RETURN_IF_ERROR(reader.get_array(counts.data() + s * local, local));
    if (!reader.done()) {
      return Status(StatusCode::kInternal,
                    "expert counts from rank " + std::to_string(s) + " have the wrong size");
    }
  }
  // A sender's count is at most its T * k (< 2^40); totals stay far from overflow.
  constexpr int64_t kMaxCount = int64_t{1} << 40;
  constexpr int64_t kMaxRows = int64_t{1} << 56;
  ReceiverOffsets offsets;
  offsets.tokens_per_expert.assign(local, 0);
  int64_t all_rows = 0;
  for (size_t s = 0; s < sources; ++s) {
    for (size_t e = 0; e < local; ++e) {
      const int64_t count = counts[s * local + e];
      if (count < 0 || count > kMaxCount || all_rows + count > kMaxRows) {
        return Status(StatusCode::kInternal, "expert counts from rank " + std::to_string(s) +
                                                 " hold an impossible value " +
                                                 std::to_string(count));
      }
      all_rows += count;
      offsets.tokens_per_expert[e] += count;
    }
  }
  // Each local expert's block: expert-major blocks follow each other (padded to the
  // alignment, or the capacity); inside a block, sources in rank order. Rank-major: one block
  // per source, in rank order, whose rows the sender orders itself (every start of a source
  // is its block's first row).
  using Kind = RecvLayout::Kind;
  offsets.padded_tokens_per_expert.assign(local, 0);
  offsets.dropped_per_expert.assign(local, 0);
  std::vector<int64_t> cursor(local, 0);
  int64_t total = 0;
  for (size_t e = 0; e < local; ++e) {
    const int64_t rows = offsets.tokens_per_expert[e];
    int64_t block = rows;
    if (layout.kind == Kind::kExpertMajor) {
      block = (rows + layout.alignment - 1) / layout.alignment * layout.alignment;
    } else if (layout.kind == Kind::kCapacity) {
      block = layout.capacity;
      offsets.dropped_per_expert[e] = std::max<int64_t>(0, rows - layout.capacity);
      offsets.tokens_per_expert[e] = rows - offsets.dropped_per_expert[e];
      if (offsets.dropped_per_expert[e] > 0 && offsets.first_overflow < 0) {
        offsets.first_overflow = static_cast<int64_t>(e);
        offsets.first_overflow_rows = rows;
      }
    }
    cursor[e] = total;
    offsets.padded_tokens_per_expert[e] = block;
    if (block > offsets.tokens_per_expert[e]) {
      offsets.padding.emplace_back(total + offsets.tokens_per_expert[e], total + block);
    }
    total += block;
    if (total > kMaxRows) {
      return Status(StatusCode::kInvalidArgument,
                    "the receive layout needs more than 2^56 rows on one rank");
    }
  }
  offsets.num_recv_rows = total;
  offsets.starts.resize(sources);
  int64_t source_block = 0;
  for (size_t s = 0; s < sources; ++s) {
    core::WireWriter writer;
    int64_t from_source = 0;
    for (size_t e = 0; e < local; ++e) {
      writer.put<int64_t>(layout.kind == Kind::kRankMajor ? source_block : cursor[e]);
      cursor[e] += counts[s * local + e];
      from_source += counts[s * local + e];
    }
    source_block += from_source;
    writer.put<int64_t>(offsets.first_overflow);
    writer.put<int64_t>(offsets.first_overflow_rows);
    offsets.starts[s] = writer.take();
  }
  return offsets;
}

Status decode_staged_in(detail::PlanData& plan, int source, const Bytes& metadata,
                        PlanScratch* scratch) {
  if (metadata.empty()) {
    return Status();
  }
  const auto malformed = [source](const char* what) {
    return Status(StatusCode::kInternal,
                  "staged metadata from rank " + std::to_string(source) + " " + what);
  };
  core::WireReader reader(metadata);
  int64_t entries = 0;
  int64_t fanout_rows = 0;
  FUSCO_RETURN_IF_ERROR(reader.get(&entries));
  FUSCO_RETURN_IF_ERROR(reader.get(&fanout_rows));
  // The columns: int32 tokens and int32 fanout counts per entry, then the fanout rows. The
  // counts must fill the message exactly; they are bounded by its size before anything is
  // allocated from them.
  const auto payload = static_cast<int64_t>(metadata.size() - 2 * sizeof(int64_t));
  constexpr auto kRow = static_cast<int64_t>(sizeof(detail::FanoutRow));
  if (entries < 0 || fanout_rows < entries || entries > payload / 8 ||
      fanout_rows > payload / kRow || entries * 8 + fanout_rows * kRow != payload) {
    return malformed("has inconsistent counts");
  }
  detail::StagedIn in = scratch != nullptr ? scratch->take_in() : detail::StagedIn{};
  in.source = static_cast<int32_t>(source);
  const auto count = static_cast<size_t>(entries);
  const std::byte* tokens = metadata.data() + 2 * sizeof(int64_t);
  const std::byte* counts = tokens + count * sizeof(int32_t);
  in.tokens.resize(count);
  if (count > 0) std::memcpy(in.tokens.data(), tokens, count * sizeof(int32_t));
  in.fanout_begin.resize(count + 1);
  in.fanout_begin[0] = 0;
  for (size_t i = 0; i < count; ++i) {
    int32_t rows = 0;
    std::memcpy(&rows, counts + i * sizeof(int32_t), sizeof(rows));
    if (rows < 1 || in.fanout_begin[i] + rows > fanout_rows) {
      return malformed("has a bad fanout count");
    }
    in.fanout_begin[i + 1] = in.fanout_begin[i] + rows;
  }
  if (in.fanout_begin.back() != fanout_rows) {
    return malformed("has fanout counts that miss rows");
  }
  in.fanout.resize(static_cast<size_t>(fanout_rows));
  if (fanout_rows > 0) {
    std::memcpy(in.fanout.data(), counts + count * sizeof(int32_t),
                static_cast<size_t>(fanout_rows) * sizeof(detail::FanoutRow));
  }
  in.partial =
      plan.partial_sums && plan.topology.node_of(source) != plan.topology.node_of(plan.rank);
  in.return_rows = in.partial ? entries : fanout_rows;
  plan.staged_in.push_back(std::move(in));
  return Status();
}

}  // namespace fusco::plan
