// How streams are cut into chunks (src/core/chunk_steps.hpp), the arithmetic both ends of a
// stream repeat on their own: the CPU engine's staging slots and the GPU's chunked GIN puts,
// whose receivers wait for chunk_of(row) before they fan a row out.

#include "core/chunk_steps.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace fusco::core {
namespace {

TEST(ChunkSteps, RowsPerChunk_AtLeastOneRow) {
  EXPECT_EQ(rows_per_chunk(1 << 20, 14336), 73);  // 1 MiB chunks of DeepSeek bf16 rows
  EXPECT_EQ(rows_per_chunk(14336, 14336), 1);
  EXPECT_EQ(rows_per_chunk(100, 14336), 1);  // a chunk smaller than a row still moves one
  EXPECT_EQ(rows_per_chunk(100, 0), 1);      // empty rows
}

TEST(ChunkSteps, ChunksCoverEveryRowOnce_InOrder_LastOneShorter) {
  for (int64_t rows : {0, 1, 7, 72, 73, 74, 1000}) {
    for (int64_t per_chunk : {1, 3, 73, 2000}) {
      const int64_t chunks = chunk_count(rows, per_chunk);
      std::vector<int64_t> in_chunk(static_cast<size_t>(chunks), 0);
      int64_t previous = 0;
      for (int64_t row = 0; row < rows; ++row) {
        const int64_t chunk = chunk_of(100 + row, 100, per_chunk);  // the stream starts at 100
        ASSERT_GE(chunk, previous) << rows << " rows, " << per_chunk << " per chunk";
        ASSERT_LT(chunk, chunks);
        ++in_chunk[static_cast<size_t>(chunk)];
        previous = chunk;
      }
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t want = c + 1 < chunks ? per_chunk : rows - (chunks - 1) * per_chunk;
        EXPECT_EQ(in_chunk[static_cast<size_t>(c)], want) << "chunk " << c;
        EXPECT_GT(want, 0) << "no empty chunk";
      }
    }
  }
}

}  // namespace
}  // namespace fusco::core
