#pragma once

// Relays between processes. Under node dedup a relay receives one entry per (token, node)
// from every source on another node; when it cannot store into its node peers' buffers
// (processes), the rows of its peers wait in a forward buffer and go on in a second hop. This
// numbers those rows (StagedIn::forward, PlanData::forward_out) and tells every node peer,
// in one more exchange, where the rows it will get from each relay land (forward_in).

#include "plan/plan_data.hpp"
#include "transport/transport.hpp"

namespace fusco::plan {

/// Collective (every rank of the group calls it when the plan has relays between processes).
Status set_up_forwarding(transport::Transport& transport, detail::PlanData& plan,
                         const transport::Deadline& deadline);

}  // namespace fusco::plan
