#pragma once

// The engine executes a plan over a transport: dispatch gathers rows from x and writes each
// straight into its final expert-major place (direct stores inside a node, chunks through
// staging windows across nodes, fanned out by the target); combine brings rows back and
// reduces them in the plan's fixed order.

#include <cstddef>
#include <memory>
#include <vector>

#include "engine/row_math.hpp"
#include "fusco/status.hpp"
#include "fusco/tensor.hpp"
#include "plan/plan_data.hpp"
#include "transport/transport.hpp"

namespace fusco::engine {

/// The terms of one sum (a token's combine, or a relay's partial) and its groups.
struct ReduceList {
  std::vector<ReduceTerm> terms;
  std::vector<int32_t> group_sizes;

  void clear() {
    terms.clear();
    group_sizes.clear();
  }
};

/// Per-rank scratch memory reused across calls.
struct Workspace {
  std::unique_ptr<std::byte[]> return_rows;  // combine: rows and partials coming back
  size_t return_bytes = 0;
  ReduceList lists[2];  // the sum being reduced and the next one (whose rows are prefetched)

  std::byte* return_buffer(size_t bytes) {
    if (bytes > return_bytes) {
      return_rows.reset(new std::byte[bytes]);
      return_bytes = bytes;
    }
    return return_rows.get();
  }
};

/// Collective. See Communicator::dispatch; `extra`/`extra_recv` default views: no companion.
Status dispatch(transport::Transport& transport, const detail::PlanData* plan, const TensorView& x,
                const TensorView& recv, const TensorView& extra = TensorView{},
                const TensorView& extra_recv = TensorView{});

/// Collective. See Communicator::combine.
Status combine(transport::Transport& transport, const detail::PlanData* plan,
               const TensorView& expert_out, const TensorView& topk_weights, const TensorView& out,
               Workspace& workspace);

}  // namespace fusco::engine
