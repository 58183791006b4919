#include "fusco/version.hpp"

namespace fusco {

#define FUSCO_STRINGIFY_(x) #x
#define FUSCO_STRINGIFY(x) FUSCO_STRINGIFY_(x)

const char* version() {
  return FUSCO_STRINGIFY(FUSCO_VERSION_MAJOR) "." FUSCO_STRINGIFY(
      FUSCO_VERSION_MINOR) "." FUSCO_STRINGIFY(FUSCO_VERSION_PATCH);
}

}  // namespace fusco
