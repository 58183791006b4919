#include <cstring>
#include <string>

#include "transport/transport.hpp"

namespace fusco::transport {

Status alltoallv_consume_in_place(Transport& transport, const std::vector<Bytes>& send,
                                  const ConsumeFn& consume, const Deadline& deadline,
                                  const char* what) {
  std::vector<const void*> all;
  FUSCO_RETURN_IF_ERROR(transport.sync(&send, &all, deadline, what));
  const auto me = static_cast<size_t>(transport.rank());
  Status consumed;
  for (size_t source = 0; source < all.size() && consumed.ok(); ++source) {
    const auto& theirs = *static_cast<const std::vector<Bytes>*>(all[source]);
    consumed = consume(static_cast<int>(source), theirs[me]);
  }
  // The senders' buffers must outlive every reader.
  FUSCO_RETURN_IF_ERROR(transport.barrier(deadline, what));
  return consumed;
}

Status alltoallv(Transport& transport, const std::vector<Bytes>& send, std::vector<Bytes>* recv,
                 const Deadline& deadline, const char* what) {
  recv->assign(static_cast<size_t>(transport.world_size()), Bytes());
  return transport.alltoallv_consume(
      send,
      [recv](int source, const Bytes& bytes) {
        (*recv)[static_cast<size_t>(source)] = bytes;
        return Status();
      },
      deadline, what);
}

Status allgather_in_place(Transport& transport, const void* mine, size_t bytes, std::byte* out,
                          const Deadline& deadline, const char* what) {
  std::vector<const void*> all;
  FUSCO_RETURN_IF_ERROR(transport.sync(mine, &all, deadline, what));
  for (size_t source = 0; source < all.size(); ++source) {
    std::memcpy(out + source * bytes, all[source], bytes);
  }
  return transport.barrier(deadline, what);
}

Status allgather_by_messages(Transport& transport, const void* mine, size_t bytes, std::byte* out,
                             const Deadline& deadline, const char* what) {
  const auto* first = static_cast<const std::byte*>(mine);
  const std::vector<Bytes> send(static_cast<size_t>(transport.world_size()),
                                Bytes(first, first + bytes));
  return transport.alltoallv_consume(
      send,
      [&](int source, const Bytes& theirs) {
        if (theirs.size() != bytes) {
          return Status(StatusCode::kMismatch, std::string(what) + ": rank " +
                                                   std::to_string(source) + " contributed " +
                                                   std::to_string(theirs.size()) +
                                                   " bytes, this rank " + std::to_string(bytes));
        }
        std::memcpy(out + static_cast<size_t>(source) * bytes, theirs.data(), bytes);
        return Status();
      },
      deadline, what);
}

}  // namespace fusco::transport
