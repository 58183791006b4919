#include "transport/shm_segment.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <system_error>
#include <thread>

namespace fusco::transport {

namespace {

constexpr uint64_t kShmReady = 0x6675'7363'6f53'484dULL;  // "fuscoSHM"
constexpr size_t kPage = 4096;

size_t align_up(size_t value, size_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

std::string errno_text(int error) {
  return std::error_code(error, std::generic_category()).message();
}

Status segment_error(StatusCode code, const std::string& name, int rank, const std::string& what) {
  return Status(code,
                "rank " + std::to_string(rank) + ": shared-memory segment " + name + ": " + what);
}

// Waits (bounded) until `done` holds, polling every millisecond.
template <typename Done>
bool poll_until(const Deadline& deadline, Done&& done) {
  while (!done()) {
    if (Clock::now() >= deadline.at) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

size_t ShmGeometry::ranks_offset() const { return align_up(sizeof(ShmHeader), 64); }
size_t ShmGeometry::flags_offset() const {
  return ranks_offset() + static_cast<size_t>(world_size) * sizeof(ShmRank);
}
size_t ShmGeometry::mailboxes_offset() const {
  const auto pairs = static_cast<size_t>(world_size) * static_cast<size_t>(world_size);
  return align_up(flags_offset() + pairs * sizeof(ShmWindowFlags), kPage);
}
size_t ShmGeometry::slots_offset() const {
  return mailboxes_offset() + static_cast<size_t>(world_size) * mailbox_bytes;
}
size_t ShmGeometry::total_bytes() const {
  const auto pairs = static_cast<size_t>(world_size) * static_cast<size_t>(world_size);
  return slots_offset() + pairs * 2 * slot_bytes;
}

ShmRank& ShmSegment::rank_words(int rank) const {
  return reinterpret_cast<ShmRank*>(base_ + geometry_.ranks_offset())[rank];
}

ShmWindowFlags& ShmSegment::window_flags(int from, int to) const {
  const auto index = static_cast<size_t>(from) * static_cast<size_t>(geometry_.world_size) +
                     static_cast<size_t>(to);
  return reinterpret_cast<ShmWindowFlags*>(base_ + geometry_.flags_offset())[index];
}

std::byte* ShmSegment::mailbox(int rank) const {
  return base_ + geometry_.mailboxes_offset() + static_cast<size_t>(rank) * geometry_.mailbox_bytes;
}

std::byte* ShmSegment::window_slots(int from, int to) const {
  const auto index = static_cast<size_t>(from) * static_cast<size_t>(geometry_.world_size) +
                     static_cast<size_t>(to);
  return base_ + geometry_.slots_offset() + index * 2 * geometry_.slot_bytes;
}

ShmSegment::ShmSegment(ShmSegment&& other) noexcept
    : base_(other.base_), mapped_bytes_(other.mapped_bytes_), geometry_(other.geometry_) {
  other.base_ = nullptr;
  other.mapped_bytes_ = 0;
}

ShmSegment& ShmSegment::operator=(ShmSegment&& other) noexcept {
  if (this != &other) {
    if (base_ != nullptr) {
      munmap(base_, mapped_bytes_);
    }
    base_ = other.base_;
    mapped_bytes_ = other.mapped_bytes_;
    geometry_ = other.geometry_;
    other.base_ = nullptr;
    other.mapped_bytes_ = 0;
  }
  return *this;
}

ShmSegment::~ShmSegment() {
  if (base_ != nullptr) {
    munmap(base_, mapped_bytes_);
  }
}

namespace {

// Sizes the segment with its pages allocated; 0 or an errno value. Where the file system
// cannot allocate ahead (EOPNOTSUPP), it is only sized.
int reserve_pages(int fd, size_t bytes) {
  int error = EINTR;
  while (error == EINTR) error = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
  if (error != EOPNOTSUPP && error != EINVAL) {
    return error;
  }
  return ftruncate(fd, static_cast<off_t>(bytes)) == 0 ? 0 : errno;
}

// A refusal segment (ShmSegment::refuse) holds the header only.
size_t refusal_bytes() { return align_up(sizeof(ShmHeader), kPage); }

// The header of the segment behind `fd`, mapped alone; null when the file is too short to
// hold one (touching a mapping past its end would be SIGBUS).
ShmHeader* map_header(int fd) {
  struct stat st = {};
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) < refusal_bytes()) return nullptr;
  void* mapped = mmap(nullptr, refusal_bytes(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  return mapped == MAP_FAILED ? nullptr : static_cast<ShmHeader*>(mapped);
}

// A segment left by a process killed while its group was joining: its creator is gone, so the
// group can never complete. (A creator killed before it recorded its pid is not recognised.)
bool is_stale(int fd) {
  ShmHeader* header = map_header(fd);
  if (header == nullptr) return false;
  const int32_t creator = header->creator_pid.load(std::memory_order_relaxed);
  munmap(header, refusal_bytes());
  return creator != 0 && process_exited(creator);
}

// Rank 0's new segment of `total` bytes, its pages reserved; a stale one of the same name is
// removed first. (`slot_bytes`: for the message when there is no room.)
Result<int> create_fd(const std::string& name, size_t total, size_t slot_bytes) {
  int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
  if (fd < 0 && errno == EEXIST) {
    const int existing = shm_open(name.c_str(), O_RDWR, 0);
    const bool stale = existing >= 0 && is_stale(existing);
    if (existing >= 0) close(existing);
    if (stale && shm_unlink(name.c_str()) == 0) {
      fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    } else {
      errno = EEXIST;
    }
  }
  if (fd < 0) {
    return segment_error(
        errno == EEXIST ? StatusCode::kInvalidArgument : StatusCode::kInternal, name, 0,
        "cannot create it (" + errno_text(errno) + "); every group needs a fresh name");
  }
  struct statvfs fs = {};
  const bool have_room = statvfs("/dev/shm", &fs) != 0 ||
                         static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize >= total;
  // The pages are reserved now (posix_fallocate), not on first touch: a /dev/shm that fills
  // up later must not kill a process with SIGBUS in the middle of a call.
  const int reserved = have_room ? reserve_pages(fd, total) : 0;
  if (!have_room || reserved != 0) {
    const std::string why =
        have_room ? errno_text(reserved)
                  : std::to_string(static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize) +
                        " bytes free in /dev/shm";
    close(fd);
    shm_unlink(name.c_str());
    return segment_error(StatusCode::kOutOfMemory, name, 0,
                         "cannot size it to " + std::to_string(total) + " bytes (" + why +
                             "); lower FUSCO_SHM_SLOT_BYTES (now " + std::to_string(slot_bytes) +
                             ")");
  }
  return fd;
}

// A member's descriptor of the group's segment once rank 0 has sized it. A stale segment (its
// creator gone) is passed over: the new rank 0 replaces it.
Result<int> attach_fd(const std::string& name, int rank, const Deadline& deadline) {
  int fd = -1;
  int32_t stale_creator = 0;
  struct stat st = {};
  const bool found = poll_until(deadline, [&] {
    if (fd < 0) fd = shm_open(name.c_str(), O_RDWR, 0);
    if (fd < 0) return errno != ENOENT;
    if (fstat(fd, &st) != 0 || st.st_size == 0) return false;
    if (!is_stale(fd)) return true;
    stale_creator = 1;
    close(fd);
    fd = -1;
    return false;
  });
  if (fd >= 0 && found) return fd;
  if (fd >= 0) close(fd);
  if (found) {
    return segment_error(StatusCode::kInternal, name, rank,
                         "cannot open it (" + errno_text(errno) + ")");
  }
  return segment_error(
      StatusCode::kTimeout, name, rank,
      stale_creator != 0
          ? "only a stale segment of a process that is gone was there within " +
                std::to_string(deadline.timeout_ms) + " ms (rank 0 creates a fresh one)"
          : "did not appear or was not sized within " + std::to_string(deadline.timeout_ms) +
                " ms (rank 0 creates it: is it running with the same name?)");
}

// Waits (bounded) until rank 0 has laid the segment out.
bool laid_out(const ShmHeader& header, const Deadline& deadline) {
  return poll_until(deadline,
                    [&] { return header.magic.load(std::memory_order_acquire) == kShmReady; });
}

// A member that finds a segment of another size: if it is a refusal, it says so (and counts
// this rank as having seen it, so rank 0 can remove it); otherwise ok.
Status refusal_in(int fd, const Deadline& deadline) {
  ShmHeader* header = map_header(fd);
  if (header == nullptr) return Status();
  laid_out(*header, deadline);
  Status refused;
  if (header->broken.load(std::memory_order_acquire) != 0) {
    refused = break_status(*header);
    header->attached.fetch_add(1, std::memory_order_acq_rel);
  }
  munmap(header, refusal_bytes());
  return refused;
}

// A member that fails before it attaches tells the group why (its break; the first reason
// wins) and is counted as arrived, so rank 0 may remove the name. Unmaps `header`.
void report_to_group(ShmHeader* header, const std::string& reason, StatusCode code,
                     const Deadline& deadline) {
  if (header == nullptr) return;
  if (laid_out(*header, deadline)) {
    record_break(*header, reason, code);
    header->attached.fetch_add(1, std::memory_order_acq_rel);
  }
  munmap(header, refusal_bytes());
}

void refuse_as_creator(const std::string& name, int world_size, const std::string& reason,
                       const Deadline& deadline) {
  const Result<int> fd = create_fd(name, refusal_bytes(), 0);
  if (!fd.ok()) return;
  ShmHeader* header = map_header(fd.value());
  close(fd.value());
  if (header != nullptr) {
    new (header) ShmHeader();
    header->creator_pid.store(static_cast<int32_t>(getpid()), std::memory_order_relaxed);
    header->world_size = world_size;
    header->total_bytes = refusal_bytes();
    record_break(*header, reason, StatusCode::kInvalidArgument);
    header->magic.store(kShmReady, std::memory_order_release);
    // The others learn why when they open it; it goes once they all have (or at the deadline).
    const auto others = static_cast<uint32_t>(world_size - 1);
    poll_until(deadline,
               [&] { return header->attached.load(std::memory_order_acquire) >= others; });
    munmap(header, refusal_bytes());
  }
  shm_unlink(name.c_str());
}

void refuse_as_member(const std::string& name, int rank, const std::string& reason,
                      const Deadline& deadline) {
  const Result<int> fd = attach_fd(name, rank, deadline);
  if (!fd.ok()) return;
  ShmHeader* header = map_header(fd.value());
  close(fd.value());
  report_to_group(header, reason, StatusCode::kInvalidArgument, deadline);
}

}  // namespace

Status ShmSegment::refuse(const std::string& name, int rank, int world_size, const Status& why,
                          const Deadline& deadline) {
  const std::string reason = "rank " + std::to_string(rank) +
                             " rejected its arguments to create_shared_memory (" + why.message() +
                             ")";
  if (rank == 0) {
    refuse_as_creator(name, world_size, reason, deadline);
  } else {
    refuse_as_member(name, rank, reason, deadline);
  }
  return why;
}

Result<ShmSegment> ShmSegment::open(const std::string& name, int rank, const ShmGeometry& geometry,
                                    const Deadline& deadline) {
  const size_t total = geometry.total_bytes();
  Result<int> opened =
      rank == 0 ? create_fd(name, total, geometry.slot_bytes) : attach_fd(name, rank, deadline);
  FUSCO_RETURN_IF_ERROR(opened.status());
  const int fd = opened.value();
  if (rank != 0) {
    struct stat st = {};
    fstat(fd, &st);
    if (static_cast<size_t>(st.st_size) != total) {
      Status refused = refusal_in(fd, deadline);
      if (refused.ok()) {
        refused = Status(StatusCode::kMismatch,
                         "it is " + std::to_string(st.st_size) + " bytes but rank " +
                             std::to_string(rank) + " expects " + std::to_string(total) +
                             " (world size " + std::to_string(geometry.world_size) +
                             ", FUSCO_SHM_SLOT_BYTES " + std::to_string(geometry.slot_bytes) +
                             "): ranks disagree on one of them");
        report_to_group(map_header(fd), refused.message(), StatusCode::kMismatch, deadline);
      }
      close(fd);
      return segment_error(refused.code(), name, rank, refused.message());
    }
  }

  void* mapped = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int map_errno = errno;
  close(fd);
  if (mapped == MAP_FAILED) {
    if (rank == 0) {
      shm_unlink(name.c_str());
    }
    return segment_error(
        StatusCode::kOutOfMemory, name, rank,
        "cannot map " + std::to_string(total) + " bytes (" + errno_text(map_errno) + ")");
  }
  ShmSegment segment;
  segment.base_ = static_cast<std::byte*>(mapped);
  segment.mapped_bytes_ = total;
  segment.geometry_ = geometry;
  ShmHeader& header = segment.header();
  const auto world = static_cast<uint32_t>(geometry.world_size);
  bool arrived = false;  // this rank is counted in header.attached
  // A failure after mapping is the group's: the others learn it at once (a break), and rank 0
  // removes the name only once every rank arrived (or at the deadline), so late ones learn it.
  auto fail = [&](StatusCode code, const std::string& what) {
    record_break(header, "rank " + std::to_string(rank) + ": " + what, code);
    if (!arrived) header.attached.fetch_add(1, std::memory_order_acq_rel);
    arrived = true;
    if (rank == 0) {
      poll_until(deadline,
                 [&] { return header.attached.load(std::memory_order_acquire) >= world; });
      shm_unlink(name.c_str());
    }
    return segment_error(code, name, rank, what);
  };

  if (rank == 0) {
    // The new segment is zero-filled: every atomic starts at 0.
    new (&header) ShmHeader();
    header.creator_pid.store(static_cast<int32_t>(getpid()), std::memory_order_relaxed);
    header.world_size = geometry.world_size;
    header.slot_bytes = geometry.slot_bytes;
    header.mailbox_bytes = geometry.mailbox_bytes;
    header.total_bytes = total;
    header.magic.store(kShmReady, std::memory_order_release);
  } else if (!laid_out(header, deadline)) {
    return fail(StatusCode::kTimeout,
                "rank 0 did not lay it out within " + std::to_string(deadline.timeout_ms) + " ms");
  }
  if (header.world_size != geometry.world_size || header.slot_bytes != geometry.slot_bytes) {
    return fail(StatusCode::kMismatch,
                "rank 0 made it for world size " + std::to_string(header.world_size) +
                    " and slots of " + std::to_string(header.slot_bytes) +
                    " bytes; this rank has world size " + std::to_string(geometry.world_size) +
                    " and FUSCO_SHM_SLOT_BYTES " + std::to_string(geometry.slot_bytes));
  }
  int32_t nobody = 0;
  const auto pid = static_cast<int32_t>(getpid());
  if (!segment.rank_words(rank).pid.compare_exchange_strong(nobody, pid)) {
    return fail(StatusCode::kInvalidArgument,
                "rank " + std::to_string(rank) + " is already attached by process " +
                    std::to_string(nobody) + " (two processes passed the same rank)");
  }
  header.attached.fetch_add(1, std::memory_order_acq_rel);
  arrived = true;
  const bool attached = poll_until(deadline, [&] {
    return header.attached.load(std::memory_order_acquire) >= world ||
           header.broken.load(std::memory_order_acquire) != 0;
  });
  if (header.broken.load(std::memory_order_acquire) != 0) {
    const Status broken = break_status(header);
    return fail(broken.code(), broken.message());
  }
  if (!attached) {
    std::string missing;
    for (int r = 0; r < geometry.world_size; ++r) {
      if (segment.rank_words(r).pid.load() == 0) {
        missing += (missing.empty() ? "" : ", ") + std::to_string(r);
      }
    }
    return fail(StatusCode::kTimeout, "rank(s) " + missing + " did not attach within " +
                                          std::to_string(deadline.timeout_ms) + " ms");
  }
  if (rank == 0) {
    shm_unlink(name.c_str());  // every rank holds a mapping; the name is no longer needed
  }
  return segment;
}

bool record_break(ShmHeader& header, const std::string& reason, StatusCode code) {
  // Sequentially consistent, as the touching marks (machine_peers.hpp) it is ordered against.
  const bool first = header.broken.exchange(1, std::memory_order_seq_cst) == 0;
  if (first) {
    const size_t n = std::min(reason.size(), sizeof(header.reason) - 1);
    std::memcpy(header.reason, reason.data(), n);
    header.reason[n] = '\0';
    header.reason_code = static_cast<int32_t>(code);
    header.reason_ready.store(1, std::memory_order_release);
  }
  return first;
}

Status break_status(const ShmHeader& header) {
  const auto until = Clock::now() + std::chrono::seconds(1);
  while (header.reason_ready.load(std::memory_order_acquire) == 0 && Clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::microseconds(20));
  }
  if (header.reason_ready.load(std::memory_order_acquire) == 0) {
    return Status(StatusCode::kAborted, "reason not recorded");
  }
  return Status(static_cast<StatusCode>(header.reason_code), header.reason);
}

bool process_exited(int32_t pid) {
  if (pid <= 0) {
    return false;
  }
  if (kill(pid, 0) != 0 && errno == ESRCH) {
    return true;
  }
  // A killed child stays a zombie until its parent reaps it: state Z or X in /proc.
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(stat, text);
  const size_t paren = text.rfind(')');
  if (paren == std::string::npos || paren + 2 >= text.size()) {
    return !stat.is_open();
  }
  const char state = text[paren + 2];
  return state == 'Z' || state == 'X';
}

}  // namespace fusco::transport
