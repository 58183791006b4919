#include "multirank/emulated_kernels.hpp"

namespace fusco::testing {

ExpertOutputs expert_outputs_of(const Case& c, const std::vector<Plan>& plans) {
  ExpertOutputs outputs;
  const auto world = static_cast<size_t>(c.world);
  outputs.y.resize(world);
  outputs.weights.resize(world);
  const int64_t pitch = (c.hidden + c.stride_pad) * static_cast<int64_t>(dtype_size(c.dtype));
  for (size_t r = 0; r < world; ++r) {
    const int64_t rows = plans[r].num_recv_rows();
    outputs.y[r] = strided(y_of(c, static_cast<int>(r), rows), c, rows);
    outputs.weights[r] = weights_of(c, static_cast<int>(r));
    outputs.table.base[r] = reinterpret_cast<char*>(outputs.y[r].data());
    outputs.table.pitch[r] = pitch;
  }
  return outputs;
}

std::vector<std::byte> combine_as_the_kernel(const Case& c, const detail::PlanData& plan,
                                             const core::PeerTable& table,
                                             const std::vector<core::DirectTerm>& terms,
                                             const std::vector<std::byte>& weights) {
  const auto type = static_cast<core::RowType>(c.dtype);
  const int64_t row_bytes = c.hidden * static_cast<int64_t>(dtype_size(c.dtype));
  std::vector<std::byte> out(static_cast<size_t>(plan.num_tokens * row_bytes), std::byte{0x5a});
  for (int64_t t = 0; t < plan.num_tokens; ++t) {
    const int64_t g0 = plan.token_group_begin[static_cast<size_t>(t)];
    const int64_t groups = plan.token_group_begin[static_cast<size_t>(t) + 1] - g0;
    for (int64_t h = 0; h < c.hidden; ++h) {
      core::store_element(out.data() + t * row_bytes, h,
                          core::combine_token_element(
                              table, terms.data(), plan.group_term_begin.data() + g0, groups,
                              reinterpret_cast<const float*>(weights.data()), c.topk, t, h, type),
                          type);
    }
  }
  return out;
}

}  // namespace fusco::testing
