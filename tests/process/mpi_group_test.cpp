// Ranks as MPI processes (run under mpirun by ctest with several process counts, ranks per
// node and transports: shm, UCX over shared memory, UCX over tcp): fusco::create_from_mpi
// joins them, and every routing case of the multi-rank suite,
// fitted to the MPI world, gives each rank the reference's results bit for bit; repeated runs
// are identical.

#include <gtest/gtest.h>
#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "fusco/mpi.hpp"
#include "multirank/harness.hpp"

namespace fusco::testing {
namespace {

int mpi_rank() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

int mpi_world() {
  int world = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &world);
  return world;
}

// Ranks per node for this run: FUSCO_TEST_RANKS_PER_NODE (set by ctest), default 1.
int ranks_per_node() {
  const char* text = std::getenv("FUSCO_TEST_RANKS_PER_NODE");  // NOLINT(concurrency-mt-unsafe)
  return text != nullptr ? std::atoi(text) : 1;
}

// The transport under test: FUSCO_TEST_TRANSPORT (set by ctest), default shm.
std::string transport() {
  const char* text = std::getenv("FUSCO_TEST_TRANSPORT");  // NOLINT(concurrency-mt-unsafe)
  return text != nullptr ? text : "shm";
}

// `c` fitted to this MPI world.
Case fit_to_world(const Case& c) { return fitted_to(c, mpi_world(), ranks_per_node()); }

// Every rank's verdict, agreed over MPI, so all ranks pass or fail the test together.
bool all_ranks(bool mine) {
  int ok = mine ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return ok == 1;
}

class MpiGroup : public ::testing::Test {
 protected:
  void SetUp() override {
    Result<Communicator> made =
        create_from_mpi(MPI_COMM_WORLD, ranks_per_node(), 30000, transport());
    ASSERT_TRUE(made.ok()) << made.status().to_string();
    comm_.emplace(std::move(made).value());
  }
  std::optional<Communicator> comm_;
};

TEST_F(MpiGroup, JoinsEveryProcessWithItsMpiRank) {
  EXPECT_EQ(comm_->rank(), mpi_rank());
  EXPECT_EQ(comm_->world_size(), mpi_world());
  EXPECT_EQ(comm_->topology().node_width(), std::min(ranks_per_node(), mpi_world()));
}

TEST_F(MpiGroup, RandomizedRoutingCases_MatchReferenceBitForBit) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    const Case c = fit_to_world(random_case(seed));
    const RankResult got = run_rank(c, *comm_, mpi_rank());
    const ::testing::AssertionResult verdict = matches_expected(c, expected_of(c), mpi_rank(), got);
    EXPECT_TRUE(verdict);
    ASSERT_TRUE(all_ranks(verdict)) << "some rank failed seed " << seed;
  }
}

TEST_F(MpiGroup, DeepSeekShapeAndHotExpert_MatchReference) {
  Case wide;
  wide.topk = 8;
  wide.experts = 256;
  wide.hidden = 7168;
  wide.tokens_each = 24;
  wide.chunk_bytes = 1 << 16;
  Case hot;
  hot.topk = 1;
  hot.masked = 0.0;
  hot.masked_token = 0.0;
  hot.experts = 8;
  hot.ids.assign(static_cast<size_t>(mpi_world()), std::vector<int64_t>(24, 0));
  for (Case c : {wide, hot}) {
    c = fit_to_world(c);
    const RankResult got = run_rank(c, *comm_, mpi_rank());
    EXPECT_TRUE(matches_expected(c, expected_of(c), mpi_rank(), got));
  }
}

TEST_F(MpiGroup, EdgeRoutingsOfTheFoundationSuite_MatchReference) {
  const int world = mpi_world();
  std::vector<Case> cases;
  Case masked;  // every slot unused: nothing moves, outputs are zero
  masked.masked = 1.0;
  cases.push_back(masked);
  Case masked_tokens;  // half the tokens have no slot at all
  masked_tokens.masked = 0.0;
  masked_tokens.masked_token = 0.5;
  cases.push_back(masked_tokens);
  Case duplicates;  // the same expert twice (and three times) in one token
  duplicates.topk = 3;
  duplicates.experts = 2 * world;
  duplicates.ids.assign(static_cast<size_t>(world), {1, 1, 0, 2, 2, 2, -1, 1, 1});
  duplicates.tokens.assign(static_cast<size_t>(world), 3);
  cases.push_back(duplicates);
  Case zero_tokens;  // T = 0 on every other rank
  for (int r = 0; r < world; ++r) {
    zero_tokens.tokens.push_back(r % 2 == 0 ? 0 : 17);
  }
  cases.push_back(zero_tokens);
  Case one_expert;  // one expert in the whole group, on the last rank
  one_expert.topk = 2;
  one_expert.experts = 1;
  one_expert.owners = {world - 1};
  cases.push_back(one_expert);
  Case many_experts;  // 512 experts, top-8
  many_experts.topk = 8;
  many_experts.experts = 512;
  many_experts.hidden = 128;
  many_experts.tokens_each = 64;
  cases.push_back(many_experts);
  Case hidden_one;  // H = 1, fp16
  hidden_one.hidden = 1;
  hidden_one.dtype = DType::kFloat16;
  cases.push_back(hidden_one);
  for (uint64_t i = 0; i < cases.size(); ++i) {
    Case c = fit_to_world(cases[i]);
    c.seed = 500 + i;
    for (const Dedup dedup : {Dedup::kNone, Dedup::kRank, Dedup::kNode}) {
      c.dedup = dedup;
      const RankResult got = run_rank(c, *comm_, mpi_rank());
      EXPECT_TRUE(matches_expected(c, expected_of(c), mpi_rank(), got)) << "case " << i;
    }
  }
}

TEST_F(MpiGroup, LargeMessages_PlanningMetadataAndManyChunks_MatchReference) {
  // Planning messages of hundreds of KB (several fragments, rendezvous on UCX) and chunks of
  // every size up to a full slot.
  Case c;
  c.topk = 8;
  c.experts = 64;
  c.hidden = 100;
  c.tokens_each = 1500;
  c.dtype = DType::kFloat32;
  c.chunk_bytes = 1 << 20;
  c.dedup = Dedup::kNone;
  c = fit_to_world(c);
  const RankResult got = run_rank(c, *comm_, mpi_rank());
  EXPECT_TRUE(matches_expected(c, expected_of(c), mpi_rank(), got));
}

TEST_F(MpiGroup, RepeatedRuns_AreBitIdentical) {
  const Case c = fit_to_world(random_case(7));
  const RankResult first = run_rank(c, *comm_, mpi_rank());
  for (int again = 0; again < 3; ++again) {
    const RankResult next = run_rank(c, *comm_, mpi_rank());
    ASSERT_TRUE(next.status.ok()) << next.status.to_string();
    EXPECT_EQ(next.recv, first.recv);
    EXPECT_EQ(next.out, first.out);
  }
}

// create_from_mpi's verdicts go through the one agreement (Communicator::agree_on_step): a
// process with a bad argument still takes part, so every process fails naming it instead of
// waiting in an MPI collective forever.
TEST(MpiCreate, ABadTransportOnOneProcess_FailsEveryProcessNamingIt) {
  const int last = mpi_world() - 1;
  const Result<Communicator> made = create_from_mpi(MPI_COMM_WORLD, ranks_per_node(), 30000,
                                                    mpi_rank() == last ? "pigeon" : transport());
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kInvalidArgument);
  const std::string why = made.status().message();
  EXPECT_NE(why.find("transport = 'pigeon' is not one of shm, ucx"), std::string::npos) << why;
  if (mpi_rank() != last) {
    EXPECT_NE(why.find("failed on rank " + std::to_string(last)), std::string::npos) << why;
  }
  EXPECT_TRUE(all_ranks(true));  // and every process got here
}

TEST(MpiCreate, TransportsThatDiffer_AreAMismatchOnEveryProcess) {
  if (mpi_world() < 2) GTEST_SKIP() << "needs two processes";
  const Result<Communicator> made =
      create_from_mpi(MPI_COMM_WORLD, ranks_per_node(), 30000, mpi_rank() == 0 ? "ucx" : "shm");
  ASSERT_FALSE(made.ok());
  EXPECT_EQ(made.status().code(), StatusCode::kMismatch) << made.status().to_string();
}

}  // namespace
}  // namespace fusco::testing

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (fusco::testing::mpi_rank() != 0) {  // one rank reports in full, the others failures only
    GTEST_FLAG_SET(brief, true);
  }
  const int failed = RUN_ALL_TESTS();
  MPI_Finalize();
  return failed;
}
