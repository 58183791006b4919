// The in-process group: world_size ranks as threads of this process.

#include <string>

#include "communicator_impl.hpp"
#include "fusco/communicator.hpp"
#include "transport/inproc_transport.hpp"

namespace fusco {

Result<std::vector<Communicator>> Communicator::create_local(int world_size, Topology topology) {
  return Impl::create_local(world_size, topology, true);
}

Result<std::vector<Communicator>> Communicator::Impl::create_local(int world_size,
                                                                   Topology topology,
                                                                   bool direct_access) {
  constexpr int kMaxLocalRanks = 4096;
  if (world_size < 1 || world_size > kMaxLocalRanks) {
    return Status(StatusCode::kInvalidArgument, "world_size = " + std::to_string(world_size) +
                                                    " is outside [1, " +
                                                    std::to_string(kMaxLocalRanks) + "]");
  }
  FUSCO_RETURN_IF_ERROR(topology.validate());
  if (topology.world_size != world_size) {
    return Status(StatusCode::kInvalidArgument,
                  "topology.world_size = " + std::to_string(topology.world_size) +
                      " differs from world_size = " + std::to_string(world_size));
  }
  auto group = std::make_shared<transport::InprocGroup>(world_size, direct_access);
  std::vector<Communicator> comms;
  comms.reserve(static_cast<size_t>(world_size));
  for (int r = 0; r < world_size; ++r) {
    Result<Communicator> comm =
        Impl::from_transport(std::make_unique<transport::InprocTransport>(group, r), topology);
    FUSCO_RETURN_IF_ERROR(comm.status());
    comms.push_back(std::move(comm).value());
  }
  return comms;
}

}  // namespace fusco
