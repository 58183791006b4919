#pragma once

// Flag-value parsing shared by fusco_bench and fusco_plan: errors name the flag and value.

#include <cstdint>
#include <cstdlib>
#include <string>

#include "fusco/status.hpp"

namespace fusco::bench {

inline Status bad_flag(const std::string& flag, const std::string& value, const std::string& why) {
  return Status(StatusCode::kInvalidArgument,
                "flag " + flag + " = '" + value + "': " + why + " (see --help)");
}

inline Result<int64_t> flag_integer(const std::string& flag, const std::string& value, int64_t min,
                                    int64_t max) {
  char* end = nullptr;
  const long long parsed = std::strtoll(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0') {
    return bad_flag(flag, value, "not an integer");
  }
  if (parsed < min || parsed > max) {
    return bad_flag(flag, value,
                    "outside [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return static_cast<int64_t>(parsed);
}

/// Parses integer flag `flag` = `value` in [min, max] into `*field`.
template <typename Field>
Status set_flag_integer(Field* field, const std::string& flag, const std::string& value,
                        int64_t min, int64_t max) {
  Result<int64_t> parsed = flag_integer(flag, value, min, max);
  FUSCO_RETURN_IF_ERROR(parsed.status());
  *field = static_cast<Field>(parsed.value());
  return Status();
}

}  // namespace fusco::bench
