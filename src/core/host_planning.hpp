#pragma once

// The planning kernels' work (kernels/layout.cu, kernels/device_plan.cu) run on the host,
// step by step through the same step functions (core/layout_steps.hpp,
// core/device_plan_steps.hpp), a warp emulated lane by lane: the GPU engine's host backend
// runs them, and the CPU tests compare them with the CPU planner.

#include "core/planning_args.hpp"

namespace fusco::core {

/// launch_layout's outputs: positions, expert_begin and first_bad (its workspace unused).
void layout_on_host(const LayoutArgs& args);

/// launch_record_bad_id: bad[0] = the first bad pair (or -1), bad[1] = its id (or 0).
void record_bad_id_on_host(const LayoutArgs& args, int64_t* bad);

/// launch_device_planning's outputs: first_row, limit, the own experts' counts and unfilled
/// rows, stores, token_group_begin, group_term_begin and terms (its workspace unused).
void planning_on_host(const DevicePlanningArgs& args);

}  // namespace fusco::core
