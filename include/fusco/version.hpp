#pragma once

/// Library version: major, minor, patch.
#define FUSCO_VERSION_MAJOR 0
#define FUSCO_VERSION_MINOR 1
#define FUSCO_VERSION_PATCH 0

namespace fusco {
/// The version as "major.minor.patch".
const char* version();
}  // namespace fusco
