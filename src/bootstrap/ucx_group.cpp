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

namespace {

#ifdef FUSCO_HAVE_UCX
// This rank's checks before it can open the transport.
Status check_ucx_args(int rank, const Topology& topology, int64_t timeout_ms) {
  FUSCO_RETURN_IF_ERROR(topology.validate());
  FUSCO_RETURN_IF_ERROR(bootstrap::check_rank_and_timeout(rank, topology.world_size, timeout_ms));
  FUSCO_RETURN_IF_ERROR(core::shm_slot_bytes_from_env().status());
  return core::ucx_protocol_from_env().status();
}
#endif

}  // namespace

Result<Communicator> Communicator::create_ucx(int rank, Topology topology,
                                              const BootstrapAllgather& allgather,
                                              int64_t timeout_ms) {
  if (!allgather) {
    return Status(StatusCode::kInvalidArgument, "allgather is empty");
  }
#ifdef FUSCO_HAVE_UCX
  // A rank whose own arguments fail still takes part in the bootstrap exchange, with its
  // reason: the others fail at once naming it instead of waiting for it.
  const Status local = check_ucx_args(rank, topology, timeout_ms);
  if (!local.ok()) return transport::UcxTransport::refuse(allgather, local);
  auto opened = transport::UcxTransport::open(
      rank, topology.world_size, static_cast<size_t>(core::shm_slot_bytes_from_env().value()),
      allgather, transport::Deadline::after_ms(timeout_ms),
      static_cast<transport::UcxTransport::Protocol>(core::ucx_protocol_from_env().value()));
  FUSCO_RETURN_IF_ERROR(opened.status());
  return Communicator(std::make_unique<Impl>(std::move(opened).value(), topology));
#else
  (void)rank;
  (void)topology;
  (void)timeout_ms;
  return Status(StatusCode::kUnsupported,
                "create_ucx: this fusco was built without UCX (FUSCO_WITH_UCX=OFF)");
#endif
}

}  // namespace fusco
