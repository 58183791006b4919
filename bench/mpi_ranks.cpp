#include "mpi_ranks.hpp"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <string>

#include "fusco/mpi.hpp"

namespace fusco::bench {

namespace {

std::vector<int> to_int(const std::vector<int64_t>& values) {
  return std::vector<int>(values.begin(), values.end());
}

// MPI_Alltoallv of rows of `row_bytes` bytes (counts and offsets in rows).
Status mpi_alltoallv(const std::byte* send, const std::vector<int64_t>& send_counts,
                     const std::vector<int64_t>& send_offsets, std::byte* recv,
                     const std::vector<int64_t>& recv_counts,
                     const std::vector<int64_t>& recv_offsets, size_t row_bytes) {
  if (row_bytes == 0) {
    return Status();
  }
  MPI_Datatype row = MPI_DATATYPE_NULL;
  MPI_Type_contiguous(static_cast<int>(row_bytes), MPI_BYTE, &row);
  MPI_Type_commit(&row);
  const std::vector<int> sc = to_int(send_counts);
  const std::vector<int> so = to_int(send_offsets);
  const std::vector<int> rc = to_int(recv_counts);
  const std::vector<int> ro = to_int(recv_offsets);
  const int error = MPI_Alltoallv(send, sc.data(), so.data(), row, recv, rc.data(), ro.data(), row,
                                  MPI_COMM_WORLD);
  MPI_Type_free(&row);
  if (error != MPI_SUCCESS) {
    return Status(StatusCode::kInternal, "MPI_Alltoallv failed with " + std::to_string(error));
  }
  return Status();
}

// Every process learns whether some rank failed; the failed rank keeps its own error.
Status agree(const Status& mine, int rank) {
  int failed = mine.ok() ? INT32_MAX : rank;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (!mine.ok() || failed == INT32_MAX) {
    return mine;
  }
  return Status(StatusCode::kAborted, "rank " + std::to_string(failed) + " failed (see its error)");
}

double seconds_now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

class MpiRanks final : public Ranks {
 public:
  explicit MpiRanks(std::string transport) : transport_(std::move(transport)) {
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &world_);
  }
  int world() const override { return world_; }
  int first() const override { return rank_; }
  int count() const override { return 1; }
  bool reports() const override { return rank_ == 0; }
  const char* transport() const override { return transport_.c_str(); }
  Result<std::vector<Communicator>> group(const Topology& topology) override {
    Result<Communicator> made =
        create_from_mpi(MPI_COMM_WORLD, topology.node_width(), 60000, transport_);
    FUSCO_RETURN_IF_ERROR(made.status());
    std::vector<Communicator> mine;
    mine.push_back(std::move(made).value());
    return mine;
  }
  std::vector<baseline::UnfusedRank> baselines() override {
    std::vector<baseline::UnfusedRank> mine;
    mine.push_back(baseline::UnfusedRank::with_exchange(rank_, world_, mpi_alltoallv));
    return mine;
  }
  Status run(const RankStep& step) override { return agree(step(rank_), rank_); }
  Result<std::vector<double>> time(int warmup, int iters,
                                   const std::vector<RankStep>& steps) override {
    const int total = warmup + iters;
    const size_t n = static_cast<size_t>(total) * steps.size();
    std::vector<double> starts(n);
    std::vector<double> ends(n);
    Status status;
    for (int it = 0; it < total; ++it) {
      for (size_t s = 0; s < steps.size(); ++s) {
        MPI_Barrier(MPI_COMM_WORLD);
        const size_t at = static_cast<size_t>(it) * steps.size() + s;
        starts[at] = seconds_now();
        if (status.ok()) {
          status = steps[s](rank_);
        }
        ends[at] = seconds_now();
      }
    }
    FUSCO_RETURN_IF_ERROR(agree(status, rank_));
    MPI_Allreduce(MPI_IN_PLACE, starts.data(), static_cast<int>(n), MPI_DOUBLE, MPI_MIN,
                  MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, ends.data(), static_cast<int>(n), MPI_DOUBLE, MPI_MAX,
                  MPI_COMM_WORLD);
    std::vector<double> medians;
    for (size_t s = 0; s < steps.size(); ++s) {
      std::vector<double> walls;
      for (int it = warmup; it < total; ++it) {
        const size_t at = static_cast<size_t>(it) * steps.size() + s;
        walls.push_back(ends[at] - starts[at]);
      }
      medians.push_back(median(walls));
    }
    return medians;
  }
  double sum(double mine) override {
    MPI_Allreduce(MPI_IN_PLACE, &mine, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return mine;
  }

 private:
  std::string transport_;
  int rank_ = 0;
  int world_ = 1;
};

bool initialised_here = false;

}  // namespace

std::unique_ptr<Ranks> make_mpi_ranks(const std::string& transport, int* argc, char*** argv) {
  int ready = 0;
  MPI_Initialized(&ready);
  if (ready == 0) {
    MPI_Init(argc, argv);
    initialised_here = true;
  }
  return std::make_unique<MpiRanks>(transport);
}

void finish_mpi() {
  if (initialised_here) {
    MPI_Finalize();
    initialised_here = false;
  }
}

}  // namespace fusco::bench
