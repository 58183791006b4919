#include "gpu/device_programme.hpp"

#include <cstddef>
#include <string>

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

Result<DeviceProgramme> DeviceProgramme::upload(const detail::PlanData& plan) {
  if (!plan.staged_out.empty() || !plan.staged_in.empty() || plan.return_rows_total != 0) {
    return Status(StatusCode::kUnsupported,
                  "rank " + std::to_string(plan.rank) + "'s plan spans " +
                      std::to_string(plan.topology.num_nodes()) +
                      " nodes; the GPU engine stores into the ranks of one node only (its "
                      "inter-node path over GIN is not built yet)");
  }
  Result<DeviceBuffer> stores = DeviceBuffer::upload(plan.direct, "plan upload (rows)");
  Result<DeviceBuffer> tokens = DeviceBuffer::upload(plan.token_group_begin, "plan upload");
  Result<DeviceBuffer> groups = DeviceBuffer::upload(plan.group_term_begin, "plan upload");
  Result<DeviceBuffer> terms = DeviceBuffer::upload(plan.terms, "plan upload (terms)");
  for (const Status& status : {stores.status(), tokens.status(), groups.status(), terms.status()}) {
    FUSCO_RETURN_IF_ERROR(status);
  }
  DeviceProgramme programme;
  programme.stores = std::move(stores).value();
  programme.token_group_begin = std::move(tokens).value();
  programme.group_term_begin = std::move(groups).value();
  programme.terms = std::move(terms).value();
  return programme;
}

Status zero_padding_rows(const detail::PlanData& plan, void* rows, int64_t row_bytes,
                         cudaStream_t stream, const std::string& what) {
  for (const auto& [begin, end] : plan.padding) {
    if (row_bytes == 0) break;
    FUSCO_RETURN_IF_ERROR(
        cuda_status(cudaMemsetAsync(static_cast<char*>(rows) + begin * row_bytes, 0,
                                    static_cast<size_t>((end - begin) * row_bytes), stream),
                    what + ": zeroing padding rows"));
  }
  return Status();
}

}  // namespace fusco::gpu
