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

SharedArena::SharedArena(std::vector<ShmRank*> words, int rank)
    : words_(std::move(words)), rank_(rank), peers_(words_.size()) {}

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

Result<MemfdMapping> create_memfd(size_t bytes, int rank) {
  const int fd = memfd_create("fusco-shared-region", MFD_CLOEXEC);
  auto failed = [&](const char* what, int error) {
    if (fd >= 0) close(fd);
    return Status(
        error == ENOMEM || error == ENOSPC ? StatusCode::kOutOfMemory : StatusCode::kUnsupported,
        "rank " + std::to_string(rank) + ": " + what + " of a shared region of " +
            std::to_string(bytes) + " bytes failed: " + errno_text(error));
  };
  if (fd < 0) return failed("memfd_create", errno);
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) return failed("ftruncate", errno);
  struct stat identity {};
  if (fstat(fd, &identity) != 0) return failed("fstat", errno);
  std::byte* base = map_shared(fd, bytes);
  if (base == nullptr) return failed("mmap", errno);
  MemfdMapping mapping;
  mapping.base = base;
  mapping.file = PeerFile{getpid(), fd, static_cast<uint64_t>(identity.st_dev),
                          static_cast<uint64_t>(identity.st_ino), bytes};
  return mapping;
}

std::byte* map_peer_memfd(const PeerFile& file, std::string* error) {
  const std::string path = "/proc/" + std::to_string(file.pid) + "/fd/" + std::to_string(file.fd);
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  int code = errno;
  struct stat identity {};
  // The file must be the peer's: in another PID namespace the same pid names another process
  // (perhaps this one), whose fd N is another file.
  const bool same = fd >= 0 && fstat(fd, &identity) == 0 &&
                    static_cast<uint64_t>(identity.st_dev) == file.device &&
                    static_cast<uint64_t>(identity.st_ino) == file.inode;
  if (fd >= 0 && !same) code = ESTALE;
  std::byte* base = same ? map_shared(fd, file.bytes) : nullptr;
  if (same && base == nullptr) code = errno;
  if (fd >= 0) close(fd);
  if (base == nullptr) {
    *error = path + ": " +
             (code == ESTALE ? "another file: is the process in another PID namespace?"
                             : errno_text(code));
  }
  return base;
}

Result<std::byte*> SharedArena::reserve(SharedRegion region, size_t bytes) {
  Mapping& own = own_[static_cast<size_t>(region)];
  if (bytes <= own.bytes) return own.base;
  const size_t grown = std::max(bytes, own.bytes + own.bytes / 2);
  Result<MemfdMapping> created = create_memfd((grown + kGrain - 1) / kGrain * kGrain, rank_);
  FUSCO_RETURN_IF_ERROR(created.status());
  const PeerFile& file = created.value().file;
  const uint64_t generation = own.generation + 1;
  unmap(own);
  std::byte* base = created.value().base;
  own = Mapping{base, file.bytes, generation, reinterpret_cast<uint64_t>(base), file.fd};
  ShmRegionWords& words = words_[static_cast<size_t>(rank_)]->regions[static_cast<size_t>(region)];
  words.owner_base = own.owner_base;
  words.bytes = file.bytes;
  words.device = file.device;
  words.inode = file.inode;
  words.fd = file.fd;
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
    if (peer == rank_ || words_[static_cast<size_t>(peer)] == nullptr) continue;
    const ShmRank& words = *words_[static_cast<size_t>(peer)];
    for (size_t r = 0; r < peers_[static_cast<size_t>(peer)].size(); ++r) {
      Mapping& mapping = peers_[static_cast<size_t>(peer)][r];
      const ShmRegionWords& region = words.regions[r];
      const uint64_t generation = region.generation.load(std::memory_order_acquire);
      if (generation == mapping.generation) continue;
      unmap(mapping);
      const PeerFile file{words.pid.load(std::memory_order_acquire), region.fd, region.device,
                          region.inode, region.bytes};
      std::string error;
      std::byte* base = map_peer_memfd(file, &error);
      if (base == nullptr) {
        return Status(StatusCode::kUnsupported,
                      "rank " + std::to_string(rank_) + " cannot map the shared memory of rank " +
                          std::to_string(peer) + " (" + error +
                          "); FUSCO_SHM_DIRECT=0 moves rows through the staging windows instead");
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
