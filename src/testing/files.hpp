#pragma once

// Reading the command-line tools' input files with a bound, so that a huge or endless file
// (a device, a pipe) is refused with a message instead of exhausting memory.

#include <cstdint>
#include <string>

#include "fusco/status.hpp"

namespace fusco::testing {

/// The whole file at `path`, or kInvalidArgument naming the path when it cannot be opened or
/// holds more than `max_bytes` bytes.
Result<std::string> read_file_bounded(const std::string& path, int64_t max_bytes);

/// Whether `path` can be opened for writing (never truncated; a missing file is created to
/// find out and removed again).
Status check_writable(const std::string& path);

}  // namespace fusco::testing
