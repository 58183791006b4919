// The counts GIN's puts are awaited by (detail::PutPacing), kept by every rank on its own:
// over many calls whose streams come and go at random (a pair of ranks with a stream in one
// call, none in the next, a longer one later; chunk sizes changing between calls), each
// sender's wait for acknowledgements and each receiver's wait for data must ask for exactly
// what the other end has signalled so far — never less (a region overwritten before it was
// read, rows read before they arrived) and never more (a wait that runs out).

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "gpu/staged_puts.hpp"

namespace fusco::detail {
namespace {

TEST(PutPacing, BothEndsCountAlike_AsStreamsComeAndGo) {
  constexpr int kWorld = 5;
  constexpr int kSteps = 4;
  std::mt19937_64 random(7);
  std::vector<PutPacing> ranks(kWorld, PutPacing(kSteps, kWorld));
  // What has really been signalled: data[step][t][s] chunks put by s into t's region,
  // acks[step][s][t] acknowledgements t sent to s.
  std::vector<std::vector<std::vector<uint64_t>>> data(
      kSteps, std::vector<std::vector<uint64_t>>(kWorld, std::vector<uint64_t>(kWorld, 0)));
  auto acks = data;
  for (int call = 0; call < 200; ++call) {
    const int64_t chunk_rows = 1 + static_cast<int64_t>(random() % 5);
    for (int step = 0; step < kSteps; ++step) {
      for (int s = 0; s < kWorld; ++s) {
        for (int t = 0; t < kWorld; ++t) {
          if (s == t || random() % 3 == 0) continue;  // no stream between them this call
          const int64_t entries = 1 + static_cast<int64_t>(random() % 9);
          const int64_t chunks = (entries + chunk_rows - 1) / chunk_rows;
          const size_t st = static_cast<size_t>(step);
          // The sender may put once t acknowledged all its earlier blocks of this step...
          ASSERT_EQ(ranks[static_cast<size_t>(s)].next_block(step, t),
                    acks[st][static_cast<size_t>(s)][static_cast<size_t>(t)])
              << "call " << call << ", step " << step << ", " << s << " -> " << t;
          // ...and the receiver's chunk c has come once s's signal passed before + c + 1.
          ASSERT_EQ(ranks[static_cast<size_t>(t)].next_arrival(step, s, chunks),
                    data[st][static_cast<size_t>(t)][static_cast<size_t>(s)])
              << "call " << call << ", step " << step << ", " << s << " -> " << t;
          data[st][static_cast<size_t>(t)][static_cast<size_t>(s)] += static_cast<uint64_t>(chunks);
          acks[st][static_cast<size_t>(s)][static_cast<size_t>(t)] += 1;  // t acknowledges
        }
      }
    }
  }
}

TEST(PutPacing, StepsAndPeersAreCountedApart) {
  PutPacing rank(2, 3);
  EXPECT_EQ(rank.next_block(0, 1), 0u);
  EXPECT_EQ(rank.next_block(0, 1), 1u);
  EXPECT_EQ(rank.next_block(1, 1), 0u);  // another step
  EXPECT_EQ(rank.next_block(0, 2), 0u);  // another peer
  EXPECT_EQ(rank.next_arrival(0, 2, 4), 0u);
  EXPECT_EQ(rank.next_arrival(0, 2, 1), 4u);
  EXPECT_EQ(rank.next_arrival(1, 2, 1), 0u);
}

}  // namespace
}  // namespace fusco::detail
