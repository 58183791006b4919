#include "fusco/communicator.hpp"

#include <algorithm>
#include <atomic>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "bootstrap/machine_topology.hpp"
#include "communicator_impl.hpp"
#include "engine/engine.hpp"
#include "plan/planner.hpp"
#include "progress_thread.hpp"
#include "transport/agreement.hpp"

namespace fusco {

namespace {

// A moved-from communicator has no group: its calls fail with this instead of crashing.
Status no_group(const char* call) {
  return Status(StatusCode::kInvalidArgument,
                std::string("Communicator::") + call +
                    ": this communicator has no group (it was moved from; use the communicator "
                    "it was moved to)");
}

// No exception crosses the library boundary: a failed allocation or any other
// std::exception from inside a call becomes a Status naming the call.
template <typename Body>
auto guarded(const char* call, Body&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory,
                  std::string("Communicator::") + call + ": out of host memory (std::bad_alloc)");
  } catch (const std::exception& error) {
    return Status(StatusCode::kInternal,
                  std::string("Communicator::") + call + ": unexpected exception: " + error.what());
  }
}

// Holds a communicator's one call slot for a call's duration, if it was free.
class CallSlot {
 public:
  explicit CallSlot(std::atomic<bool>& busy) : busy_(busy), held_(!busy.exchange(true)) {}
  CallSlot(const CallSlot&) = delete;
  CallSlot& operator=(const CallSlot&) = delete;
  ~CallSlot() {
    if (held_) busy_.store(false);
  }
  bool held() const { return held_; }

 private:
  std::atomic<bool>& busy_;
  bool held_;
};

// A call made while another is running on the same communicator (another thread's) would race
// on its transport and workspace: it is refused at once, touching nothing.
template <typename Body>
auto exclusive(Communicator::Impl& impl, const char* call, Body&& body) -> decltype(body()) {
  const CallSlot slot(impl.busy_);
  if (!slot.held()) {
    return Status(StatusCode::kInvalidArgument,
                  std::string("Communicator::") + call + " on rank " +
                      std::to_string(impl.transport_->rank()) +
                      ": another call on this communicator is running (from another thread); "
                      "calls on one communicator must not overlap (one thread per rank, or the "
                      "_async calls, which run in order)");
  }
  return guarded(call, std::forward<Body>(body));
}

Work finished_work(Status status) {
  auto state = std::make_shared<Work::State>();
  state->finished = true;
  state->status = std::move(status);
  return Work(std::move(state));
}

}  // namespace

Communicator::Communicator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Status Communicator::agree_on_step(const BootstrapAllgather& allgather, const Status& mine,
                                   const std::string& step) {
  if (!allgather) return Status(StatusCode::kInvalidArgument, "allgather is empty");
  return transport::agree_on_step(allgather, mine, step.c_str());
}

Result<Communicator> Communicator::Impl::from_transport(
    std::unique_ptr<transport::Transport> transport, const Topology& requested) {
  Result<Topology> topology = bootstrap::topology_for_machines(requested, transport->machines());
  FUSCO_RETURN_IF_ERROR(topology.status());
  return Communicator(std::make_unique<Impl>(std::move(transport), topology.value()));
}
Communicator::Communicator(Communicator&&) noexcept = default;
Communicator& Communicator::operator=(Communicator&&) noexcept = default;
Communicator::~Communicator() = default;

int Communicator::rank() const { return impl_ ? impl_->transport_->rank() : -1; }
int Communicator::world_size() const { return impl_ ? impl_->transport_->world_size() : 0; }
const Topology& Communicator::topology() const {
  static const Topology none{0, 0};
  return impl_ ? impl_->topology_ : none;
}
bool Communicator::usable() const { return impl_ && impl_->transport_->health().ok(); }
void Communicator::abort(const std::string& reason) {
  if (!impl_) return;
  impl_->transport_->abort("rank " + std::to_string(rank()) + " aborted the group: " + reason);
}

namespace {

Result<Plan> make(Communicator::Impl& impl, const TensorView& topk_idx, int64_t num_experts,
                  const ExpertMap& expert_map, const PlanOptions& options, const Status& prior,
                  bool node_peers = false) {
  FUSCO_RETURN_IF_ERROR(impl.transport_->health());
  auto data =
      plan::make_plan(*impl.transport_, impl.topology_, &impl.plans_made_, topk_idx, num_experts,
                      expert_map, options, prior, *impl.plan_memory_, node_peers);
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
  return exclusive(*comm.impl_, "plan", [&] {
    return make(*comm.impl_, topk_idx, num_experts, expert_map, options, Status(), true);
  });
}

Result<Plan> Communicator::plan(const TensorView& topk_idx, int64_t num_experts,
                                const ExpertMap& expert_map, const PlanOptions& options) {
  if (!impl_) return no_group("plan");
  impl_->progress_.drain();
  return exclusive(*impl_, "plan", [&] {
    return make(*impl_, topk_idx, num_experts, expert_map, options, Status());
  });
}

Result<Plan> Communicator::plan(const TensorView& topk_idx, int64_t num_experts,
                                const ExpertMap& expert_map) {
  if (!impl_) return no_group("plan");
  Result<PlanOptions> options = PlanOptions::from_env();
  impl_->progress_.drain();
  return exclusive(*impl_, "plan", [&] {
    return make(*impl_, topk_idx, num_experts, expert_map,
                options.ok() ? options.value() : PlanOptions(), options.status());
  });
}

Result<TensorView> Communicator::recv_buffer(const Plan& plan, DType dtype, int64_t hidden) {
  if (!impl_) return no_group("recv_buffer");
  if (!plan.valid()) {
    return Status(StatusCode::kInvalidArgument, "recv_buffer: plan is empty (not made by plan())");
  }
  if (!dtype_is_valid(static_cast<int32_t>(dtype))) {
    return Status(
        StatusCode::kInvalidArgument,
        "recv_buffer: dtype " + std::to_string(static_cast<int>(dtype)) + " is not a DType");
  }
  FUSCO_RETURN_IF_ERROR(impl_->transport_->health());  // a broken group hands out nothing
  constexpr int64_t kMaxBytes = int64_t{1} << 40;
  const auto elem = static_cast<int64_t>(dtype_size(dtype));
  const int64_t rows = plan.num_recv_rows();
  if (hidden < 1 || hidden > kMaxBytes / elem || rows > kMaxBytes / (hidden * elem)) {
    return Status(StatusCode::kInvalidArgument, "recv_buffer: hidden = " + std::to_string(hidden) +
                                                    " must be >= 1, and " + std::to_string(rows) +
                                                    " rows x hidden x " + std::to_string(elem) +
                                                    " bytes at most 2^40 bytes");
  }
  impl_->progress_.drain();  // an earlier asynchronous call may still use the buffer
  return exclusive(*impl_, "recv_buffer", [&]() -> Result<TensorView> {
    // At least one byte: an empty view still has an address.
    const size_t bytes = std::max<size_t>(static_cast<size_t>(rows * hidden * elem), 1);
    Result<std::byte*> shared =
        impl_->transport_->shared_region(transport::SharedRegion::kRecvView, bytes);
    FUSCO_RETURN_IF_ERROR(shared.status());
    std::byte* data = shared.value();
    if (data == nullptr) {  // threads reach any memory
      if (impl_->recv_view_.size() < bytes) impl_->recv_view_.resize(bytes);
      data = impl_->recv_view_.data();
    }
    return TensorView::host(data, dtype, {rows, hidden});
  });
}

Status Communicator::dispatch(const Plan& plan, const TensorView& x, const TensorView& recv) {
  if (!impl_) return no_group("dispatch");
  impl_->progress_.drain();
  return exclusive(*impl_, "dispatch", [&] {
    return engine::dispatch(*impl_->transport_, plan.valid() ? &plan.data() : nullptr, x, recv);
  });
}

Status Communicator::dispatch(const Plan& plan, const TensorView& x, const TensorView& recv,
                              const TensorView& extra, const TensorView& extra_recv) {
  if (!impl_) return no_group("dispatch");
  impl_->progress_.drain();
  return exclusive(*impl_, "dispatch", [&] {
    return engine::dispatch(*impl_->transport_, plan.valid() ? &plan.data() : nullptr, x, recv,
                            extra, extra_recv);
  });
}

Status Communicator::combine(const Plan& plan, const TensorView& expert_out,
                             const TensorView& topk_weights, const TensorView& out) {
  if (!impl_) return no_group("combine");
  impl_->progress_.drain();
  return exclusive(*impl_, "combine", [&] {
    return engine::combine(*impl_->transport_, plan.valid() ? &plan.data() : nullptr, expert_out,
                           topk_weights, out, impl_->workspace_);
  });
}

Work Communicator::dispatch_async(const Plan& plan, const TensorView& x, const TensorView& recv) {
  if (!impl_) return finished_work(no_group("dispatch_async"));
  Impl* impl = impl_.get();
  return impl->progress_.post([impl, plan, x, recv] {
    return exclusive(*impl, "dispatch_async", [&] {
      return engine::dispatch(*impl->transport_, plan.valid() ? &plan.data() : nullptr, x, recv);
    });
  });
}

Work Communicator::dispatch_async(const Plan& plan, const TensorView& x, const TensorView& recv,
                                  const TensorView& extra, const TensorView& extra_recv) {
  if (!impl_) return finished_work(no_group("dispatch_async"));
  Impl* impl = impl_.get();
  return impl->progress_.post([impl, plan, x, recv, extra, extra_recv] {
    return exclusive(*impl, "dispatch_async", [&] {
      return engine::dispatch(*impl->transport_, plan.valid() ? &plan.data() : nullptr, x, recv,
                              extra, extra_recv);
    });
  });
}

Work Communicator::combine_async(const Plan& plan, const TensorView& expert_out,
                                 const TensorView& topk_weights, const TensorView& out) {
  if (!impl_) return finished_work(no_group("combine_async"));
  Impl* impl = impl_.get();
  return impl->progress_.post([impl, plan, expert_out, topk_weights, out] {
    return exclusive(*impl, "combine_async", [&] {
      return engine::combine(*impl->transport_, plan.valid() ? &plan.data() : nullptr, expert_out,
                             topk_weights, out, impl->workspace_);
    });
  });
}

}  // namespace fusco
