// Bad input: every rank gets an error that names the argument, the value and the limit, no
// rank hangs, and the group keeps working afterwards. A rank that never arrives makes the
// others time out naming it.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "fusco/fusco.hpp"
#include "testing/rank_threads.hpp"

namespace fusco::testing {
namespace {

constexpr int kWorld = 4;
constexpr int kTopk = 2;
constexpr int64_t kExperts = 8;
constexpr int64_t kTokens = 5;
constexpr int64_t kHidden = 3;

struct Group {
  std::vector<Communicator> comms;
  Group() {
    auto made = Communicator::create_local(kWorld, Topology::nodes_of(kWorld, 2));
    EXPECT_TRUE(made.ok());
    comms = std::move(made).value();
  }
};

PlanOptions options() {
  PlanOptions o;
  o.timeout_ms = 20000;
  return o;
}

std::vector<int32_t> good_ids() { return {0, 7, 1, 6, 2, 5, 3, 4, -1, -1}; }

// A full plan + dispatch + combine on every rank must still succeed.
// Rank r's plan of the good routing.
Result<Plan> good_plan(Group& g, int r) {
  std::vector<int32_t> ids = good_ids();
  return g.comms[static_cast<size_t>(r)].plan(
      TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts, ExpertMap(),
      options());
}

void expect_group_works(Group& g) {
  const auto statuses = run_ranks(kWorld, [&](int r) -> Status {
    Result<Plan> plan = good_plan(g, r);
    FUSCO_RETURN_IF_ERROR(plan.status());
    std::vector<float> x(kTokens * kHidden, 1.0f);
    std::vector<float> recv(static_cast<size_t>(plan.value().num_recv_rows() * kHidden));
    FUSCO_RETURN_IF_ERROR(g.comms[static_cast<size_t>(r)].dispatch(
        plan.value(), TensorView::host(x.data(), DType::kFloat32, {kTokens, kHidden}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.value().num_recv_rows(), kHidden})));
    std::vector<float> w(kTokens * kTopk, 0.5f);
    std::vector<float> out(kTokens * kHidden);
    FUSCO_RETURN_IF_ERROR(g.comms[static_cast<size_t>(r)].combine(
        plan.value(),
        TensorView::host(recv.data(), DType::kFloat32, {plan.value().num_recv_rows(), kHidden}),
        TensorView::host(w.data(), DType::kFloat32, {kTokens, kTopk}),
        TensorView::host(out.data(), DType::kFloat32, {kTokens, kHidden})));
    for (int64_t t = 0; t < 4; ++t) {  // tokens 0..3 have two slots of weight 0.5
      if (out[static_cast<size_t>(t * kHidden)] != 1.0f) {
        return Status(StatusCode::kInternal, "wrong combine value");
      }
    }
    return Status();
  });
  for (const Status& s : statuses) {
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
}

bool contains(const Status& s, const std::string& text) {
  return s.message().find(text) != std::string::npos;
}

TEST(Errors, Plan_ExpertIdOutOfRange_NamesTokenSlotAndValueOnThatRank_OthersToo) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids = good_ids();
    if (r == 1) {
      ids[3] = 99;  // token 1, slot 1
    }
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts, ExpertMap(),
              options())
        .status();
  });
  EXPECT_EQ(statuses[1].code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(statuses[1], "topk_idx[1, 1] = 99 is outside [-1, num_experts=8)"))
      << statuses[1].message();
  for (int r : {0, 2, 3}) {
    EXPECT_EQ(statuses[static_cast<size_t>(r)].code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(statuses[static_cast<size_t>(r)], "rank 1 rejected"));
  }
  expect_group_works(g);
}

TEST(Errors, Plan_IdBelowMinusOne_IsRejected) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int64_t> ids(kTokens * kTopk, 0);
    ids[0] = -2;
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt64, {kTokens, kTopk}), kExperts, ExpertMap(),
              options())
        .status();
  });
  EXPECT_TRUE(contains(statuses[0], "topk_idx[0, 0] = -2")) << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Plan_NumExpertsDiffersAcrossRanks_IsMismatchOnEveryRank) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids = good_ids();
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), r == 2 ? 16 : kExperts,
              ExpertMap(), options())
        .status();
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch);
    EXPECT_TRUE(contains(s, "num_experts differs across ranks: rank 0 has 8, rank 2 has 16"))
        << s.message();
  }
  expect_group_works(g);
}

// Sizes that drive allocations have upper limits: a huge E is an argument error on every
// rank that passes it (never std::bad_alloc or std::length_error out of the library).
TEST(Errors, Plan_HugeNumExperts_IsAnArgumentErrorNamingTheLimit_OnEveryRank) {
  Group g;
  for (const int64_t huge : {ExpertMap::kMaxExperts + kWorld, int64_t{1} << 40, int64_t{1} << 62}) {
    const auto statuses = run_ranks(kWorld, [&](int r) {
      std::vector<int32_t> ids = good_ids();
      return g.comms[static_cast<size_t>(r)]
          .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), huge, ExpertMap(),
                options())
          .status();
    });
    for (const Status& s : statuses) {
      EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.to_string();
      EXPECT_TRUE(
          contains(s, "num_experts = " + std::to_string(huge) + " is outside [1, 2^20 = 1048576]"))
          << s.message();
    }
  }
  expect_group_works(g);
}

TEST(Errors, Plan_TopkDiffersAcrossRanks_IsMismatch) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids = good_ids();
    const int64_t topk = r == 3 ? 1 : kTopk;
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens * kTopk / topk, topk}), kExperts,
              ExpertMap(), options())
        .status();
  });
  EXPECT_EQ(statuses[0].code(), StatusCode::kMismatch);
  EXPECT_TRUE(contains(statuses[0], "topk")) << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Plan_ExpertMapDiffersAcrossRanks_IsMismatch) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids = good_ids();
    std::vector<int32_t> owners = {0, 0, 1, 1, 2, 2, 3, 3};
    if (r == 1) std::swap(owners[0], owners[7]);
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts,
              ExpertMap::from_owners(owners), options())
        .status();
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch);
    EXPECT_TRUE(contains(s, "expert_map fingerprint differs across ranks")) << s.message();
  }
  expect_group_works(g);
}

TEST(Errors, Plan_ContiguousMapNeedsExpertsDivisibleByWorld) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids(kTokens * kTopk, 0);
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), 6, ExpertMap(),
              options())
        .status();
  });
  EXPECT_TRUE(contains(statuses[0], "num_experts 6 is not a multiple of world_size 4"))
      << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Plan_ExplicitMapOwnerOutOfRange) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids(kTokens * kTopk, 0);
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), 3,
              ExpertMap::from_owners({0, 4, 1}), options())
        .status();
  });
  EXPECT_TRUE(contains(statuses[0], "expert_map[1] = 4 is outside [0, world_size=4)"))
      << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Plan_TopkIdxOfFloatDtype_IsRejected) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<float> ids(kTokens * kTopk, 0.0f);
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kFloat32, {kTokens, kTopk}), kExperts,
              ExpertMap(), options())
        .status();
  });
  EXPECT_TRUE(contains(statuses[0], "topk_idx must be int32 or int64, got fp32"))
      << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Plan_BadOptions_NameFieldAndRange) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids = good_ids();
    PlanOptions o = options();
    o.chunk_bytes = 0;
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts, ExpertMap(),
              o)
        .status();
  });
  EXPECT_TRUE(contains(statuses[0], "options.chunk_bytes = 0 is outside [1, 2^30]"))
      << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Plan_BadEnvironmentVariable_NamesIt) {
  Group g;
  ASSERT_EQ(setenv("FUSCO_CHUNK_BYTES", "lots", 1), 0);
  const auto statuses = run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids = good_ids();
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts)
        .status();
  });
  unsetenv("FUSCO_CHUNK_BYTES");
  EXPECT_TRUE(contains(statuses[0], "FUSCO_CHUNK_BYTES='lots' is not an integer"))
      << statuses[0].message();
  expect_group_works(g);
}

// A dispatch of zero rows of the test's shape with `plan`.
Status dispatch_zeros(Communicator& comm, const Plan& plan) {
  std::vector<float> x(kTokens * kHidden);
  std::vector<float> recv(static_cast<size_t>(plan.num_recv_rows() * kHidden));
  return comm.dispatch(
      plan, TensorView::host(x.data(), DType::kFloat32, {kTokens, kHidden}),
      TensorView::host(recv.data(), DType::kFloat32, {plan.num_recv_rows(), kHidden}));
}

// Runs a plan on every rank, then `call` on every rank with that plan.
std::vector<Status> with_plan(Group& g,
                              const std::function<Status(int, Communicator&, const Plan&)>& call) {
  return run_ranks(kWorld, [&](int r) -> Status {
    std::vector<int32_t> ids = good_ids();
    Communicator& comm = g.comms[static_cast<size_t>(r)];
    Result<Plan> plan = comm.plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}),
                                  kExperts, ExpertMap(), options());
    FUSCO_RETURN_IF_ERROR(plan.status());
    return call(r, comm, plan.value());
  });
}

TEST(Errors, Dispatch_WrongTokenCount_OnOneRank_AllFailAndGroupStaysUsable) {
  Group g;
  const auto statuses = with_plan(g, [](int r, Communicator& comm, const Plan& plan) {
    const int64_t tokens = r == 2 ? kTokens + 1 : kTokens;
    std::vector<float> x(static_cast<size_t>(tokens * kHidden));
    std::vector<float> recv(static_cast<size_t>(plan.num_recv_rows() * kHidden));
    return comm.dispatch(
        plan, TensorView::host(x.data(), DType::kFloat32, {tokens, kHidden}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.num_recv_rows(), kHidden}));
  });
  EXPECT_TRUE(contains(statuses[2], "x is [6, 3] fp32 host but must be [5, 3]"))
      << statuses[2].message();
  EXPECT_TRUE(contains(statuses[0], "rank 2 rejected its arguments to dispatch"))
      << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Dispatch_HiddenDiffersAcrossRanks_IsMismatch) {
  Group g;
  const auto statuses = with_plan(g, [](int r, Communicator& comm, const Plan& plan) {
    const int64_t hidden = r == 1 ? kHidden + 1 : kHidden;
    std::vector<float> x(static_cast<size_t>(kTokens * hidden));
    std::vector<float> recv(static_cast<size_t>(plan.num_recv_rows() * hidden));
    return comm.dispatch(
        plan, TensorView::host(x.data(), DType::kFloat32, {kTokens, hidden}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.num_recv_rows(), hidden}));
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch);
    EXPECT_TRUE(contains(s, "hidden size differs across ranks: rank 0 has 3, rank 1 has 4"))
        << s.message();
  }
  expect_group_works(g);
}

TEST(Errors, Dispatch_NotTwoDimensional_IsRejected) {
  Group g;
  const auto statuses = with_plan(g, [](int, Communicator& comm, const Plan& plan) {
    std::vector<float> x(kTokens * kHidden);
    std::vector<float> recv(static_cast<size_t>(plan.num_recv_rows() * kHidden));
    return comm.dispatch(
        plan, TensorView::host(x.data(), DType::kFloat32, {kTokens * kHidden}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.num_recv_rows(), kHidden}));
  });
  EXPECT_TRUE(contains(statuses[0], "x must be 2-D, got ndim 1")) << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Combine_Fp8IsNotOffered) {
  Group g;
  const auto statuses = with_plan(g, [](int, Communicator& comm, const Plan& plan) {
    std::vector<uint8_t> y(static_cast<size_t>(plan.num_recv_rows() * kHidden));
    std::vector<float> w(kTokens * kTopk);
    std::vector<uint8_t> out(kTokens * kHidden);
    return comm.combine(
        plan, TensorView::host(y.data(), DType::kFloat8E4M3, {plan.num_recv_rows(), kHidden}),
        TensorView::host(w.data(), DType::kFloat32, {kTokens, kTopk}),
        TensorView::host(out.data(), DType::kFloat8E4M3, {kTokens, kHidden}));
  });
  EXPECT_EQ(statuses[0].code(), StatusCode::kUnsupported);
  EXPECT_TRUE(contains(statuses[0], "fp8_e4m3")) << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Combine_WeightsOfWrongShape_AreRejected) {
  Group g;
  const auto statuses = with_plan(g, [](int, Communicator& comm, const Plan& plan) {
    std::vector<float> y(static_cast<size_t>(plan.num_recv_rows() * kHidden));
    std::vector<float> w(kTokens * (kTopk + 1));
    std::vector<float> out(kTokens * kHidden);
    return comm.combine(
        plan, TensorView::host(y.data(), DType::kFloat32, {plan.num_recv_rows(), kHidden}),
        TensorView::host(w.data(), DType::kFloat32, {kTokens, kTopk + 1}),
        TensorView::host(out.data(), DType::kFloat32, {kTokens, kHidden}));
  });
  EXPECT_TRUE(contains(statuses[0], "topk_weights is [5, 3] fp32 host but must be [5, 2]"))
      << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Dispatch_PlanOfAnotherGroup_IsRejected) {
  Group g;
  Group other;
  std::vector<Plan> foreign(kWorld);
  run_ranks(kWorld, [&](int r) {
    std::vector<int32_t> ids = good_ids();
    auto plan = other.comms[static_cast<size_t>(r)].plan(
        TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts, ExpertMap(),
        options());
    foreign[static_cast<size_t>(r)] = plan.value();
    return plan.status();
  });
  const auto statuses = run_ranks(kWorld, [&](int r) {
    const Plan& plan = foreign[static_cast<size_t>(r)];
    std::vector<float> x(kTokens * kHidden);
    std::vector<float> recv(static_cast<size_t>(plan.num_recv_rows() * kHidden));
    return g.comms[static_cast<size_t>(r)].dispatch(
        plan, TensorView::host(x.data(), DType::kFloat32, {kTokens, kHidden}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.num_recv_rows(), kHidden}));
  });
  EXPECT_TRUE(contains(statuses[0], "another group")) << statuses[0].message();
  expect_group_works(g);
}

TEST(Errors, Dispatch_DifferentPlansOrCollectivesOnRanks_IsMismatch) {
  Group g;
  const auto statuses = run_ranks(kWorld, [&](int r) -> Status {
    std::vector<int32_t> ids = good_ids();
    Communicator& comm = g.comms[static_cast<size_t>(r)];
    const TensorView idx = TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk});
    Result<Plan> first = comm.plan(idx, kExperts, ExpertMap(), options());
    Result<Plan> second = comm.plan(idx, kExperts, ExpertMap(), options());
    FUSCO_RETURN_IF_ERROR(second.status());
    const Plan& plan = r == 0 ? first.value() : second.value();
    return dispatch_zeros(comm, plan);
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch);
    EXPECT_TRUE(contains(s,
                         "plan number (ranks must pass the same plan) differs across ranks: "
                         "rank 0 has 0, rank 1 has 1"))
        << s.message();
  }
  const auto mixed = with_plan(g, [](int r, Communicator& comm, const Plan& plan) {
    std::vector<float> rows(static_cast<size_t>(plan.num_recv_rows() * kHidden));
    std::vector<float> x(kTokens * kHidden);
    if (r == 2) {
      std::vector<float> w(kTokens * kTopk);
      return comm.combine(
          plan, TensorView::host(rows.data(), DType::kFloat32, {plan.num_recv_rows(), kHidden}),
          TensorView::host(w.data(), DType::kFloat32, {kTokens, kTopk}),
          TensorView::host(x.data(), DType::kFloat32, {kTokens, kHidden}));
    }
    return comm.dispatch(
        plan, TensorView::host(x.data(), DType::kFloat32, {kTokens, kHidden}),
        TensorView::host(rows.data(), DType::kFloat32, {plan.num_recv_rows(), kHidden}));
  });
  for (const Status& s : mixed) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch);
    EXPECT_TRUE(contains(s,
                         "ranks are in different collectives: rank 0 is in dispatch, rank 2 "
                         "is in combine"))
        << s.message();
  }
  expect_group_works(g);
}

// Issue 18, class 7: ranks that make a different number of plan calls end up in different
// collectives (two ranks plan again while two dispatch). Every rank reads the others' call
// correctly and names both collectives (no garbage values), the failed plan call counts on no
// rank, and the group keeps working.
TEST(Errors, RanksInDifferentCollectives_NameBoth_AndTheGroupKeepsWorking) {
  Group g;
  const auto statuses = with_plan(g, [](int r, Communicator& comm, const Plan& plan) {
    std::vector<int32_t> ids = good_ids();
    if (r < 2) {
      return comm
          .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts,
                ExpertMap(), options())
          .status();
    }
    return dispatch_zeros(comm, plan);
  });
  for (const Status& s : statuses) {
    EXPECT_EQ(s.code(), StatusCode::kMismatch) << s.to_string();
    EXPECT_TRUE(contains(s,
                         "ranks are in different collectives: rank 0 is in plan, rank 2 is "
                         "in dispatch"))
        << s.message();
  }
  for (const Communicator& comm : g.comms) EXPECT_TRUE(comm.usable());
  expect_group_works(g);
}

TEST(Errors, CreateLocal_TopologyWorldSizeMismatch) {
  auto made = Communicator::create_local(4, Topology::nodes_of(3, 1));
  ASSERT_FALSE(made.ok());
  EXPECT_TRUE(contains(made.status(), "topology.world_size = 3 differs from world_size = 4"));
  EXPECT_FALSE(Communicator::create_local(0, Topology::single_node(0)).ok());
}

TEST(Errors, RankThatNeverArrives_OthersTimeOutNamingIt_ThenGroupMustBeRecreated) {
  Group g;
  PlanOptions quick = options();
  quick.timeout_ms = 1000;
  const auto statuses = run_ranks(kWorld, [&](int r) -> Status {
    if (r == 3) {
      return Status();  // never calls plan
    }
    std::vector<int32_t> ids = good_ids();
    return g.comms[static_cast<size_t>(r)]
        .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}), kExperts, ExpertMap(),
              quick)
        .status();
  });
  int timeouts = 0;
  for (int r = 0; r < 3; ++r) {
    const Status& s = statuses[static_cast<size_t>(r)];
    EXPECT_TRUE(s.code() == StatusCode::kTimeout || s.code() == StatusCode::kAborted)
        << s.to_string();
    timeouts += s.code() == StatusCode::kTimeout ? 1 : 0;
    EXPECT_TRUE(contains(s, "waiting for rank(s) 3 to arrive")) << s.message();
  }
  EXPECT_GE(timeouts, 1);
  EXPECT_FALSE(g.comms[0].usable());
  std::vector<int32_t> ids = good_ids();
  const Status again = g.comms[3]
                           .plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}),
                                 kExperts, ExpertMap(), quick)
                           .status();
  EXPECT_EQ(again.code(), StatusCode::kAborted);
  EXPECT_TRUE(contains(again, "recreate")) << again.message();
  Group fresh;
  expect_group_works(fresh);
}

TEST(Errors, RankThatSkipsDispatch_OthersTimeOutNamingIt) {
  Group g;
  PlanOptions quick = options();
  quick.timeout_ms = 1000;
  const auto statuses = run_ranks(kWorld, [&](int r) -> Status {
    std::vector<int32_t> ids = good_ids();
    Communicator& comm = g.comms[static_cast<size_t>(r)];
    Result<Plan> plan = comm.plan(TensorView::host(ids.data(), DType::kInt32, {kTokens, kTopk}),
                                  kExperts, ExpertMap(), quick);
    FUSCO_RETURN_IF_ERROR(plan.status());
    if (r == 1) {
      return Status();  // planned, then never dispatches
    }
    std::vector<float> x(kTokens * kHidden);
    std::vector<float> recv(static_cast<size_t>(plan.value().num_recv_rows() * kHidden));
    return comm.dispatch(
        plan.value(), TensorView::host(x.data(), DType::kFloat32, {kTokens, kHidden}),
        TensorView::host(recv.data(), DType::kFloat32, {plan.value().num_recv_rows(), kHidden}));
  });
  for (int r : {0, 2, 3}) {
    const Status& s = statuses[static_cast<size_t>(r)];
    EXPECT_TRUE(s.code() == StatusCode::kTimeout || s.code() == StatusCode::kAborted)
        << s.to_string();
    EXPECT_TRUE(contains(s, "in dispatch waiting for rank(s) 1 to arrive")) << s.message();
  }
  EXPECT_FALSE(g.comms[0].usable());
}

// Communicator::recv_buffer: bad arguments name themselves; a good view has the plan's rows
// and survives until the next call (a larger one may move it).
TEST(Errors, RecvBuffer_BadArgumentsAreNamed_AGoodViewHasThePlansRows) {
  Group g;
  Communicator& comm = g.comms[0];
  Result<TensorView> empty = comm.recv_buffer(Plan(), DType::kFloat32, 4);
  ASSERT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("plan is empty"), std::string::npos);
  std::vector<Plan> plans(kWorld);
  const auto statuses = run_ranks(kWorld, [&](int r) -> Status {
    Result<Plan> plan = good_plan(g, r);
    FUSCO_RETURN_IF_ERROR(plan.status());
    plans[static_cast<size_t>(r)] = plan.value();
    return Status();
  });
  for (const Status& status : statuses) ASSERT_TRUE(status.ok()) << status.to_string();
  for (const int64_t hidden : {int64_t{0}, int64_t{-3}, int64_t{1} << 50}) {
    Result<TensorView> bad = comm.recv_buffer(plans[0], DType::kBFloat16, hidden);
    ASSERT_EQ(bad.status().code(), StatusCode::kInvalidArgument) << hidden;
    EXPECT_NE(bad.status().message().find("hidden = " + std::to_string(hidden)), std::string::npos)
        << bad.status().message();
  }
  Result<TensorView> no_dtype = comm.recv_buffer(plans[0], static_cast<DType>(99), kHidden);
  ASSERT_EQ(no_dtype.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_dtype.status().message().find("dtype 99"), std::string::npos);
  Result<TensorView> view = comm.recv_buffer(plans[0], DType::kFloat32, kHidden);
  ASSERT_TRUE(view.ok()) << view.status().to_string();
  EXPECT_EQ(view.value().dtype, DType::kFloat32);
  EXPECT_EQ(view.value().shape[0], plans[0].num_recv_rows());
  EXPECT_EQ(view.value().shape[1], kHidden);
  EXPECT_NE(view.value().data, nullptr);
  expect_group_works(g);
}

}  // namespace
}  // namespace fusco::testing
