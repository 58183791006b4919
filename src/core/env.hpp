#pragma once

// The one place where fusco reads environment variables. Each variable is documented where
// its option is declared (include/fusco/options.hpp) and in docs/api.md.

#include <cstdint>
#include <optional>
#include <string>

#include "fusco/status.hpp"

namespace fusco::core {

/// The value of environment variable `name`, or nullopt when it is unset or empty.
std::optional<std::string> env_string(const char* name);

/// Parses environment variable `name` as an integer in [min, max]. Unset: `fallback`.
/// Malformed or out of range: kInvalidArgument naming the variable, its text and the range.
Result<int64_t> env_int(const char* name, int64_t fallback, int64_t min, int64_t max);

/// The bound of every wait, in ms: FUSCO_TIMEOUT_MS, 1 .. 86400000, default
/// PlanOptions::timeout_ms (60000). Also bounds joining a group when no timeout is passed.
Result<int64_t> timeout_ms_from_env();

/// Bytes of one staging slot of the shared-memory transport: FUSCO_SHM_SLOT_BYTES, 4 KiB ..
/// 1 GiB, default kDefaultShmSlotBytes.
inline constexpr int64_t kDefaultShmSlotBytes = int64_t{1} << 20;
Result<int64_t> shm_slot_bytes_from_env();
/// Whether the shared-memory transport lets processes store into each other's receive
/// buffers (shared regions, the direct ability): FUSCO_SHM_DIRECT unset or "auto" -1 (on
/// when every rank can map the others' regions), "0" 0 (never), "1" 1 (required: creation
/// fails when some rank cannot).
Result<int32_t> shm_direct_from_env();

/// How the UCX transport moves chunks to peers it cannot map: FUSCO_UCX_PROTOCOL, "auto" 0
/// (tagged messages), "put" 1 (RDMA put + flush + signal), "message" 2 (messages to every
/// peer, mapped or not). Unset: 0.
Result<int32_t> ucx_protocol_from_env();

/// The GPU engine's NCCL windows (fusco/nccl.hpp): FUSCO_NCCL_WINDOW_BYTES, 4 KiB .. 1 TiB,
/// default `fallback`; FUSCO_NCCL_CHECK_CALLS, 0 or 1, default `fallback`.
Result<int64_t> nccl_window_bytes_from_env(int64_t fallback);
Result<bool> nccl_check_calls_from_env(bool fallback);
/// FUSCO_NCCL_PATH: "auto" 0, "device" 1, "sendrecv" 2; unset: `fallback`.
Result<int32_t> nccl_path_from_env(int32_t fallback);
/// FUSCO_NCCL_INTER_NODE: "sendrecv" 0, "gin" 1; unset: `fallback`.
Result<int32_t> nccl_inter_node_from_env(int32_t fallback);

}  // namespace fusco::core
