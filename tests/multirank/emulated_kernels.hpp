#pragma once

// What the GPU's direct kernels compute, run on the CPU for the programme tests: every
// rank's expert outputs as the table the combine kernel reads, and one rank's combine through
// the per-element function the kernel calls.

#include <cstddef>
#include <vector>

#include "core/direct_steps.hpp"
#include "multirank/harness.hpp"
#include "plan/plan_data.hpp"

namespace fusco::testing {

/// Every rank's expert outputs (y_of, rows strided as the case says) and top-k weights, with
/// the table of the expert outputs (entries 0 .. W - 1).
struct ExpertOutputs {
  std::vector<std::vector<std::byte>> y;
  std::vector<std::vector<std::byte>> weights;
  core::PeerTable table{};
};
ExpertOutputs expert_outputs_of(const Case& c, const std::vector<Plan>& plans);

/// `plan`'s combine as the direct combine kernel computes it: per token and element, the
/// plan's groups over `terms` read through `table`, with the rank's top-k `weights`.
std::vector<std::byte> combine_as_the_kernel(const Case& c, const detail::PlanData& plan,
                                             const core::PeerTable& table,
                                             const std::vector<core::DirectTerm>& terms,
                                             const std::vector<std::byte>& weights);

}  // namespace fusco::testing
