// A group of processes on one machine joined through a named shared-memory segment.

#include <string>

#include "bootstrap/process_group_args.hpp"
#include "communicator_impl.hpp"
#include "core/env.hpp"
#include "fusco/communicator.hpp"
#include "transport/shm_segment.hpp"
#include "transport/shm_transport.hpp"

namespace fusco {

namespace {

Status check_name(const std::string& name) {
  constexpr size_t kMaxName = 200;
  const bool shaped = name.size() >= 2 && name.size() <= kMaxName && name[0] == '/' &&
                      name.find('/', 1) == std::string::npos;
  if (!shaped) {
    return Status(StatusCode::kInvalidArgument,
                  "name = '" + name + "' must be '/' followed by 1 to " +
                      std::to_string(kMaxName - 1) + " characters other than '/'");
  }
  return Status();
}

}  // namespace

Result<Communicator> Communicator::create_shared_memory(const std::string& name, int rank,
                                                        Topology topology, int64_t timeout_ms) {
  FUSCO_RETURN_IF_ERROR(check_name(name));
  FUSCO_RETURN_IF_ERROR(topology.validate());
  const int world = topology.world_size;
  if (world > transport::ShmTransport::kMaxRanks) {
    return Status(StatusCode::kInvalidArgument,
                  "topology.world_size = " + std::to_string(world) + " exceeds " +
                      std::to_string(transport::ShmTransport::kMaxRanks) +
                      ", the most ranks of a shared-memory group");
  }
  FUSCO_RETURN_IF_ERROR(bootstrap::check_rank_and_timeout(rank, world, timeout_ms));
  Result<int64_t> slot_bytes = core::shm_slot_bytes_from_env();
  Result<int32_t> direct = core::shm_direct_from_env();
  const Status env = !slot_bytes.ok() ? slot_bytes.status() : direct.status();
  if (!env.ok()) {
    // The others are waiting for this rank: it tells them why it is not coming.
    return transport::ShmSegment::refuse(name, rank, world, env,
                                         transport::Deadline::after_ms(timeout_ms));
  }
  auto opened = transport::ShmTransport::open(
      name, rank, world, static_cast<size_t>(slot_bytes.value()),
      transport::direct_mode_of(direct.value()), transport::Deadline::after_ms(timeout_ms));
  FUSCO_RETURN_IF_ERROR(opened.status());
  return Impl::from_transport(std::move(opened).value(), topology);
}

}  // namespace fusco
