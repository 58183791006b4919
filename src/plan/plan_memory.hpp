#pragma once

// Memory reused across one communicator's plans. Planning runs on every MoE layer of every
// step, and a plan's arrays are megabytes: allocated fresh each time, half of planning went
// to page faults on them. Here a plan whose last holder lets go comes back to its
// communicator, and the next plan is built in it (its arrays keep their capacity); the
// planning steps' temporaries (the staged metadata being encoded) stay between calls. When
// a training step repeats the last step's shapes, planning allocates nothing new.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "plan/plan_data.hpp"
#include "transport/transport.hpp"

namespace fusco::plan {

/// The columns of the staged entries being built for one target (see sender_side.cpp's
/// TargetStream). They only grow: their sizes are capacities, not contents.
struct StreamStorage {
  std::vector<int32_t> tokens;  ///< per entry: the token it carries
  std::vector<int64_t> begins;  ///< per entry: its first fanout row
  std::vector<detail::FanoutRow> fanout;
};

/// Temporaries of one rank's planning steps, kept between plans.
struct PlanScratch {
  std::vector<StreamStorage> streams;      ///< per target rank
  std::vector<transport::Bytes> metadata;  ///< per target rank: the encoded staged entries
  /// Staged lists of a recycled plan, handed out again (their arrays keep their capacity).
  std::vector<detail::StagedOut> spare_out;
  std::vector<detail::StagedIn> spare_in;

  /// A staged list to fill: a spare one (arrays emptied, but an incoming list's tokens and
  /// fanout, which decode_staged_in sizes and fills whole, keep their old contents) or a new
  /// one.
  detail::StagedOut take_out();
  detail::StagedIn take_in();
};

/// Empties `plan` for a new plan, keeping its arrays' capacity; its staged lists move to
/// `scratch`'s spares. Fields the function does not know start as a new PlanData's. The
/// combine program's arrays keep their old contents: the sender scan sizes them and writes
/// every element it keeps (zeroing them first would cost a pass over megabytes).
void recycle_plan_data(detail::PlanData& plan, PlanScratch& scratch);

/// One communicator's plans and planning scratch. Plans are handed out as shared pointers
/// whose deleter returns them here (or frees them once the communicator is gone). The spare
/// plans kept are at most the most plans ever alive at once (the memory a training step
/// needed anyway), and at most kMaxSpares.
class PlanMemory : public std::enable_shared_from_this<PlanMemory> {
 public:
  static constexpr size_t kMaxSpares = 128;

  /// A plan to build: a returned one (recycled, see recycle_plan_data) or a new one.
  std::unique_ptr<detail::PlanData> take();
  /// The finished plan as its holders see it; it comes back here when the last lets go.
  std::shared_ptr<const detail::PlanData> publish(std::unique_ptr<detail::PlanData> plan);
  /// The planning steps' temporaries. Only the communicator's current plan call uses them.
  PlanScratch& scratch() { return scratch_; }

  /// Plans kept for reuse, and plans handed out and not yet returned (tests).
  size_t spares() const;
  size_t live() const;

 private:
  void give_back(const detail::PlanData* plan);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<detail::PlanData>> spares_;
  size_t live_ = 0;
  size_t most_live_ = 0;
  PlanScratch scratch_;
};

}  // namespace fusco::plan
