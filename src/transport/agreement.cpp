#include "transport/agreement.hpp"

#include <cstdio>
#include <cstring>
#include <type_traits>

namespace fusco::transport {

namespace {

constexpr uint32_t kAgreementMagic = 0xA61EE001u;

// The one message every rank sends at the start of every collective call.
struct AgreementMessage {
  uint32_t magic = kAgreementMagic;
  int32_t kind = 0;
  int32_t ok = 0;
  int32_t field_count = 0;
  int64_t fields[kMaxAgreedFields] = {};
  uint64_t payload_bytes = 0;
  std::byte payload[kMaxAgreementPayload] = {};
};
static_assert(std::is_trivially_copyable_v<AgreementMessage>);

std::string shown(const AgreedField& field, int64_t value) {
  return field.show != nullptr ? field.show(value) : std::to_string(value);
}

Status check_kinds(const std::vector<AgreementMessage>& all) {
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
    if (all[r].field_count != all[0].field_count || all[r].payload_bytes != all[0].payload_bytes) {
      return Status(StatusCode::kMismatch, "rank " + std::to_string(r) + "'s " +
                                               call_kind_name(all[r].kind) +
                                               " differs in shape from rank 0's (another fusco "
                                               "version?)");
    }
  }
  return Status();
}

Status check_verdicts(const std::vector<AgreementMessage>& all, const Proposal& mine) {
  FUSCO_RETURN_IF_ERROR(mine.local);
  for (size_t r = 0; r < all.size(); ++r) {
    if (all[r].ok == 0) {
      return Status(StatusCode::kInvalidArgument,
                    "rank " + std::to_string(r) + " rejected its arguments to " +
                        call_kind_name(static_cast<int32_t>(mine.kind)) +
                        " (see its error); nothing was done");
    }
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
  }
  return "an unknown call";
}

Status agree(Transport& transport, const Proposal& mine, std::byte* payloads,
             const Deadline& deadline, const char* what) {
  if (mine.fields.size() > kMaxAgreedFields || mine.payload_bytes > kMaxAgreementPayload) {
    return Status(StatusCode::kInternal, std::string(what) + ": a call-start message of " +
                                             std::to_string(mine.fields.size()) + " fields and " +
                                             std::to_string(mine.payload_bytes) +
                                             " payload bytes does not fit");
  }
  AgreementMessage message;
  message.kind = static_cast<int32_t>(mine.kind);
  message.ok = mine.local.ok() ? 1 : 0;
  message.field_count = static_cast<int32_t>(mine.fields.size());
  for (size_t i = 0; i < mine.fields.size(); ++i) message.fields[i] = mine.fields[i].value;
  message.payload_bytes = mine.payload_bytes;
  if (mine.payload_bytes > 0) std::memcpy(message.payload, mine.payload, mine.payload_bytes);

  std::vector<AgreementMessage> all(static_cast<size_t>(transport.world_size()));
  FUSCO_RETURN_IF_ERROR(transport.allgather(
      &message, sizeof(message), reinterpret_cast<std::byte*>(all.data()), deadline, what));
  FUSCO_RETURN_IF_ERROR(check_kinds(all));
  FUSCO_RETURN_IF_ERROR(check_verdicts(all, mine));
  FUSCO_RETURN_IF_ERROR(check_fields(all, mine));
  for (size_t r = 0; payloads != nullptr && r < all.size(); ++r) {
    std::memcpy(payloads + r * mine.payload_bytes, all[r].payload, mine.payload_bytes);
  }
  return Status();
}

}  // namespace fusco::transport
