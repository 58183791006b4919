#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "engine/engine.hpp"
#include "fusco/communicator.hpp"
#include "plan/plan_memory.hpp"
#include "progress_thread.hpp"
#include "transport/transport.hpp"

namespace fusco {

class Communicator::Impl {
 public:
  Impl(std::unique_ptr<transport::Transport> transport, Topology topology)
      : transport_(std::move(transport)), topology_(topology) {}

  /// The communicator over `transport`, its topology checked against (for
  /// Topology::kByMachine: taken from) the machines the transport's ranks run on.
  static Result<Communicator> from_transport(std::unique_ptr<transport::Transport> transport,
                                             const Topology& requested);

  static Plan wrap_plan(std::shared_ptr<const detail::PlanData> data) {
    return Plan(std::move(data));
  }

  /// Communicator::create_local, with the choice of whether ranks reach each other's memory
  /// (false: they behave like processes and every row to another rank is staged; tests).
  static Result<std::vector<Communicator>> create_local(int world_size, Topology topology,
                                                        bool direct_access);

  /// Collective, like Communicator::plan, but planned for the GPU engines: the ranks of a
  /// node store into each other's memory (NCCL's LSA pointers) whatever `comm`'s transport
  /// can do, so rows inside a node are direct and node dedup relays through them.
  static Result<Plan> plan_for_gpus(Communicator& comm, const TensorView& topk_idx,
                                    int64_t num_experts, const ExpertMap& expert_map,
                                    const PlanOptions& options);

  std::unique_ptr<transport::Transport> transport_;
  Topology topology_;
  uint64_t plans_made_ = 0;  ///< Plans every rank agreed to make (plan::make_plan counts).
  /// A plan, dispatch or combine is running (sync, or async on the progress thread): calls
  /// on one communicator must not overlap, and one that would is refused.
  std::atomic<bool> busy_{false};
  engine::Workspace workspace_;
  /// Communicator::recv_buffer's memory where the transport has no shared region (threads).
  std::vector<std::byte> recv_view_;
  /// Plans returned by their holders and the planning scratch, reused by later plans.
  std::shared_ptr<plan::PlanMemory> plan_memory_ = std::make_shared<plan::PlanMemory>();
  // Last: destroyed first, finishing posted calls while the transport still exists.
  ProgressThread progress_;
};

}  // namespace fusco
