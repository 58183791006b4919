#include <cstring>

#include "transport/transport.hpp"

namespace fusco::transport {

Status alltoallv(Transport& transport, const std::vector<Bytes>& send, std::vector<Bytes>* recv,
                 const Deadline& deadline, const char* what) {
  std::vector<const void*> all;
  FUSCO_RETURN_IF_ERROR(transport.sync(&send, &all, deadline, what));
  const auto me = static_cast<size_t>(transport.rank());
  recv->assign(all.size(), Bytes());
  for (size_t source = 0; source < all.size(); ++source) {
    const auto& theirs = *static_cast<const std::vector<Bytes>*>(all[source]);
    (*recv)[source] = theirs[me];
  }
  // The senders' buffers must outlive every reader.
  return transport.barrier(deadline, what);
}

Status allgather(Transport& transport, const void* mine, size_t bytes, std::byte* out,
                 const Deadline& deadline, const char* what) {
  std::vector<const void*> all;
  FUSCO_RETURN_IF_ERROR(transport.sync(mine, &all, deadline, what));
  for (size_t source = 0; source < all.size(); ++source) {
    std::memcpy(out + source * bytes, all[source], bytes);
  }
  return transport.barrier(deadline, what);
}

}  // namespace fusco::transport
