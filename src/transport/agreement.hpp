#pragma once

// How the ranks of a group agree at the start of every collective call (plan, dispatch,
// combine): each rank brings its verdict on its own arguments, the values that must be equal
// on every rank (named, for messages) and a payload for its peers. One message of the same
// size for every kind of call is gathered from each rank, and every rank reaches the same
// verdict from the same messages. Ranks that are in different collectives therefore read each
// other's message correctly and say so, instead of misreading it. The same agreement runs over
// a launcher's byte allgather (MPI, torch.distributed) for the steps of setting a group up,
// where there is no transport yet or the engine is not the host one (the NCCL engine).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "fusco/status.hpp"
#include "transport/transport.hpp"

namespace fusco::transport {

/// The collective a rank is in.
enum class CallKind : int32_t { kPlan = 1, kDispatch = 2, kCombine = 3, kSetup = 4 };

/// "plan", "dispatch", "combine", "group setup" ("an unknown call" otherwise).
const char* call_kind_name(int32_t kind);

/// One value every rank must pass equal. `name` is a string literal; `show`, when set,
/// prints a value for messages (a dtype's name, a fingerprint in hex).
struct AgreedField {
  const char* name = "";
  int64_t value = 0;
  std::string (*show)(int64_t value) = nullptr;
};

/// A field's value in hex ("0x00000000000000ff"): ids and fingerprints.
std::string show_hex(int64_t value);

inline constexpr size_t kMaxAgreedFields = 20;
inline constexpr size_t kMaxAgreementPayload = 512;

/// What one rank brings to the start of a collective call.
struct Proposal {
  CallKind kind = CallKind::kPlan;
  Status local;                     ///< This rank's verdict on its own arguments.
  std::vector<AgreedField> fields;  ///< Equal on every rank, in the same order.
  const void* payload = nullptr;    ///< Gathered from every rank, not compared.
  size_t payload_bytes = 0;         ///< The same on every rank of one kind of call.
};

/// Collective. Gathers every rank's proposal; the verdict, the same on every rank, is the
/// first of: ranks in different collectives (kMismatch naming both), this rank's own failure,
/// the first other rank's failure with its code and the start of its message ("rank r rejected
/// its arguments to <call> (<its message>); nothing was done" for kInvalidArgument, "<what>
/// failed on rank r: <its message>" otherwise), a field that differs (kMismatch "<name>
/// differs across ranks: rank 0 has X, rank r has Y"). On success, `payloads` (when not null)
/// receives every rank's payload, rank after rank, payload_bytes each.
Status agree(Transport& transport, const Proposal& mine, std::byte* payloads,
             const Deadline& deadline, const char* what);

/// Every rank's bytes, rank after rank (Communicator::BootstrapAllgather's shape).
using ByteAllgather = std::function<Result<std::vector<std::string>>(const std::string& mine)>;

/// The same agreement over a byte allgather, for steps outside a transport (`what` names the
/// step in messages). `world` > 0: the allgather must return that many entries (kMismatch
/// otherwise), and `payloads` holds world * payload_bytes bytes; 0: any number (no payloads).
/// Only the used start of the message travels.
Status agree(const ByteAllgather& allgather, int world, const Proposal& mine, std::byte* payloads,
             const char* what);

/// A setup step's verdict only: agree(allgather, 0, {kSetup, mine}, nullptr, what).
Status agree_on_step(const ByteAllgather& allgather, const Status& mine, const char* what);

}  // namespace fusco::transport
