#pragma once

// When a wait runs out, which peers are stuck and which are only waiting too. Every rank shows
// that it is inside fusco while it waits (UCX: it answers probes; shared memory: its heartbeat
// word moves). A rank whose wait ran out asks for that sign during kSilenceGrace and names the
// peers that give none: a rank waiting for a relay that waits for a stopped rank names the
// stopped rank, not the relay.

#include <chrono>
#include <string>
#include <vector>

namespace fusco::transport {

/// How long a rank whose wait ran out waits for its peers' signs of life.
inline constexpr auto kSilenceGrace = std::chrono::milliseconds(300);

/// What a timeout message adds about the peers that gave no sign of life.
inline std::string silence_text(const std::vector<int>& silent) {
  if (silent.empty()) {
    return "; every other rank is inside fusco, so none is stopped (one may be in another call)";
  }
  std::string names;
  for (const int r : silent) names += (names.empty() ? "" : ", ") + std::to_string(r);
  return "; rank(s) " + names + " do not answer (stopped, hung, cut off, or not in this call)";
}

}  // namespace fusco::transport
