// How NcclCommunicator bounds the GPU's waits in ncclSend/ncclRecv (src/gpu/nccl_watch.hpp),
// on a real stream: an exchange is stood in for by a host function that holds the stream
// until the test opens its gate, as a peer that never comes holds NCCL's kernel. A marked step
// still pending past its timeout is reported with its peers, and stays reported; a host wait
// ends with the stream, or at its bound. (No NCCL communicator here: the abort it would get is
// a null handle's no-op.) Skipped without a GPU.

#include "gpu/nccl_watch.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gpu/device_runs.hpp"
#include "gpu/gpu_presence.hpp"

namespace fusco::testing {
namespace {

using std::chrono::milliseconds;

// A stream held by a host function until open() (also on destruction).
class HeldStream {
 public:
  HeldStream() {
    EXPECT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
    EXPECT_EQ(cudaLaunchHostFunc(stream_, &HeldStream::hold, &gate_), cudaSuccess);
  }
  ~HeldStream() {
    open();
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
  HeldStream(const HeldStream&) = delete;
  HeldStream& operator=(const HeldStream&) = delete;
  void open() { gate_.store(true, std::memory_order_release); }
  cudaStream_t stream() const { return stream_; }

 private:
  static void hold(void* gate) {
    while (!static_cast<std::atomic<bool>*>(gate)->load(std::memory_order_acquire)) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  std::atomic<bool> gate_{false};
  cudaStream_t stream_ = nullptr;
};

// A held stream and the watch of rank `rank` over no communicator.
struct Watched {
  explicit Watched(int rank) { watch.watch_over(rank, &comm, gpu::cuda_nccl_ops()); }
  HeldStream held;
  ncclComm_t comm = nullptr;
  gpu::NcclWatch watch;
};

TEST(NcclWatch, AnExchangePendingPastItsTimeout_IsNamedWithItsPeers_AndStaysReported) {
  FUSCO_SKIP_WITHOUT_GPU();
  Watched w(3);
  HeldStream& held = w.held;
  gpu::NcclWatch& watch = w.watch;
  ASSERT_TRUE(watch.mark(held.stream(), "dispatch: ncclSend/ncclRecv", {1, 2}, 100).ok());
  EXPECT_TRUE(watch.check().ok());  // pending, within its timeout
  std::this_thread::sleep_for(milliseconds(150));
  const Status late = watch.check();
  EXPECT_EQ(late.code(), StatusCode::kTimeout);
  EXPECT_NE(late.message().find("rank 3: dispatch: ncclSend/ncclRecv with rank(s) 1, 2"),
            std::string::npos)
      << late.to_string();
  EXPECT_NE(late.message().find("within 100 ms"), std::string::npos) << late.to_string();
  EXPECT_TRUE(watch.aborted());
  held.open();
  ASSERT_EQ(cudaStreamSynchronize(held.stream()), cudaSuccess);
  EXPECT_EQ(watch.check().message(), late.message());  // the communicator stays unusable
}

TEST(NcclWatch, ExchangesThatEnd_AreNoFault_AndAWaitEndsWithTheStream) {
  FUSCO_SKIP_WITHOUT_GPU();
  Watched w(0);
  HeldStream& held = w.held;
  gpu::NcclWatch& watch = w.watch;
  ASSERT_TRUE(watch.mark(held.stream(), "combine: ncclSend/ncclRecv", {1}, 5000).ok());
  std::thread opener([&] {
    std::this_thread::sleep_for(milliseconds(50));
    held.open();
  });
  EXPECT_TRUE(watch.wait(held.stream(), 10000, "synchronize").ok());
  opener.join();
  EXPECT_TRUE(watch.check().ok());
  EXPECT_FALSE(watch.aborted());
}

TEST(NcclWatch, AHostWait_EndsAtItsBound_NamingWhatItWaitedFor) {
  FUSCO_SKIP_WITHOUT_GPU();
  Watched w(1);  // nothing marked: the bound of the wait itself ends it
  HeldStream& held = w.held;
  gpu::NcclWatch& watch = w.watch;
  const auto start = std::chrono::steady_clock::now();
  const Status waited = watch.wait(held.stream(), 100, "plan exchange (counts)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));
  EXPECT_EQ(waited.code(), StatusCode::kTimeout);
  EXPECT_NE(waited.message().find("rank 1: plan exchange (counts) did not end within 100 ms"),
            std::string::npos)
      << waited.to_string();
}

}  // namespace
}  // namespace fusco::testing
