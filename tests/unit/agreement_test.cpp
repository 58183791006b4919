// The one agreement protocol (issue 18): every rank's verdict, named fields and payload, over
// a launcher's byte allgather (what group setup and the NCCL engine use; the host engine's
// calls run the same decision over their transport, tested through the public calls in
// Errors.*). Ranks are threads here, joined by an in-memory allgather.

#include "transport/agreement.hpp"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "testing/memory_allgather.hpp"

namespace fusco::transport {
namespace {

// Runs body(rank, allgather) on `world` threads; returns each rank's status.
std::vector<Status> on_ranks(int world,
                             const std::function<Status(int, const ByteAllgather&)>& body) {
  testing::MemoryAllgather exchange(world);
  std::vector<Status> out(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] { out[static_cast<size_t>(r)] = body(r, exchange.of(r)); });
  }
  for (std::thread& t : threads) t.join();
  return out;
}

std::string show_dtype(int64_t value) { return value == 1 ? "bf16" : "fp32"; }

TEST(Agreement, AllAgree_EveryRankGetsEveryPayloadInRankOrder) {
  std::vector<std::vector<int64_t>> got(3, std::vector<int64_t>(3, -1));
  const std::vector<Status> statuses = on_ranks(3, [&](int rank, const ByteAllgather& gather) {
    const int64_t mine = 100 + rank;
    Proposal proposal;
    proposal.kind = CallKind::kSetup;
    proposal.fields = {{"hidden size", 7, nullptr}};
    proposal.payload = &mine;
    proposal.payload_bytes = sizeof(mine);
    return agree(gather, 3, proposal,
                 reinterpret_cast<std::byte*>(got[static_cast<size_t>(rank)].data()), "setup");
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(statuses[static_cast<size_t>(r)].ok())
        << statuses[static_cast<size_t>(r)].to_string();
    EXPECT_EQ(got[static_cast<size_t>(r)], (std::vector<int64_t>{100, 101, 102}));
  }
}

TEST(Agreement, ASetupStepThatFailsOnOneRank_FailsEveryRankWithItsCodeAndMessage) {
  const std::vector<Status> statuses = on_ranks(3, [](int rank, const ByteAllgather& gather) {
    const Status mine =
        rank == 1 ? Status(StatusCode::kOutOfMemory, "cudaMalloc of 8 GiB failed") : Status();
    return agree_on_step(gather, mine, "buffer allocation");
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kOutOfMemory);
    EXPECT_NE(s.message().find("cudaMalloc of 8 GiB failed"), std::string::npos) << s.message();
  }
  EXPECT_EQ(statuses[0].message(),
            "buffer allocation failed on rank 1: cudaMalloc of 8 GiB failed");
}

TEST(Agreement, ACallsArgumentErrorOnOneRank_IsARejectionNamingItOnTheOthers) {
  const std::vector<Status> statuses = on_ranks(4, [](int rank, const ByteAllgather& gather) {
    Proposal proposal;
    proposal.kind = CallKind::kDispatch;
    proposal.local =
        rank == 2 ? Status(StatusCode::kInvalidArgument, "x is [3, 4] but the plan has 5 tokens")
                  : Status();
    return agree(gather, 4, proposal, nullptr, "dispatch");
  });
  EXPECT_EQ(statuses[2].message(), "x is [3, 4] but the plan has 5 tokens");
  EXPECT_EQ(statuses[0].code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(statuses[0].message(),
            "rank 2 rejected its arguments to dispatch (x is [3, 4] but the plan has 5 tokens); "
            "nothing was done");
}

TEST(Agreement, AFieldThatDiffers_IsAMismatchNamingItAndBothValues_OnEveryRank) {
  const std::vector<Status> statuses = on_ranks(3, [](int rank, const ByteAllgather& gather) {
    Proposal proposal;
    proposal.kind = CallKind::kCombine;
    proposal.fields = {{"hidden size", 16, nullptr}, {"dtype", rank == 2 ? 1 : 0, show_dtype}};
    return agree(gather, 3, proposal, nullptr, "combine");
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch);
    EXPECT_EQ(s.message(), "dtype differs across ranks: rank 0 has fp32, rank 2 has bf16");
  }
}

TEST(Agreement, RanksInDifferentCalls_SaySoInsteadOfMisreadingEachOther) {
  const std::vector<Status> statuses = on_ranks(2, [](int rank, const ByteAllgather& gather) {
    Proposal proposal;
    proposal.kind = rank == 0 ? CallKind::kDispatch : CallKind::kCombine;
    return agree(gather, 2, proposal, nullptr, "a call");
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch);
    EXPECT_NE(s.message().find("rank 0 is in dispatch, rank 1 is in combine"), std::string::npos)
        << s.message();
  }
}

TEST(Agreement, ForeignBytesOrAFailedExchange_AreErrorsNotMisreadings) {
  const auto peer_sends = [](std::string theirs) {
    return [theirs](const std::string& mine) -> Result<std::vector<std::string>> {
      return std::vector<std::string>{mine, theirs};
    };
  };
  const Status garbage = agree_on_step(peer_sends(std::string(12, 'x')), Status(), "NCCL setup");
  EXPECT_EQ(garbage.code(), StatusCode::kInternal);
  EXPECT_NE(garbage.message().find("rank 1 sent no call-start message"), std::string::npos)
      << garbage.message();
  const Status huge = agree_on_step(peer_sends(std::string(100000, 'x')), Status(), "NCCL setup");
  EXPECT_EQ(huge.code(), StatusCode::kMismatch);
  EXPECT_NE(huge.message().find("NCCL setup: rank 1 sent 100000 bytes"), std::string::npos)
      << huge.message();
  const ByteAllgather broken = [](const std::string&) -> Result<std::vector<std::string>> {
    return Status(StatusCode::kTimeout, "rank 3 did not come");
  };
  EXPECT_EQ(agree_on_step(broken, Status(), "NCCL setup").code(), StatusCode::kTimeout);
}

TEST(Agreement, AnAllgatherOfAnotherSize_IsAMismatchNotAnOverflow) {
  const ByteAllgather three = [](const std::string& mine) -> Result<std::vector<std::string>> {
    return std::vector<std::string>{mine, mine, mine};
  };
  int64_t payloads[2] = {-1, -1};
  const int64_t mine = 5;
  Proposal proposal;
  proposal.kind = CallKind::kSetup;
  proposal.payload = &mine;
  proposal.payload_bytes = sizeof(mine);
  const Status got =
      agree(three, 2, proposal, reinterpret_cast<std::byte*>(payloads), "plan upload");
  EXPECT_EQ(got.code(), StatusCode::kMismatch);
  EXPECT_NE(got.message().find("returned 3 entries for a group of 2 ranks"), std::string::npos)
      << got.message();
  EXPECT_EQ(payloads[0], -1);
  const ByteAllgather none = [](const std::string&) -> Result<std::vector<std::string>> {
    return std::vector<std::string>{};
  };
  EXPECT_EQ(agree_on_step(none, Status(), "setup").code(), StatusCode::kMismatch);
}

TEST(Agreement, ALongMessageArrivesCutAtACharacterWithAMark) {
  std::string long_reason = "x = '";
  for (int i = 0; i < 300; ++i) long_reason += "\xc3\xa9";  // é, two bytes each
  long_reason += "'";
  const std::vector<Status> statuses = on_ranks(2, [&](int rank, const ByteAllgather& gather) {
    return agree_on_step(
        gather, rank == 1 ? Status(StatusCode::kInvalidArgument, long_reason) : Status(), "setup");
  });
  const std::string got = statuses[0].message();
  EXPECT_EQ(statuses[0].code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(got.substr(got.size() - 3), "...");
  EXPECT_EQ(static_cast<unsigned char>(got[got.size() - 4]), 0xa9U);  // a whole é before it
  EXPECT_LT(got.size(), 450U);
  EXPECT_EQ(statuses[1].message(), long_reason);  // its own, whole
}

TEST(Agreement, AProposalTooBigForTheMessage_IsAnInternalErrorTheOtherRanksLearn) {
  const std::vector<Status> statuses = on_ranks(2, [](int rank, const ByteAllgather& gather) {
    Proposal proposal;
    proposal.kind = CallKind::kPlan;
    proposal.fields.resize(rank == 0 ? kMaxAgreedFields + 1 : 1);
    return agree(gather, 2, proposal, nullptr, "plan");
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kInternal) << s.to_string();
    EXPECT_NE(s.message().find("21 fields and 0 payload bytes does not fit"), std::string::npos)
        << s.message();
  }
}

}  // namespace
}  // namespace fusco::transport
