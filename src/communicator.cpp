#include "fusco/communicator.hpp"

#include <string>

#include "communicator_impl.hpp"
#include "engine/engine.hpp"
#include "plan/planner.hpp"

namespace fusco {

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;
Communicator::~Communicator() = default;

int Communicator::rank() const { return impl_->transport_->rank(); }
int Communicator::world_size() const { return impl_->transport_->world_size(); }
const Topology& Communicator::topology() const { return impl_->topology_; }
bool Communicator::usable() const { return impl_->transport_->health().ok(); }
void Communicator::abort(const std::string& reason) {
  impl_->transport_->abort("rank " + std::to_string(rank()) + " aborted the group: " + reason);
}

namespace {

Result<Plan> make(Communicator::Impl& impl, const TensorView& topk_idx, int64_t num_experts,
                  const ExpertMap& expert_map, const PlanOptions& options, const Status& prior,
                  bool node_peers = false) {
  FUSCO_RETURN_IF_ERROR(impl.transport_->health());
  const uint64_t sequence = impl.plans_made_++;
  auto data = plan::make_plan(*impl.transport_, impl.topology_, sequence, topk_idx, num_experts,
                              expert_map, options, prior, node_peers);
  if (!data.ok()) {
    return data.status();
  }
  return Communicator::Impl::wrap_plan(std::move(data).value());
}

}  // namespace

Result<Plan> Communicator::Impl::plan_for_gpus(Communicator& comm, const TensorView& topk_idx,
                                               int64_t num_experts, const ExpertMap& expert_map,
                                               const PlanOptions& options) {
  comm.impl_->progress_.drain();
  return make(*comm.impl_, topk_idx, num_experts, expert_map, options, Status(), true);
}

Result<Plan> Communicator::plan(const TensorView& topk_idx, int64_t num_experts,
                                const ExpertMap& expert_map, const PlanOptions& options) {
  impl_->progress_.drain();
  return make(*impl_, topk_idx, num_experts, expert_map, options, Status());
}

Result<Plan> Communicator::plan(const TensorView& topk_idx, int64_t num_experts,
                                const ExpertMap& expert_map) {
  Result<PlanOptions> options = PlanOptions::from_env();
  impl_->progress_.drain();
  return make(*impl_, topk_idx, num_experts, expert_map,
              options.ok() ? options.value() : PlanOptions(), options.status());
}

Status Communicator::dispatch(const Plan& plan, const TensorView& x, const TensorView& recv) {
  impl_->progress_.drain();
  return engine::dispatch(*impl_->transport_, plan.valid() ? &plan.data() : nullptr, x, recv);
}

Status Communicator::dispatch(const Plan& plan, const TensorView& x, const TensorView& recv,
                              const TensorView& extra, const TensorView& extra_recv) {
  impl_->progress_.drain();
  return engine::dispatch(*impl_->transport_, plan.valid() ? &plan.data() : nullptr, x, recv, extra,
                          extra_recv);
}

Status Communicator::combine(const Plan& plan, const TensorView& expert_out,
                             const TensorView& topk_weights, const TensorView& out) {
  impl_->progress_.drain();
  return engine::combine(*impl_->transport_, plan.valid() ? &plan.data() : nullptr, expert_out,
                         topk_weights, out, impl_->workspace_);
}

Work Communicator::dispatch_async(const Plan& plan, const TensorView& x, const TensorView& recv) {
  Impl* impl = impl_.get();
  return impl->progress_.post([impl, plan, x, recv] {
    return engine::dispatch(*impl->transport_, plan.valid() ? &plan.data() : nullptr, x, recv);
  });
}

Work Communicator::dispatch_async(const Plan& plan, const TensorView& x, const TensorView& recv,
                                  const TensorView& extra, const TensorView& extra_recv) {
  Impl* impl = impl_.get();
  return impl->progress_.post([impl, plan, x, recv, extra, extra_recv] {
    return engine::dispatch(*impl->transport_, plan.valid() ? &plan.data() : nullptr, x, recv,
                            extra, extra_recv);
  });
}

Work Communicator::combine_async(const Plan& plan, const TensorView& expert_out,
                                 const TensorView& topk_weights, const TensorView& out) {
  Impl* impl = impl_.get();
  return impl->progress_.post([impl, plan, expert_out, topk_weights, out] {
    return engine::combine(*impl->transport_, plan.valid() ? &plan.data() : nullptr, expert_out,
                           topk_weights, out, impl->workspace_);
  });
}

}  // namespace fusco
