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

}  // namespace fusco::core
