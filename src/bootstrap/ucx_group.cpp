// A group of processes connected by UCX, bootstrapped through the caller's allgather.

#include <string>

#include "bootstrap/process_group_args.hpp"
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
  FUSCO_RETURN_IF_ERROR(bootstrap::check_rank_and_timeout(rank, world, timeout_ms));
  if (!allgather) {
    return Status(StatusCode::kInvalidArgument, "allgather is empty");
  }
#ifdef FUSCO_HAVE_UCX
  Result<int64_t> slot_bytes = core::shm_slot_bytes_from_env();
  FUSCO_RETURN_IF_ERROR(slot_bytes.status());
  Result<int32_t> protocol = core::ucx_protocol_from_env();
  FUSCO_RETURN_IF_ERROR(protocol.status());
  auto opened = transport::UcxTransport::open(
      rank, world, static_cast<size_t>(slot_bytes.value()), allgather,
      transport::Deadline::after_ms(timeout_ms),
      static_cast<transport::UcxTransport::Protocol>(protocol.value()));
  FUSCO_RETURN_IF_ERROR(opened.status());
  return Communicator(std::make_unique<Impl>(std::move(opened).value(), topology));
#else
  return Status(StatusCode::kUnsupported,
                "create_ucx: this fusco was built without UCX (FUSCO_WITH_UCX=OFF)");
#endif
}

}  // namespace fusco
