#include "plan/plan_memory.hpp"

#include <algorithm>
#include <utility>

namespace fusco::plan {

namespace {

// `into` takes `from`'s array, emptied: the next plan fills it without allocating.
template <typename Vector>
void keep(Vector& into, Vector& from) {
  into = std::move(from);
  into.clear();
}

// `into` takes `from`'s array with its stale contents: for arrays the next plan's builder
// sizes and overwrites whole (clearing them would only make its resize write zeros first).
template <typename Vector>
void keep_sized(Vector& into, Vector& from) {
  into = std::move(from);
}

template <typename List>
List take_spare(std::vector<List>& spares) {
  if (spares.empty()) return List{};
  List list = std::move(spares.back());
  spares.pop_back();
  return list;
}

}  // namespace

detail::StagedOut PlanScratch::take_out() {
  detail::StagedOut out = take_spare(spare_out);
  detail::StagedOut fresh;
  keep(fresh.tokens, out.tokens);
  keep(fresh.return_end, out.return_end);
  return fresh;
}

detail::StagedIn PlanScratch::take_in() {
  detail::StagedIn in = take_spare(spare_in);
  detail::StagedIn fresh;
  keep_sized(fresh.tokens, in.tokens);  // decode_staged_in resizes and fills these three
  keep_sized(fresh.fanout_begin, in.fanout_begin);
  keep_sized(fresh.fanout, in.fanout);
  keep(fresh.forward, in.forward);
  return fresh;
}

void recycle_plan_data(detail::PlanData& plan, PlanScratch& scratch) {
  detail::PlanData old = std::move(plan);
  plan = detail::PlanData{};
  keep(plan.tokens_per_expert, old.tokens_per_expert);
  keep(plan.padded_tokens_per_expert, old.padded_tokens_per_expert);
  keep(plan.dropped_per_expert, old.dropped_per_expert);
  keep(plan.padding, old.padding);
  keep(plan.recv_local_experts, old.recv_local_experts);
  keep(plan.local_experts, old.local_experts);
  keep(plan.slot_ranks, old.slot_ranks);
  keep(plan.direct, old.direct);
  // The sender scan's combine program writer sizes these, writes every element it keeps and
  // trims the rest.
  keep_sized(plan.token_group_begin, old.token_group_begin);
  keep_sized(plan.group_term_begin, old.group_term_begin);
  keep_sized(plan.terms, old.terms);
  keep(plan.token_return_end, old.token_return_end);
  for (detail::StagedOut& out : old.staged_out) scratch.spare_out.push_back(std::move(out));
  for (detail::StagedIn& in : old.staged_in) scratch.spare_in.push_back(std::move(in));
}

std::unique_ptr<detail::PlanData> PlanMemory::take() {
  std::unique_ptr<detail::PlanData> plan;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!spares_.empty()) {
      plan = std::move(spares_.back());
      spares_.pop_back();
    }
  }
  if (!plan) return std::make_unique<detail::PlanData>();
  recycle_plan_data(*plan, scratch_);
  return plan;
}

std::shared_ptr<const detail::PlanData> PlanMemory::publish(
    std::unique_ptr<detail::PlanData> plan) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++live_;
    most_live_ = std::max(most_live_, live_);
  }
  std::weak_ptr<PlanMemory> home = weak_from_this();
  return std::shared_ptr<const detail::PlanData>(plan.release(),
                                                 [home](const detail::PlanData* done) {
                                                   if (auto memory = home.lock()) {
                                                     memory->give_back(done);
                                                   } else {
                                                     delete done;
                                                   }
                                                 });
}

void PlanMemory::give_back(const detail::PlanData* plan) {
  // The plan was handed out const for its holders; it is no longer held, so it is ours again.
  std::unique_ptr<detail::PlanData> returned(const_cast<detail::PlanData*>(plan));
  std::lock_guard<std::mutex> lock(mutex_);
  --live_;
  if (spares_.size() < std::min(most_live_, kMaxSpares)) {
    spares_.push_back(std::move(returned));
  }
}

size_t PlanMemory::spares() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return spares_.size();
}

size_t PlanMemory::live() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return live_;
}

}  // namespace fusco::plan
