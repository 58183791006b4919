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
// This rank's checks and settings before it can open the transport.
Result<transport::UcxTransport::Settings> ucx_settings(int rank, const Topology& topology,
                                                       int64_t timeout_ms) {
  FUSCO_RETURN_IF_ERROR(topology.validate());
  FUSCO_RETURN_IF_ERROR(bootstrap::check_rank_and_timeout(rank, topology.world_size, timeout_ms));
  Result<int64_t> slot_bytes = core::shm_slot_bytes_from_env();
  FUSCO_RETURN_IF_ERROR(slot_bytes.status());
  Result<int32_t> protocol = core::ucx_protocol_from_env();
  FUSCO_RETURN_IF_ERROR(protocol.status());
  Result<int32_t> direct = core::shm_direct_from_env();
  FUSCO_RETURN_IF_ERROR(direct.status());
  transport::UcxTransport::Settings settings;
  settings.slot_bytes = static_cast<size_t>(slot_bytes.value());
  settings.protocol = static_cast<transport::UcxTransport::Protocol>(protocol.value());
  settings.direct = transport::direct_mode_of(direct.value());
  return settings;
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
  const Result<transport::UcxTransport::Settings> settings =
      ucx_settings(rank, topology, timeout_ms);
  if (!settings.ok()) return transport::UcxTransport::refuse(allgather, settings.status());
  auto opened = transport::UcxTransport::open(rank, topology.world_size, settings.value(),
                                              allgather, transport::Deadline::after_ms(timeout_ms));
  FUSCO_RETURN_IF_ERROR(opened.status());
  return Impl::from_transport(std::move(opened).value(), topology);
#else
  (void)rank;
  (void)topology;
  (void)timeout_ms;
  return Status(StatusCode::kUnsupported,
                "create_ucx: this fusco was built without UCX (FUSCO_WITH_UCX=OFF)");
#endif
}

}  // namespace fusco
