#pragma once

/// The fusco public API: fused MoE token dispatch and combine for expert parallelism.

#include "fusco/communicator.hpp"
#include "fusco/dtype.hpp"
#include "fusco/expert_map.hpp"
#include "fusco/host_device.hpp"
#include "fusco/options.hpp"
#include "fusco/plan.hpp"
#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "fusco/topology.hpp"
#include "fusco/version.hpp"
#include "fusco/work.hpp"
