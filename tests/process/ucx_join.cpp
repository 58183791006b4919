#include "process/ucx_join.hpp"

#include <string>
#include <vector>

#include "transport/shm_transport.hpp"

namespace fusco::testing {

Result<Communicator> join_ucx_through_shm(const std::string& name, int rank,
                                          const Topology& topology, int64_t timeout_ms) {
  const int world = topology.world_size;
  auto boot = transport::ShmTransport::open(name, rank, world, 4096, transport::DirectMode::kOff,
                                            transport::Deadline::after_ms(timeout_ms));
  FUSCO_RETURN_IF_ERROR(boot.status());
  transport::ShmTransport& exchange = *boot.value();
  const Communicator::BootstrapAllgather allgather =
      [&](const std::string& mine) -> Result<std::vector<std::string>> {
    const transport::Bytes bytes(reinterpret_cast<const std::byte*>(mine.data()),
                                 reinterpret_cast<const std::byte*>(mine.data()) + mine.size());
    std::vector<std::string> all(static_cast<size_t>(world));
    FUSCO_RETURN_IF_ERROR(exchange.alltoallv_consume(
        std::vector<transport::Bytes>(static_cast<size_t>(world), bytes),
        [&](int source, const transport::Bytes& theirs) {
          all[static_cast<size_t>(source)].assign(reinterpret_cast<const char*>(theirs.data()),
                                                  theirs.size());
          return Status();
        },
        transport::Deadline::after_ms(timeout_ms), "UCX bootstrap"));
    return all;
  };
  return Communicator::create_ucx(rank, topology, allgather, timeout_ms);
}

}  // namespace fusco::testing
