#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace fusco {

/// What went wrong. One code space for every failure the library reports.
enum class StatusCode : int32_t {
  kOk = 0,
  kInvalidArgument = 1,  ///< A caller-supplied value is out of range or inconsistent.
  kMismatch = 2,         ///< Ranks disagree on something that must be equal everywhere.
  kTimeout = 3,          ///< A bounded wait expired; the message names the peer.
  kAborted = 4,          ///< The communicator is unusable and must be recreated.
  kUnsupported = 5,      ///< The request is valid but not offered (e.g. fp8 combine).
  kOutOfMemory = 6,      ///< An allocation failed.
  kInternal = 7,         ///< A broken invariant inside fusco: a bug, please report.
  /// A capacity-bounded receive layout asked to fail on overflow, and an expert overflowed.
  kCapacityExceeded = 8,
};

/// Short stable name of a status code ("invalid_argument", "timeout", ...).
const char* status_code_name(StatusCode code);

/// The result of an operation: a code and, on failure, a message that names the argument,
/// the value and the limit (or the peer, for waits). No exception crosses the library boundary.
class [[nodiscard]] Status {
 public:
  /// Success.
  Status() = default;
  /// A failure with `code` and a human-readable `message`.
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  /// Success, spelled out.
  static Status ok_status() { return Status(); }

  /// True when the operation succeeded.
  bool ok() const { return code_ == StatusCode::kOk; }
  /// The code (kOk on success).
  StatusCode code() const { return code_; }
  /// The message (empty on success).
  const std::string& message() const { return message_; }
  /// "code: message", or "ok".
  std::string to_string() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

/// Either a value of type T or a failed Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  /// A successful result holding `value`.
  Result(T value) : data_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  /// A failed result. `status` must not be ok.
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).ok()) {
      data_ = Status(StatusCode::kInternal, "Result constructed from an ok Status without value");
    }
  }

  /// True when a value is held.
  bool ok() const { return std::holds_alternative<T>(data_); }
  /// The status: ok when a value is held.
  Status status() const { return ok() ? Status() : std::get<Status>(data_); }
  /// The value; only valid when ok().
  T& value() & { return std::get<T>(data_); }
  /// The value; only valid when ok().
  const T& value() const& { return std::get<T>(data_); }
  /// The value, moved out; only valid when ok().
  T&& value() && { return std::get<T>(std::move(data_)); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace fusco

/// Returns the Status of `expr` from the enclosing function when it is not ok.
#define FUSCO_RETURN_IF_ERROR(expr)         \
  do {                                      \
    ::fusco::Status fusco_status_ = (expr); \
    if (!fusco_status_.ok()) {              \
      return fusco_status_;                 \
    }                                       \
  } while (false)
