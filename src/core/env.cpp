#include "core/env.hpp"

#include <cstdlib>
#include <initializer_list>
#include <string>

#include "fusco/options.hpp"

namespace fusco::core {

std::optional<std::string> env_string(const char* name) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
  if (value == nullptr || value[0] == '\0') {
    return std::nullopt;
  }
  return std::string(value);
}

Result<int64_t> env_int(const char* name, int64_t fallback, int64_t min, int64_t max) {
  const std::optional<std::string> text = env_string(name);
  if (!text) {
    return fallback;
  }
  const std::string range =
      " (expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "])";
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(text->c_str(), &end, 10);
  if (errno != 0 || end == text->c_str() || *end != '\0') {
    return Status(StatusCode::kInvalidArgument,
                  std::string(name) + "='" + *text + "' is not an integer" + range);
  }
  if (value < min || value > max) {
    return Status(StatusCode::kInvalidArgument,
                  std::string(name) + "=" + *text + " is out of range" + range);
  }
  return static_cast<int64_t>(value);
}

Result<int64_t> timeout_ms_from_env() {
  return env_int("FUSCO_TIMEOUT_MS", PlanOptions().timeout_ms, 1, 86400000);
}

Result<int64_t> shm_slot_bytes_from_env() {
  return env_int("FUSCO_SHM_SLOT_BYTES", kDefaultShmSlotBytes, int64_t{1} << 12, int64_t{1} << 30);
}

Result<int32_t> shm_direct_from_env() {
  const std::optional<std::string> text = env_string("FUSCO_SHM_DIRECT");
  if (!text || *text == "auto") return -1;
  if (*text == "0" || *text == "1") return *text == "1" ? 1 : 0;
  return Status(StatusCode::kInvalidArgument,
                "FUSCO_SHM_DIRECT='" + *text + "' must be auto, 0 or 1");
}

Result<int64_t> nccl_window_bytes_from_env(int64_t fallback) {
  return env_int("FUSCO_NCCL_WINDOW_BYTES", fallback, int64_t{1} << 12, int64_t{1} << 40);
}

Result<bool> nccl_check_calls_from_env(bool fallback) {
  Result<int64_t> value = env_int("FUSCO_NCCL_CHECK_CALLS", fallback ? 1 : 0, 0, 1);
  FUSCO_RETURN_IF_ERROR(value.status());
  return value.value() == 1;
}

namespace {

// The index of environment variable `name`'s value among `names`; unset: `fallback`.
Result<int32_t> env_choice(const char* name, std::initializer_list<const char*> names,
                           int32_t fallback) {
  const std::optional<std::string> text = env_string(name);
  if (!text) return fallback;
  int32_t index = 0;
  std::string listed;
  for (const char* choice : names) {
    if (*text == choice) return index;
    listed += (index++ == 0 ? "" : ", ") + std::string(choice);
  }
  return Status(StatusCode::kInvalidArgument,
                std::string(name) + " = '" + *text + "' is not one of " + listed);
}

}  // namespace

Result<int32_t> ucx_protocol_from_env() {
  return env_choice("FUSCO_UCX_PROTOCOL", {"auto", "put", "message"}, 0);
}

Result<int32_t> nccl_path_from_env(int32_t fallback) {
  return env_choice("FUSCO_NCCL_PATH", {"auto", "device", "sendrecv"}, fallback);
}

Result<int32_t> nccl_inter_node_from_env(int32_t fallback) {
  return env_choice("FUSCO_NCCL_INTER_NODE", {"sendrecv", "gin"}, fallback);
}

}  // namespace fusco::core

namespace fusco {

Result<PlanOptions> PlanOptions::from_env() {
  PlanOptions options;
  if (auto text = core::env_string("FUSCO_DEDUP")) {
    Result<Dedup> dedup = dedup_from_name(*text);
    if (!dedup.ok()) {
      return Status(StatusCode::kInvalidArgument, "FUSCO_DEDUP: " + dedup.status().message());
    }
    options.dedup = dedup.value();
  }
  if (auto text = core::env_string("FUSCO_PROCESS_RELAYS")) {
    Result<ProcessRelays> mode = process_relays_from_name(*text);
    if (!mode.ok()) {
      return Status(StatusCode::kInvalidArgument,
                    "FUSCO_PROCESS_RELAYS: " + mode.status().message());
    }
    options.process_relays = mode.value();
  }
  if (auto text = core::env_string("FUSCO_RELAY")) {
    Result<RelayPolicy> relay = relay_policy_from_name(*text);
    if (!relay.ok()) {
      return Status(StatusCode::kInvalidArgument, "FUSCO_RELAY: " + relay.status().message());
    }
    options.relay = relay.value();
  }
  Result<int64_t> chunk =
      core::env_int("FUSCO_CHUNK_BYTES", options.chunk_bytes, int64_t{1} << 10, int64_t{1} << 30);
  if (!chunk.ok()) {
    return chunk.status();
  }
  options.chunk_bytes = chunk.value();
  Result<int64_t> timeout = core::timeout_ms_from_env();
  if (!timeout.ok()) {
    return timeout.status();
  }
  options.timeout_ms = timeout.value();
  Result<int64_t> buffer = core::env_int("FUSCO_COMBINE_BUFFER_BYTES", options.combine_buffer_bytes,
                                         0, int64_t{1} << 40);
  if (!buffer.ok()) {
    return buffer.status();
  }
  if (buffer.value() != 0 && buffer.value() < 1024) {
    return Status(StatusCode::kInvalidArgument,
                  "FUSCO_COMBINE_BUFFER_BYTES=" + std::to_string(buffer.value()) +
                      " is out of range (expected 0, or an integer in [1024, 2^40])");
  }
  options.combine_buffer_bytes = buffer.value();
  return options;
}

}  // namespace fusco
