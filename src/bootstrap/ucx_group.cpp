// A group of processes connected by UCX, bootstrapped through the caller's allgather.

#include <string>

#include "communicator_impl.hpp"
#include "core/env.hpp"
#include "fusco/communicator.hpp"
#ifdef FUSCO_HAVE_UCX
#include "transport/ucx_transport.hpp"
#endif

namespace fusco {

Result<Communicator> Communicator::create_ucx(int rank, Topology topology,
                                              const BootstrapAllgather& allgather,
                                              int64_t timeout_ms) {
  FUSCO_RETURN_IF_ERROR(topology.validate());
  const int world = topology.world_size;
  if (rank < 0 || rank >= world) {
    return Status(StatusCode::kInvalidArgument, "rank = " + std::to_string(rank) +
                                                    " is outside [0, " + std::to_string(world) +
                                                    ") (topology.world_size)");
  }
  if (timeout_ms < 1 || timeout_ms > 86400000) {
    return Status(StatusCode::kInvalidArgument,
                  "timeout_ms = " + std::to_string(timeout_ms) + " is outside [1, 86400000]");
  }
  if (!allgather) {
    return Status(StatusCode::kInvalidArgument, "allgather is empty");
  }
#ifdef FUSCO_HAVE_UCX
  Result<int64_t> slot_bytes = core::shm_slot_bytes_from_env();
  FUSCO_RETURN_IF_ERROR(slot_bytes.status());
  auto opened = transport::UcxTransport::open(rank, world, static_cast<size_t>(slot_bytes.value()),
                                              allgather, transport::Deadline::after_ms(timeout_ms));
  FUSCO_RETURN_IF_ERROR(opened.status());
  return Communicator(std::make_unique<Impl>(std::move(opened).value(), topology));
#else
  return Status(StatusCode::kUnsupported,
                "create_ucx: this fusco was built without UCX (FUSCO_WITH_UCX=OFF)");
#endif
}

}  // namespace fusco
