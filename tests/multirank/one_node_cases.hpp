#pragma once

// The foundation suite's routing cases for ranks of one node (what one GPU's logical ranks
// and an NVLink domain run): uniform, every slot masked, masked tokens, T = 0 on some ranks,
// one hot expert taking every slot, an uneven map with a rank owning nothing, hidden 1, 7 and
// 7168, several dtypes, every receive layout, strided rows, replicated experts, and random
// cases moved onto one node.

#include <functional>
#include <vector>

#include "multirank/harness.hpp"

namespace fusco::testing {

std::vector<Case> one_node_cases(int world);

/// Every rank's plan of `c` (ranks as threads reaching each other's memory, grouped into
/// nodes of c.ranks_per_node; fails the current test on an error, leaving that rank's plan
/// invalid).
std::vector<Plan> plans_of_case(const Case& c);

/// Every rank's plan of `c` over `comms` (one per rank), each made by `plan_one` from the
/// rank's communicator and routing (fails the current test on an error, as above).
std::vector<Plan> plans_by(
    const Case& c, std::vector<Communicator>& comms,
    const std::function<Result<Plan>(Communicator&, const TensorView&)>& plan_one);

}  // namespace fusco::testing
