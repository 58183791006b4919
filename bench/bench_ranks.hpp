#pragma once

// Who drives the ranks of a fusco_bench run: threads of this process (ThreadRanks), or one
// process per rank launched by mpirun (MpiRanks, mpi_ranks.hpp). run_size is written once
// against this interface; per-rank work is a RankStep, results are summed over processes.

#include <memory>
#include <vector>

#include "baseline/unfused.hpp"
#include "fusco/communicator.hpp"
#include "rank_timer.hpp"
#include "testing/rank_threads.hpp"

namespace fusco::bench {

class Ranks {
 public:
  virtual ~Ranks() = default;
  virtual int world() const = 0;
  /// This process drives ranks first() .. first() + count() - 1.
  virtual int first() const = 0;
  virtual int count() const = 0;
  /// This process prints the report.
  virtual bool reports() const = 0;
  /// "inproc" or "shm".
  virtual const char* transport() const = 0;
  /// A new fusco group: the communicators of this process's ranks, in rank order.
  virtual Result<std::vector<Communicator>> group(const Topology& topology) = 0;
  /// A new baseline group: the baseline ranks of this process, in rank order.
  virtual std::vector<baseline::UnfusedRank> baselines() = 0;
  /// Runs `step` once for each of this process's ranks, concurrently; every process gets an
  /// error when any rank failed.
  virtual Status run(const RankStep& step) = 0;
  /// time_steps over every rank of every process (rank_timer.hpp's definition).
  virtual Result<std::vector<double>> time(int warmup, int iters,
                                           const std::vector<RankStep>& steps) = 0;
  /// Sum over processes of each process's `mine`.
  virtual double sum(double mine) = 0;
};

/// world ranks as threads of this process.
class ThreadRanks final : public Ranks {
 public:
  explicit ThreadRanks(int world) : world_(world) {}
  int world() const override { return world_; }
  int first() const override { return 0; }
  int count() const override { return world_; }
  bool reports() const override { return true; }
  const char* transport() const override { return "inproc"; }
  Result<std::vector<Communicator>> group(const Topology& topology) override {
    return Communicator::create_local(world_, topology);
  }
  std::vector<baseline::UnfusedRank> baselines() override {
    return baseline::UnfusedRank::create_group(world_);
  }
  Status run(const RankStep& step) override {
    return testing::first_error(testing::run_ranks(world_, step));
  }
  Result<std::vector<double>> time(int warmup, int iters,
                                   const std::vector<RankStep>& steps) override {
    return time_steps(world_, warmup, iters, steps);
  }
  double sum(double mine) override { return mine; }

 private:
  int world_;
};

}  // namespace fusco::bench
