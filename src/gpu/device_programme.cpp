#include "gpu/device_programme.hpp"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/direct_steps.hpp"

namespace fusco::gpu {

// The kernels read the plan's rows and terms as uploaded, byte for byte.
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

// The programme whose four arrays are `parts` of `storage`.
DeviceProgramme programme_of(DeviceBuffer storage, const std::vector<void*>& parts) {
  DeviceProgramme programme;
  programme.storage = std::move(storage);
  programme.stores = static_cast<core::DirectStore*>(parts[0]);
  programme.token_group_begin = static_cast<int64_t*>(parts[1]);
  programme.group_term_begin = static_cast<int64_t*>(parts[2]);
  programme.terms = static_cast<core::DirectTerm*>(parts[3]);
  return programme;
}

}  // namespace

Result<DeviceProgramme> DeviceProgramme::allocate(int64_t stores, int64_t tokens, int64_t groups,
                                                  int64_t terms) {
  std::vector<void*> parts;
  Result<DeviceBuffer> storage =
      DeviceBuffer::allocate_parts({static_cast<size_t>(stores) * sizeof(core::DirectStore),
                                    static_cast<size_t>(tokens + 1) * sizeof(int64_t),
                                    static_cast<size_t>(groups + 1) * sizeof(int64_t),
                                    static_cast<size_t>(terms) * sizeof(core::DirectTerm)},
                                   parts, "plan programme");
  FUSCO_RETURN_IF_ERROR(storage.status());
  return programme_of(std::move(storage).value(), parts);
}

Result<DeviceProgramme> DeviceProgramme::upload(const detail::PlanData& plan,
                                                const DeviceOps& ops) {
  if (!plan.staged_out.empty() || !plan.staged_in.empty() || plan.return_rows_total != 0) {
    return Status(StatusCode::kUnsupported,
                  "rank " + std::to_string(plan.rank) + "'s plan spans " +
                      std::to_string(plan.topology.num_nodes()) +
                      " nodes; the GPU engine over NCCL stores into the ranks of one node only "
                      "(its inter-node path over GIN is not built yet)");
  }
  std::vector<core::DirectTerm> terms;
  terms.reserve(plan.terms.size());
  for (const detail::CombineTerm& term : plan.terms) {
    terms.push_back({term.rank, term.slot, term.row});
  }
  return upload(plan, terms, ops);
}

Result<DeviceProgramme> DeviceProgramme::upload(const detail::PlanData& plan,
                                                const std::vector<core::DirectTerm>& terms,
                                                const DeviceOps& ops) {
  std::vector<void*> parts;
  Result<DeviceBuffer> storage = DeviceBuffer::upload_parts(
      {{plan.direct.data(), plan.direct.size() * sizeof(detail::DirectRow)},
       {plan.token_group_begin.data(), plan.token_group_begin.size() * sizeof(int64_t)},
       {plan.group_term_begin.data(), plan.group_term_begin.size() * sizeof(int64_t)},
       {terms.data(), terms.size() * sizeof(core::DirectTerm)}},
      parts, "plan upload", ops);
  FUSCO_RETURN_IF_ERROR(storage.status());
  return programme_of(std::move(storage).value(), parts);
}

Status zero_padding_rows(const detail::PlanData& plan, void* rows, int64_t row_bytes,
                         const Launch& on) {
  for (const auto& [begin, end] : plan.padding) {
    if (row_bytes == 0) break;
    FUSCO_RETURN_IF_ERROR(on.ops->zero(static_cast<char*>(rows) + begin * row_bytes,
                                       static_cast<size_t>((end - begin) * row_bytes), on.stream,
                                       on.what + ": zeroing padding rows"));
  }
  return Status();
}

}  // namespace fusco::gpu
