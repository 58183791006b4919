#include "transport/shared_arena.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

namespace fusco::transport {

namespace {

constexpr size_t kGrain = size_t{2} << 20;  // regions grow in 2 MiB steps, by half at least

std::string errno_text(int error) {
  return std::error_code(error, std::generic_category()).message();
}

std::byte* map_shared(int fd, size_t bytes) {
  void* at = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return at == MAP_FAILED ? nullptr : static_cast<std::byte*>(at);
}

}  // namespace

SharedArena::SharedArena(const ShmSegment& segment, int rank)
    : segment_(&segment), rank_(rank), peers_(static_cast<size_t>(segment.geometry().world_size)) {}

SharedArena::~SharedArena() {
  for (Mapping& mapping : own_) unmap(mapping);
  for (Regions& regions : peers_) {
    for (Mapping& mapping : regions) unmap(mapping);
  }
}

void SharedArena::unmap(Mapping& mapping) {
  if (mapping.base != nullptr) munmap(mapping.base, mapping.bytes);
  if (mapping.fd >= 0) close(mapping.fd);
  mapping = Mapping{};
}

Result<std::byte*> SharedArena::reserve(SharedRegion region, size_t bytes) {
  Mapping& own = own_[static_cast<size_t>(region)];
  if (bytes <= own.bytes) return own.base;
  const size_t grown = std::max(bytes, own.bytes + own.bytes / 2);
  const size_t size = (grown + kGrain - 1) / kGrain * kGrain;
  const int fd = memfd_create("fusco-shared-region", MFD_CLOEXEC);
  auto failed = [&](const char* what, int error) {
    if (fd >= 0) close(fd);
    return Status(
        error == ENOMEM || error == ENOSPC ? StatusCode::kOutOfMemory : StatusCode::kUnsupported,
        "rank " + std::to_string(rank_) + ": " + what + " of a shared region of " +
            std::to_string(size) + " bytes failed: " + errno_text(error));
  };
  if (fd < 0) return failed("memfd_create", errno);
  if (ftruncate(fd, static_cast<off_t>(size)) != 0) return failed("ftruncate", errno);
  struct stat identity {};
  if (fstat(fd, &identity) != 0) return failed("fstat", errno);
  std::byte* base = map_shared(fd, size);
  if (base == nullptr) return failed("mmap", errno);
  const uint64_t generation = own.generation + 1;
  unmap(own);
  own = Mapping{base, size, generation, reinterpret_cast<uint64_t>(base), fd};
  ShmRegionWords& words = segment_->rank_words(rank_).regions[static_cast<size_t>(region)];
  words.owner_base = own.owner_base;
  words.bytes = size;
  words.device = static_cast<uint64_t>(identity.st_dev);
  words.inode = static_cast<uint64_t>(identity.st_ino);
  words.fd = fd;
  words.generation.store(generation, std::memory_order_release);
  return base;
}

bool SharedArena::holds(const void* data, size_t bytes) const {
  const auto* at = static_cast<const std::byte*>(data);
  for (const Mapping& own : own_) {
    if (own.base != nullptr && at >= own.base && at + bytes <= own.base + own.bytes) return true;
  }
  return false;
}

Status SharedArena::map_peers() {
  for (int peer = 0; peer < static_cast<int>(peers_.size()); ++peer) {
    if (peer == rank_) continue;
    const ShmRank& words = segment_->rank_words(peer);
    for (size_t r = 0; r < peers_[static_cast<size_t>(peer)].size(); ++r) {
      Mapping& mapping = peers_[static_cast<size_t>(peer)][r];
      const ShmRegionWords& region = words.regions[r];
      const uint64_t generation = region.generation.load(std::memory_order_acquire);
      if (generation == mapping.generation) continue;
      unmap(mapping);
      const int32_t pid = words.pid.load(std::memory_order_acquire);
      const std::string path = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(region.fd);
      const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
      int error = errno;
      struct stat identity {};
      // The file must be the peer's region: in another PID namespace the same pid names
      // another process (perhaps this one), whose fd N is another file.
      const bool same = fd >= 0 && fstat(fd, &identity) == 0 &&
                        static_cast<uint64_t>(identity.st_dev) == region.device &&
                        static_cast<uint64_t>(identity.st_ino) == region.inode;
      if (fd >= 0 && !same) error = ESTALE;
      std::byte* base = same ? map_shared(fd, region.bytes) : nullptr;
      if (same && base == nullptr) error = errno;
      if (fd >= 0) close(fd);
      if (base == nullptr) {
        std::string message = "rank " + std::to_string(rank_) +
                              " cannot map the shared memory of rank " + std::to_string(peer);
        message += " (" + path + ": ";
        message += error == ESTALE ? "another file: is the process in another PID namespace?"
                                   : errno_text(error);
        message += "); FUSCO_SHM_DIRECT=0 moves rows through the staging windows instead";
        return Status(StatusCode::kUnsupported, message);
      }
      mapping = Mapping{base, region.bytes, generation, region.owner_base, -1};
    }
  }
  return Status();
}

std::byte* SharedArena::translate(int rank, const void* published) const {
  if (rank == rank_ || published == nullptr) {
    return static_cast<std::byte*>(const_cast<void*>(published));
  }
  const auto address = reinterpret_cast<uint64_t>(published);
  for (const Mapping& mapping : peers_[static_cast<size_t>(rank)]) {
    if (mapping.base != nullptr && address >= mapping.owner_base &&
        address < mapping.owner_base + mapping.bytes) {
      return mapping.base + (address - mapping.owner_base);
    }
  }
  return nullptr;
}

}  // namespace fusco::transport
