#include "gpu/device_programme.hpp"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/direct_steps.hpp"
#include "gpu/device_plan_impl.hpp"
#include "gpu/device_staged.hpp"
#include "gpu/staged_programme.hpp"

namespace fusco::gpu {

// The kernels read the plan's rows, terms and padding ranges as uploaded, byte for byte.
static_assert(sizeof(std::pair<int64_t, int64_t>) == 2 * sizeof(int64_t) &&
              std::is_standard_layout_v<std::pair<int64_t, int64_t>>);
static_assert(sizeof(detail::DirectRow) == sizeof(core::DirectStore) &&
              offsetof(detail::DirectRow, token) == offsetof(core::DirectStore, token) &&
              offsetof(detail::DirectRow, rank) == offsetof(core::DirectStore, rank) &&
              offsetof(detail::DirectRow, row) == offsetof(core::DirectStore, row));
static_assert(sizeof(detail::CombineTerm) == sizeof(core::DirectTerm) &&
              offsetof(detail::CombineTerm, rank) == offsetof(core::DirectTerm, rank) &&
              offsetof(detail::CombineTerm, slot) == offsetof(core::DirectTerm, slot) &&
              offsetof(detail::CombineTerm, row) == offsetof(core::DirectTerm, row) &&
              detail::CombineTerm::kUnitWeight == core::DirectTerm::kUnitWeight);

namespace {

// `plan`'s stores (sorted by destination) rotated to start at the destination after its own
// rank: when every rank stores at once, each GPU's stores reach a different peer first,
// instead of every rank's first stores all landing on rank 0's inbound link.
std::vector<detail::DirectRow> rotated_stores(const detail::PlanData& plan) {
  std::vector<detail::DirectRow> stores = plan.direct;
  const auto first_after = std::find_if(stores.begin(), stores.end(),
                                        [&](const auto& store) { return store.rank > plan.rank; });
  std::rotate(stores.begin(), first_after, stores.end());
  return stores;
}

// The programme whose arrays (and padding ranges, when uploaded) are `parts` of `storage`.
DeviceProgramme programme_of(DeviceBuffer storage, const std::vector<void*>& parts) {
  DeviceProgramme programme;
  programme.storage = std::move(storage);
  programme.stores = static_cast<core::DirectStore*>(parts[0]);
  programme.token_group_begin = static_cast<int64_t*>(parts[1]);
  programme.group_term_begin = static_cast<int64_t*>(parts[2]);
  programme.terms = static_cast<core::DirectTerm*>(parts[3]);
  if (parts.size() > 4) programme.padding.pairs = static_cast<const int64_t*>(parts[4]);
  return programme;
}

}  // namespace

Result<DeviceProgramme> DeviceProgramme::allocate(const Sizes& sizes, const DeviceOps& ops) {
  std::vector<void*> parts;
  Result<DeviceBuffer> storage =
      DeviceBuffer::allocate_parts({static_cast<size_t>(sizes.stores) * sizeof(core::DirectStore),
                                    static_cast<size_t>(sizes.tokens + 1) * sizeof(int64_t),
                                    static_cast<size_t>(sizes.groups + 1) * sizeof(int64_t),
                                    static_cast<size_t>(sizes.terms) * sizeof(core::DirectTerm)},
                                   parts, "plan programme", ops);
  FUSCO_RETURN_IF_ERROR(storage.status());
  return programme_of(std::move(storage).value(), parts);
}

Result<DeviceProgramme> DeviceProgramme::upload(const detail::PlanData& plan,
                                                const std::vector<core::DirectTerm>& terms,
                                                const DeviceOps& ops) {
  const std::vector<detail::DirectRow> stores = rotated_stores(plan);
  std::vector<void*> parts;
  Result<DeviceBuffer> storage = DeviceBuffer::upload_parts(
      {{stores.data(), stores.size() * sizeof(detail::DirectRow)},
       {plan.token_group_begin.data(), plan.token_group_begin.size() * sizeof(int64_t)},
       {plan.group_term_begin.data(), plan.group_term_begin.size() * sizeof(int64_t)},
       {terms.data(), terms.size() * sizeof(core::DirectTerm)},
       {plan.padding.data(), plan.padding.size() * sizeof(plan.padding[0])}},
      parts, "plan upload", ops);
  FUSCO_RETURN_IF_ERROR(storage.status());
  DeviceProgramme programme = programme_of(std::move(storage).value(), parts);
  programme.padding.count = static_cast<int64_t>(plan.padding.size());
  for (const auto& [begin, end] : plan.padding) {
    programme.padding.most_rows = std::max(programme.padding.most_rows, end - begin);
  }
  return programme;
}

Status upload_rank_plan(const detail::PlanData& plan, const DeviceOps& ops,
                        const detail::RankStaged* staged, DevicePlan::Impl& impl) {
  if (staged == nullptr && plan.staged_out.empty() && plan.staged_in.empty()) {
    std::vector<core::DirectTerm> terms;
    terms.reserve(plan.terms.size());
    for (const detail::CombineTerm& term : plan.terms) {
      terms.push_back({term.rank, term.slot, term.row});
    }
    Result<DeviceProgramme> programme = DeviceProgramme::upload(plan, terms, ops);
    FUSCO_RETURN_IF_ERROR(programme.status());
    impl.programme = std::move(programme).value();
    return Status();
  }
  std::optional<detail::RankStaged> built;  // only when the group gave no lists
  if (staged == nullptr) {
    Result<detail::RankStaged> made = detail::rank_staged(plan);
    FUSCO_RETURN_IF_ERROR(made.status());
    built = std::move(made).value();
    staged = &*built;
  }
  Result<std::shared_ptr<const DeviceStaged>> lists = DeviceStaged::upload(*staged, ops);
  FUSCO_RETURN_IF_ERROR(lists.status());
  Result<DeviceProgramme> programme = DeviceProgramme::upload(plan, staged->terms, ops);
  FUSCO_RETURN_IF_ERROR(programme.status());
  impl.staged = std::move(lists).value();
  impl.programme = std::move(programme).value();
  return Status();
}

}  // namespace fusco::gpu
