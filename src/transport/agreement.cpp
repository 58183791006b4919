#include "transport/agreement.hpp"

#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace fusco::transport {

namespace {

constexpr uint32_t kAgreementMagic = 0xA61EE002u;
constexpr size_t kReasonBytes = 384;  // the start of a failing rank's message

// The one message every rank sends at the start of every collective call.
struct AgreementMessage {
  uint32_t magic = kAgreementMagic;
  int32_t kind = 0;
  int32_t ok = 0;
  int32_t code = 0;  // the failing rank's StatusCode
  int32_t field_count = 0;
  int32_t reserved = 0;  // no padding bytes go out uninitialised
  int64_t fields[kMaxAgreedFields] = {};
  uint64_t payload_bytes = 0;
  std::byte payload[kMaxAgreementPayload] = {};
  char reason[kReasonBytes] = {};  // NUL-terminated; last, so unused bytes trim off the end
};
static_assert(std::is_trivially_copyable_v<AgreementMessage>);
static_assert(sizeof(AgreementMessage) ==
                  24 + 8 * kMaxAgreedFields + 8 + kMaxAgreementPayload + kReasonBytes,
              "no padding inside the message");

std::string shown(const AgreedField& field, int64_t value) {
  return field.show != nullptr ? field.show(value) : std::to_string(value);
}

// Every rank sent a message of this fusco and is in the same collective.
Status check_calls(const std::vector<AgreementMessage>& all) {
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].magic != kAgreementMagic) {
      return Status(StatusCode::kInternal, "rank " + std::to_string(r) +
                                               " sent no call-start message (a transport fault)");
    }
  }
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r].kind != all[0].kind) {
      return Status(StatusCode::kMismatch,
                    std::string("ranks are in different collectives: rank 0 is in ") +
                        call_kind_name(all[0].kind) + ", rank " + std::to_string(r) + " is in " +
                        call_kind_name(all[r].kind) +
                        " (every rank must make the same calls in the same order)");
    }
  }
  return Status();
}

// Every rank's message has the same fields and payload size (checked once no rank failed: a
// failing rank may not know its fields).
Status check_shapes(const std::vector<AgreementMessage>& all) {
  for (size_t r = 1; r < all.size(); ++r) {
    if (all[r].field_count != all[0].field_count || all[r].payload_bytes != all[0].payload_bytes) {
      return Status(StatusCode::kMismatch, "rank " + std::to_string(r) + "'s " +
                                               call_kind_name(all[r].kind) +
                                               " differs in shape from rank 0's (another fusco "
                                               "version?)");
    }
  }
  return Status();
}

// Another rank's failure as this rank reports it: its code, and its message's start.
Status their_failure(const AgreementMessage& theirs, size_t r, const Proposal& mine,
                     const char* what) {
  const std::string reason(theirs.reason, strnlen(theirs.reason, kReasonBytes));
  const bool known = theirs.code > static_cast<int32_t>(StatusCode::kOk) &&
                     theirs.code <= static_cast<int32_t>(StatusCode::kCapacityExceeded);
  const StatusCode code = known ? static_cast<StatusCode>(theirs.code) : StatusCode::kInternal;
  const bool argument = code == StatusCode::kInvalidArgument;
  if (mine.kind == CallKind::kSetup || !argument) {
    return Status(code, std::string(what) + " failed on rank " + std::to_string(r) + ": " + reason);
  }
  return Status(code, "rank " + std::to_string(r) + " rejected its arguments to " +
                          call_kind_name(static_cast<int32_t>(mine.kind)) + " (" + reason +
                          "); nothing was done");
}

Status check_verdicts(const std::vector<AgreementMessage>& all, const Proposal& mine,
                      const char* what) {
  FUSCO_RETURN_IF_ERROR(mine.local);
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].ok == 0) return their_failure(all[r], r, mine, what);
  }
  return Status();
}

Status check_fields(const std::vector<AgreementMessage>& all, const Proposal& mine) {
  for (size_t r = 1; r < all.size(); ++r) {
    for (size_t i = 0; i < mine.fields.size(); ++i) {
      if (all[r].fields[i] != all[0].fields[i]) {
        const AgreedField& field = mine.fields[i];
        return Status(StatusCode::kMismatch,
                      std::string(field.name) + " differs across ranks: rank 0 has " +
                          shown(field, all[0].fields[i]) + ", rank " + std::to_string(r) + " has " +
                          shown(field, all[r].fields[i]));
      }
    }
  }
  return Status();
}

}  // namespace

std::string show_hex(int64_t value) {
  char text[19];
  std::snprintf(text, sizeof(text), "0x%016llx", static_cast<unsigned long long>(value));
  return text;
}

const char* call_kind_name(int32_t kind) {
  switch (static_cast<CallKind>(kind)) {
    case CallKind::kPlan:
      return "plan";
    case CallKind::kDispatch:
      return "dispatch";
    case CallKind::kCombine:
      return "combine";
    case CallKind::kSetup:
      return "group setup";
  }
  return "an unknown call";
}

namespace {

// The start of `text` that fits `bytes` - 1 bytes (room for the NUL), cut at a UTF-8
// character boundary and marked with "..." when cut.
std::string fitted(const std::string& text, size_t bytes) {
  if (text.size() < bytes) return text;
  size_t end = bytes - 4;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end) + "...";
}

// This rank's message. A proposal too big for it (a fusco bug) still goes out, as this rank's
// failure, so that no peer waits for it.
AgreementMessage message_of(const Proposal& mine, const char* what) {
  AgreementMessage message;
  message.kind = static_cast<int32_t>(mine.kind);
  Status local = mine.local;
  if (mine.fields.size() > kMaxAgreedFields || mine.payload_bytes > kMaxAgreementPayload) {
    local = Status(StatusCode::kInternal, std::string(what) + ": a call-start message of " +
                                              std::to_string(mine.fields.size()) + " fields and " +
                                              std::to_string(mine.payload_bytes) +
                                              " payload bytes does not fit");
  } else {
    message.field_count = static_cast<int32_t>(mine.fields.size());
    for (size_t i = 0; i < mine.fields.size(); ++i) message.fields[i] = mine.fields[i].value;
    message.payload_bytes = mine.payload_bytes;
    if (mine.payload_bytes > 0) std::memcpy(message.payload, mine.payload, mine.payload_bytes);
  }
  message.ok = local.ok() ? 1 : 0;
  message.code = static_cast<int32_t>(local.code());
  const std::string reason = fitted(local.message(), kReasonBytes);
  reason.copy(message.reason, kReasonBytes - 1);
  return message;
}

// This rank's own verdict: its proposal's, or the failure message_of recorded.
Status own_verdict(const AgreementMessage& message, const Proposal& mine) {
  if (message.ok == 1 || !mine.local.ok()) return mine.local;
  return Status(StatusCode::kInternal, message.reason);
}

// The verdict from every rank's message, the same on every rank.
Status decide(const std::vector<AgreementMessage>& all, const AgreementMessage& message,
              const Proposal& mine, std::byte* payloads, const char* what) {
  FUSCO_RETURN_IF_ERROR(check_calls(all));
  FUSCO_RETURN_IF_ERROR(own_verdict(message, mine));
  FUSCO_RETURN_IF_ERROR(check_verdicts(all, mine, what));
  FUSCO_RETURN_IF_ERROR(check_shapes(all));
  FUSCO_RETURN_IF_ERROR(check_fields(all, mine));
  for (size_t r = 0; payloads != nullptr && r < all.size(); ++r) {
    std::memcpy(payloads + r * mine.payload_bytes, all[r].payload, mine.payload_bytes);
  }
  return Status();
}

}  // namespace

Status agree(Transport& transport, const Proposal& mine, std::byte* payloads,
             const Deadline& deadline, const char* what) {
  const AgreementMessage message = message_of(mine, what);
  std::vector<AgreementMessage> all(static_cast<size_t>(transport.world_size()));
  FUSCO_RETURN_IF_ERROR(transport.allgather(&message, sizeof(AgreementMessage),
                                            reinterpret_cast<std::byte*>(all.data()), deadline,
                                            what));
  return decide(all, message, mine, payloads, what);
}

Status agree(const ByteAllgather& allgather, int world, const Proposal& mine, std::byte* payloads,
             const char* what) {
  if (payloads != nullptr && world <= 0) {
    return Status(StatusCode::kInternal,
                  std::string(what) + ": payloads need the group's size (world > 0)");
  }
  const AgreementMessage message = message_of(mine, what);
  // The unused end of the message (zeros) stays home; receivers fill it back in.
  std::string bytes(reinterpret_cast<const char*>(&message), sizeof(AgreementMessage));
  bytes.erase(bytes.find_last_not_of('\0') + 1);
  Result<std::vector<std::string>> gathered = allgather(bytes);
  FUSCO_RETURN_IF_ERROR(gathered.status());
  const size_t ranks = gathered.value().size();
  if (ranks == 0 || (world > 0 && ranks != static_cast<size_t>(world))) {
    return Status(StatusCode::kMismatch, std::string(what) + ": the allgather returned " +
                                             std::to_string(ranks) + " entries for a group of " +
                                             std::to_string(world) + " ranks");
  }
  std::vector<AgreementMessage> all(ranks);
  for (size_t r = 0; r < ranks; ++r) {
    const std::string& theirs = gathered.value()[r];
    if (theirs.size() > sizeof(AgreementMessage)) {
      return Status(StatusCode::kMismatch,
                    std::string(what) + ": rank " + std::to_string(r) + " sent " +
                        std::to_string(theirs.size()) + " bytes, more than the " +
                        std::to_string(sizeof(AgreementMessage)) +
                        " this fusco sends at most (another fusco version?)");
    }
    std::memcpy(&all[r], theirs.data(), theirs.size());
    std::memset(reinterpret_cast<char*>(&all[r]) + theirs.size(), 0,
                sizeof(AgreementMessage) - theirs.size());
  }
  return decide(all, message, mine, payloads, what);
}

Status agree_on_step(const ByteAllgather& allgather, const Status& mine, const char* what) {
  Proposal proposal;
  proposal.kind = CallKind::kSetup;
  proposal.local = mine;
  return agree(allgather, 0, proposal, nullptr, what);
}

}  // namespace fusco::transport
