// The GPU engine's staged (inter-node) programme run on the CPU: plans of ranks grouped into
// several nodes (rank and node dedup, rail and balanced relays), each rank's staged streams
// turned into the direct kernels' lists from its own plan (gpu/staged_programme.hpp) and
// executed step by step through the very per-row and per-element functions the kernels call
// — gather into send staging, transfer, fan-out at the target; the sources' weight rows
// transferred, relay sums or rows back, the source's combine with the return buffer as one
// more table entry — match the reference bit for bit.

#include "gpu/staged_programme.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "communicator_impl.hpp"
#include "gpu/staged_puts.hpp"
#include "multirank/emulated_kernels.hpp"
#include "multirank/harness.hpp"
#include "multirank/one_node_cases.hpp"

namespace fusco::testing {
namespace {

using Bytes = std::vector<std::byte>;

char* row_of(Bytes& buffer, int64_t row, int64_t row_bytes) {
  return reinterpret_cast<char*>(buffer.data()) + row * row_bytes;
}

// Copies as one warp of a direct kernel does.
void copy_row(char* dst, const char* src, int64_t bytes) {
  for (int lane = 0; lane < 32; ++lane) core::copy_row_part(dst, src, bytes, lane, 32);
}

// The rows of `rows` contiguous rows of `row_bytes`, as a one-entry table.
core::PeerTable table_of(Bytes& rows, int64_t row_bytes) {
  core::PeerTable table{};
  table.base[0] = reinterpret_cast<char*>(rows.data());
  table.pitch[0] = row_bytes;
  return table;
}

// Every rank's staged lists, each built from its own plan, and the copies their blocks make
// when matched as point-to-point messages.
struct GroupStaged {
  std::vector<detail::RankStaged> ranks;
  std::vector<detail::StagedCopy> dispatch;
  std::vector<detail::StagedCopy> back;
};

std::vector<detail::StagedCopy> matched(const std::vector<detail::StagedBlocks>& blocks) {
  Result<std::vector<detail::StagedCopy>> copies = detail::match_blocks(blocks);
  EXPECT_TRUE(copies.ok()) << copies.status().to_string();
  return copies.ok() ? copies.value() : std::vector<detail::StagedCopy>();
}

GroupStaged group_staged(const std::vector<Plan>& plans) {
  GroupStaged group;
  std::vector<detail::StagedBlocks> dispatch, back;
  for (const Plan& plan : plans) {
    Result<detail::RankStaged> built = detail::rank_staged(plan.data());
    EXPECT_TRUE(built.ok()) << built.status().to_string();
    group.ranks.push_back(built.ok() ? built.value() : detail::RankStaged());
    dispatch.push_back(detail::dispatch_blocks(group.ranks.back().streams));
    back.push_back(detail::return_blocks(group.ranks.back().streams));
  }
  group.dispatch = matched(dispatch);
  group.back = matched(back);
  return group;
}

// Rows of every copy from the `from` buffers into the `to` buffers.
void copy_blocks(const std::vector<detail::StagedCopy>& copies, std::vector<Bytes>& from,
                 std::vector<Bytes>& to, int64_t row_bytes) {
  for (const detail::StagedCopy& copy : copies) {
    std::memcpy(row_of(to[static_cast<size_t>(copy.to)], copy.to_begin, row_bytes),
                row_of(from[static_cast<size_t>(copy.from)], copy.from_begin, row_bytes),
                static_cast<size_t>(copy.rows * row_bytes));
  }
}

// Every rank gathers its staged rows of `source` (rows `source_pitch` apart) into its send
// staging; the dispatch blocks move them into their targets' arrival buffers.
std::vector<Bytes> gather_and_move(const GroupStaged& staged, std::vector<Bytes>& source,
                                   int64_t source_pitch, int64_t row_bytes) {
  const size_t world = staged.ranks.size();
  std::vector<Bytes> send(world), arrive(world);
  for (size_t r = 0; r < world; ++r) {
    send[r].resize(static_cast<size_t>(staged.ranks[r].streams.send_rows * row_bytes));
    arrive[r].resize(static_cast<size_t>(staged.ranks[r].streams.arrive_rows * row_bytes));
    const core::PeerTable staging = table_of(send[r], row_bytes);
    for (const core::DirectStore& store : staged.ranks[r].gather) {
      copy_row(core::store_destination(staging, store),
               row_of(source[r], store.token, source_pitch), row_bytes);
    }
  }
  copy_blocks(staged.dispatch, send, arrive, row_bytes);
  return arrive;
}

// Dispatch of one tensor (x, or the companion) through the direct stores and the streams.
void dispatch(const Case& c, const std::vector<Plan>& plans, const GroupStaged& staged,
              std::vector<Bytes>& source, int64_t source_pitch, int64_t row_bytes,
              std::vector<Bytes>& recv) {
  const auto world = static_cast<size_t>(c.world);
  core::PeerTable table{};
  for (size_t r = 0; r < world; ++r) {
    recv[r].assign(static_cast<size_t>(plans[r].num_recv_rows() * row_bytes), std::byte{0x5a});
    for (const auto& [begin, end] : plans[r].data().padding) {
      std::fill(recv[r].begin() + begin * row_bytes, recv[r].begin() + end * row_bytes,
                std::byte{0});
    }
    table.base[r] = reinterpret_cast<char*>(recv[r].data());
    table.pitch[r] = row_bytes;
  }
  for (size_t r = 0; r < world; ++r) {
    for (const detail::DirectRow& row : plans[r].data().direct) {
      copy_row(core::store_destination(table, {row.token, row.rank, row.row}),
               row_of(source[r], row.token, source_pitch), row_bytes);
    }
  }
  std::vector<Bytes> arrive = gather_and_move(staged, source, source_pitch, row_bytes);
  for (size_t r = 0; r < world; ++r) {  // fan-out at the targets
    for (const core::DirectStore& store : staged.ranks[r].fanout) {
      copy_row(core::store_destination(table, store), row_of(arrive[r], store.token, row_bytes),
               row_bytes);
    }
  }
}

std::vector<RankResult> run_staged(const Case& c) {
  const std::vector<Plan> plans = plans_of_case(c);
  const auto world = static_cast<size_t>(c.world);
  const GroupStaged staged = group_staged(plans);
  const int64_t row_bytes = c.hidden * static_cast<int64_t>(dtype_size(c.dtype));
  const int64_t pitch = (c.hidden + c.stride_pad) * static_cast<int64_t>(dtype_size(c.dtype));
  std::vector<RankResult> results;
  std::vector<Bytes> x(world), recv(world), extra(world), extra_recv(world);
  for (size_t r = 0; r < world; ++r) {
    results.push_back(counts_of(plans[r]));
    const int rank = static_cast<int>(r);
    x[r] = strided(x_of(c, rank), c, tokens_of(c, rank));
    if (c.extra_cols > 0) extra[r] = extra_of(c, rank);
  }
  dispatch(c, plans, staged, x, pitch, row_bytes, recv);
  if (c.extra_cols > 0)
    dispatch(c, plans, staged, extra, c.extra_cols * 4, c.extra_cols * 4, extra_recv);
  for (size_t r = 0; r < world; ++r) {
    results[r].recv = recv[r];
    results[r].extra_recv = extra_recv[r];
  }
  if (!dtype_supports_combine(c.dtype)) return results;

  const auto type = static_cast<core::RowType>(c.dtype);
  ExpertOutputs outputs = expert_outputs_of(c, plans);
  const core::PeerTable& expert_out = outputs.table;
  const int64_t weight_bytes = c.topk * int64_t{4};  // the sources' weight rows travel too
  const std::vector<Bytes> weights =
      gather_and_move(staged, outputs.weights, weight_bytes, weight_bytes);
  std::vector<Bytes> relay_return(world), returned(world);
  for (size_t r = 0; r < world; ++r) {  // every target's return rows
    const detail::RankStaged& mine = staged.ranks[r];
    relay_return[r].resize(static_cast<size_t>(mine.streams.relay_return_rows * row_bytes));
    returned[r].resize(static_cast<size_t>(mine.streams.return_rows * row_bytes));
    const auto* w = reinterpret_cast<const float*>(weights[r].data());
    for (int64_t i = 0; i < mine.streams.relay_return_rows; ++i) {
      for (int64_t h = 0; h < c.hidden; ++h) {
        core::store_element(
            row_of(relay_return[r], i, row_bytes), h,
            core::combine_token_element(expert_out, mine.relay_terms.data(),
                                        mine.group_term_begin.data() + i, 1, w, c.topk,
                                        mine.weight_rows[static_cast<size_t>(i)], h, type),
            type);
      }
    }
  }
  copy_blocks(staged.back, relay_return, returned, row_bytes);  // back to the sources
  for (size_t r = 0; r < world; ++r) {                          // every source's own combine
    core::PeerTable table = expert_out;
    table.base[world] = reinterpret_cast<char*>(returned[r].data());
    table.pitch[world] = row_bytes;
    results[r].out =
        combine_as_the_kernel(c, plans[r].data(), table, staged.ranks[r].terms, outputs.weights[r]);
  }
  return results;
}

::testing::AssertionResult staged_matches_reference(Case c) {
  if (c.dtype == DType::kFloat64) c.dtype = DType::kInt64;  // the GPU sums fp32/fp16/bf16
  c.direct_access = true;
  // combine_buffer_bytes stays as drawn: the GPU engine keeps every returned row at once (its
  // return buffer is whole), which the plan's rows describe however many rounds it allows.
  const std::vector<RankResult> got = run_staged(c);
  return every_rank_matches(c, got);
}

TEST(StagedProgramme, RandomCases_MatchReferenceBitForBit) {
  for (uint64_t seed = 1; seed <= 120; ++seed) {
    ASSERT_TRUE(staged_matches_reference(random_case(seed))) << "seed " << seed;
  }
}

TEST(StagedProgramme, TwoNodesOfFour_EveryDedupAndRelayPolicy) {
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    for (RelayPolicy relay : {RelayPolicy::kRailAligned, RelayPolicy::kBalanced}) {
      Case c;
      c.world = 8;
      c.ranks_per_node = 4;
      c.experts = 32;
      c.topk = 8;
      c.hidden = 64;
      c.dedup = dedup;
      c.relay = relay;
      EXPECT_TRUE(staged_matches_reference(c))
          << "dedup " << dedup_name(dedup) << " relay " << relay_policy_name(relay);
    }
  }
}

TEST(StagedProgramme, OddWorldUnevenNodes_HotExpert_EmptyRanks) {
  Case c;
  c.world = 5;
  c.ranks_per_node = 2;  // nodes of 2, 2 and 1
  c.experts = 10;
  c.tokens = {0, 24, 24, 0, 24};
  for (int r = 0; r < c.world; ++r) c.ids.push_back(std::vector<int64_t>(24 * 4, 7));
  c.ids[0].clear();
  c.ids[3].clear();
  EXPECT_TRUE(staged_matches_reference(c));
}

// Every rank's staged lists of `c`'s plans, and their transfers.
GroupStaged staged_of(const Case& c) { return group_staged(plans_of_case(c)); }

TEST(StagedProgramme, NodeDedup_OneEntryPerTokenAndNode_OnePartialEach) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.experts = 8;  // rank 2 holds 4 and 5, rank 3 holds 6 and 7: node 1
  c.topk = 3;
  c.tokens = {1, 0, 0, 0};
  c.ids = {{4, 6, 7}, {}, {}, {}};  // rank 0's token: three slots on node 1
  c.dedup = Dedup::kNode;
  const GroupStaged staged = staged_of(c);
  ASSERT_EQ(staged.dispatch.size(), 1u);
  const detail::StagedCopy& moved = staged.dispatch[0];
  EXPECT_EQ(moved.from, 0);
  EXPECT_EQ(moved.to, 2);  // rail-aligned: node 1's rank of local index 0
  EXPECT_EQ(moved.rows, 1);
  ASSERT_EQ(staged.back.size(), 1u);
  EXPECT_EQ(staged.back[0].rows, 1);  // one partial sum
  const detail::RankStaged& relay = staged.ranks[2];
  EXPECT_EQ(relay.fanout.size(), 3u);  // rows of experts 4, 6 and 7
  EXPECT_EQ(relay.group_term_begin, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(relay.weight_rows, (std::vector<int32_t>{0}));  // the entry's arrived weights
  EXPECT_EQ(staged.ranks[0].gather.size(), 1u);
  EXPECT_TRUE(staged.ranks[1].gather.empty() && staged.ranks[3].fanout.empty());
  EXPECT_TRUE(staged_matches_reference(c));
  c.dedup = Dedup::kRank;  // to each rank once, every row back unreduced
  const GroupStaged by_rank = staged_of(c);
  ASSERT_EQ(by_rank.back.size(), 2u);
  EXPECT_EQ(by_rank.back[0].rows + by_rank.back[1].rows, 3);
  EXPECT_TRUE(staged_matches_reference(c));
}

TEST(StagedProgramme, EveryStreamIsOneMessageEachWay_BetweenNodes) {
  Case c;
  c.world = 6;
  c.ranks_per_node = 2;
  c.experts = 12;
  c.topk = 4;
  c.dedup = Dedup::kNode;
  const GroupStaged staged = staged_of(c);
  size_t streams_in = 0;
  for (const detail::RankStaged& rank : staged.ranks) streams_in += rank.streams.in.size();
  EXPECT_EQ(staged.dispatch.size(), streams_in);
  EXPECT_EQ(staged.back.size(), streams_in);
  for (const detail::StagedCopy& moved : staged.dispatch) {
    EXPECT_NE(moved.from / 2, moved.to / 2) << "staged streams leave their node";
  }
}

// Every rank's dispatch blocks of `c`'s plans.
std::vector<detail::StagedBlocks> dispatch_blocks_of(const Case& c) {
  std::vector<detail::StagedBlocks> blocks;
  for (const detail::RankStaged& rank : staged_of(c).ranks) {
    blocks.push_back(detail::dispatch_blocks(rank.streams));
  }
  return blocks;
}

::testing::AssertionResult internal_error_naming(const std::vector<detail::StagedBlocks>& blocks,
                                                 const std::string& words) {
  Result<std::vector<detail::StagedCopy>> copies = detail::match_blocks(blocks);
  if (copies.ok()) return ::testing::AssertionFailure() << "matched";
  if (copies.status().code() != StatusCode::kInternal ||
      copies.status().message().find(words) == std::string::npos) {
    return ::testing::AssertionFailure() << copies.status().to_string();
  }
  return ::testing::AssertionSuccess();
}

TEST(StagedProgramme, BlocksThatDoNotMatch_AreAnInternalErrorNamingBothRanks) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.experts = 8;
  const std::vector<detail::StagedBlocks> blocks = dispatch_blocks_of(c);
  ASSERT_FALSE(blocks[0].sends.empty());
  const int32_t target = blocks[0].sends.front().peer;
  const std::string pair = "from rank 0 to rank " + std::to_string(target);
  std::vector<detail::StagedBlocks> bigger = blocks;
  bigger[0].sends.front().rows += 1;
  EXPECT_TRUE(internal_error_naming(bigger, pair + ": "));
  std::vector<detail::StagedBlocks> unsent = blocks;
  unsent[0].sends.erase(unsent[0].sends.begin());
  EXPECT_TRUE(internal_error_naming(unsent, pair + ": the receiver waits for rows never sent"));
  std::vector<detail::StagedBlocks> unreceived = blocks;
  unreceived[static_cast<size_t>(target)].recvs.clear();
  EXPECT_TRUE(internal_error_naming(unreceived, pair + ": the receiver posts no receive"));
}

TEST(StagedProgramme, TwoMessagesBetweenOnePair_MatchInOrder) {
  std::vector<detail::StagedBlocks> blocks(2);
  blocks[0].sends = {{1, 0, 3}, {1, 3, 5}};
  blocks[1].recvs = {{0, 10, 3}, {0, 20, 5}};
  Result<std::vector<detail::StagedCopy>> copies = detail::match_blocks(blocks);
  ASSERT_TRUE(copies.ok()) << copies.status().to_string();
  ASSERT_EQ(copies.value().size(), 2u);
  EXPECT_EQ(copies.value()[0].to_begin, 10);
  EXPECT_EQ(copies.value()[1].from_begin, 3);
  EXPECT_EQ(copies.value()[1].to_begin, 20);
  std::swap(blocks[1].recvs[0], blocks[1].recvs[1]);  // sizes no longer meet in order
  EXPECT_TRUE(internal_error_naming(blocks, "3 rows sent but 5 received"));
}

TEST(StagedProgramme, SeventyTwoRanks_LeaveNoTableEntryForTheReturnBuffer) {
  Case c;
  c.world = 72;
  c.ranks_per_node = 8;
  c.experts = 72;
  c.tokens_each = 2;
  const std::vector<Plan> plans = plans_of_case(c);
  Result<detail::RankStaged> built = detail::rank_staged(plans[0].data());
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kUnsupported);
  EXPECT_NE(built.status().message().find("world_size = 72"), std::string::npos)
      << built.status().message();
}

// Every rank's plan of `c` made for the GPU engines (plan_for_gpus) by ranks whose transport
// cannot reach each other's memory (like processes over shared memory or UCX).
std::vector<Plan> gpu_plans_over_processes(const Case& c) {
  auto comms = Communicator::Impl::create_local(
      c.world, Topology::nodes_of(c.world, c.ranks_per_node), /*direct_access=*/false);
  EXPECT_TRUE(comms.ok()) << comms.status().to_string();
  if (!comms.ok()) return std::vector<Plan>(static_cast<size_t>(c.world));
  return plans_by(c, comms.value(), [&c](Communicator& comm, const TensorView& idx) {
    return Communicator::Impl::plan_for_gpus(comm, idx, c.experts, map_of(c), options_of(c));
  });
}

// The NCCL engine plans over its host communicator (processes): its plans must store rows
// inside a node directly and relay between nodes, as if the ranks were threads.
TEST(StagedProgramme, PlansForGpusOverProcesses_AreTheDirectPeersPlans) {
  for (Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
    Case c;
    c.world = 6;
    c.ranks_per_node = 3;
    c.experts = 12;
    c.dedup = dedup;
    const std::vector<Plan> direct = plans_of_case(c);
    const std::vector<Plan> over_processes = gpu_plans_over_processes(c);
    for (size_t r = 0; r < direct.size(); ++r) {
      const detail::PlanData& want = direct[r].data();
      const detail::PlanData& got = over_processes[r].data();
      ASSERT_TRUE(got.direct_peers) << "rank " << r;
      EXPECT_EQ(got.direct.size(), want.direct.size()) << "rank " << r;
      EXPECT_EQ(got.staged_out.size(), want.staged_out.size()) << "rank " << r;
      EXPECT_EQ(got.partial_sums, want.partial_sums) << "rank " << r;
      EXPECT_TRUE(got.forward_out.empty() && got.forward_in.empty()) << "rank " << r;
      EXPECT_EQ(got.num_recv_rows, want.num_recv_rows) << "rank " << r;
      for (const detail::DirectRow& row : got.direct) {
        EXPECT_EQ(row.rank / 3, static_cast<int32_t>(r) / 3) << "direct rows stay in the node";
      }
    }
    const GroupStaged want = group_staged(direct);
    const GroupStaged got = group_staged(over_processes);
    EXPECT_EQ(got.dispatch.size(), want.dispatch.size()) << dedup_name(dedup);
    for (size_t r = 0; r < want.ranks.size(); ++r) {
      EXPECT_EQ(got.ranks[r].gather.size(), want.ranks[r].gather.size());
      EXPECT_EQ(got.ranks[r].fanout.size(), want.ranks[r].fanout.size());
      EXPECT_EQ(got.ranks[r].weight_rows, want.ranks[r].weight_rows);
    }
  }
}

// Every rank's put destinations once the offsets went round (each message delivered to the
// peer it names); they must be where the matched blocks land.
TEST(StagedProgramme, PutDestinations_AreWhereTheMatchedBlocksLand) {
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    Case c = random_case(seed);
    c.direct_access = true;
    const GroupStaged staged = staged_of(c);
    const size_t world = staged.ranks.size();
    std::vector<std::vector<detail::PutOffsets>> sent(world);
    for (size_t r = 0; r < world; ++r) sent[r] = detail::offsets_to_send(staged.ranks[r].streams);
    for (size_t r = 0; r < world; ++r) {
      std::vector<detail::PutOffsets> received;
      for (const detail::PutOffsets& mine : sent[r]) {  // the answer of each peer written to
        for (detail::PutOffsets theirs : sent[static_cast<size_t>(mine.peer)]) {
          if (theirs.peer != static_cast<int32_t>(r)) continue;
          theirs.peer = mine.peer;  // as received: from that peer
          received.push_back(theirs);
        }
      }
      const detail::StagedStreams& streams = staged.ranks[r].streams;
      Result<detail::PutDestinations> got = detail::put_destinations(streams, received);
      ASSERT_TRUE(got.ok()) << "seed " << seed << ": " << got.status().to_string();
      const auto landing = [&](const std::vector<detail::StagedCopy>& copies, int32_t to) {
        for (const detail::StagedCopy& copy : copies) {
          if (copy.from == static_cast<int32_t>(r) && copy.to == to) return copy.to_begin;
        }
        return int64_t{-1};
      };
      for (size_t i = 0; i < streams.out.size(); ++i) {
        if (streams.out[i].entries == 0) continue;
        EXPECT_EQ(got.value().out_arrive[i], landing(staged.dispatch, streams.out[i].target))
            << "seed " << seed << " rank " << r;
      }
      for (size_t i = 0; i < streams.in.size(); ++i) {
        if (streams.in[i].return_rows == 0) continue;
        EXPECT_EQ(got.value().in_return[i], landing(staged.back, streams.in[i].source))
            << "seed " << seed << " rank " << r;
      }
    }
  }
}

TEST(StagedProgramme, PutDestinations_WithoutThePeersAnswer_AreAnInternalError) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 2;
  c.experts = 8;
  const GroupStaged staged = staged_of(c);
  const detail::StagedStreams& streams = staged.ranks[0].streams;
  ASSERT_FALSE(streams.out.empty());
  Result<detail::PutDestinations> got = detail::put_destinations(streams, {});
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kInternal);
  EXPECT_NE(got.status().message().find("rank " + std::to_string(streams.out[0].target) +
                                        " sent no arrival row"),
            std::string::npos)
      << got.status().message();
}

TEST(StagedProgramme, OneNode_HasNoStreams) {
  Case c;
  c.world = 4;
  c.ranks_per_node = 4;
  const GroupStaged staged = staged_of(c);
  EXPECT_TRUE(staged.dispatch.empty() && staged.back.empty());
  for (const detail::RankStaged& rank : staged.ranks) {
    EXPECT_TRUE(rank.gather.empty() && rank.fanout.empty() && rank.streams.in.empty());
  }
}

}  // namespace
}  // namespace fusco::testing
