// Soak: many random dispatch/combine cases in a row, every result checked bit for bit against
// the reference, resident memory measured along the way and required to stay flat.
// FUSCO_SOAK_ITERATIONS sets the count (CI runs a few hundred; docs/benchmarks.md records a
// 10,000-iteration run).

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "multirank/harness.hpp"

namespace fusco::testing {
namespace {

int64_t iterations() {
  const char* text = std::getenv("FUSCO_SOAK_ITERATIONS");  // NOLINT(concurrency-mt-unsafe)
  return text != nullptr ? std::atoll(text) : 300;
}

// Resident set size of this process, MB.
double resident_mb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0;
  long resident = 0;
  statm >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

TEST(Soak, RandomCases_AllMatchReference_ResidentMemoryStaysFlat) {
  const int64_t total = iterations();
  const int64_t warm = std::max<int64_t>(1, total / 10);
  double rss_after_warmup = 0;
  double rss_peak = 0;
  for (int64_t i = 0; i < total; ++i) {
    const Case c = random_case(100000 + static_cast<uint64_t>(i));
    ASSERT_TRUE(matches_reference(c)) << "iteration " << i;
    const double rss = resident_mb();
    if (i + 1 == warm) {
      rss_after_warmup = rss;
    }
    rss_peak = std::max(rss_peak, rss);
    if ((i + 1) % std::max<int64_t>(1, total / 10) == 0) {
      std::printf("soak: %lld/%lld iterations, resident %.1f MB\n", static_cast<long long>(i + 1),
                  static_cast<long long>(total), rss);
      std::fflush(stdout);
    }
  }
  const double rss_end = resident_mb();
  std::printf(
      "soak: %lld iterations, resident after warm-up %.1f MB, at the end %.1f MB, "
      "peak %.1f MB\n",
      static_cast<long long>(total), rss_after_warmup, rss_end, rss_peak);
#if defined(__SANITIZE_ADDRESS__)
  // ASan holds freed memory in its quarantine (up to 256 MB): resident memory grows by
  // design; LeakSanitizer checks for leaks at exit instead.
  std::printf("soak: resident memory not checked under AddressSanitizer\n");
#else
  // Flat: what the cases allocate comes back (allocator caches may keep a little).
  EXPECT_LT(rss_end - rss_after_warmup, 32.0) << "resident memory grew";
#endif
}

}  // namespace
}  // namespace fusco::testing
