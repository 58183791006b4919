#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace fusco::transport {

/// A registered receive window from one rank to another: a ring of chunk slots. The sender
/// fills slot c % kSlots with chunk c and marks it full; the receiver scatters it and marks it
/// empty. One producer and one consumer per operation; chunks go in order, so both sides know
/// which rows a chunk holds from its number alone.
class StagingWindow {
 public:
  static constexpr int kSlots = 2;

  /// Grows the slots to at least `slot_bytes`. Only while no operation uses the window.
  void reserve(size_t slot_bytes) {
    if (slot_bytes <= slot_bytes_) {
      return;
    }
    for (auto& slot : slots_) {
      slot.reset(new std::byte[slot_bytes]);
    }
    slot_bytes_ = slot_bytes;
  }

  /// Sender: true when chunk `chunk`'s slot is free to fill.
  bool can_put(int64_t chunk) const {
    return full_[chunk % kSlots].load(std::memory_order_acquire) == 0;
  }
  /// Sender: memory of chunk `chunk`'s slot (after can_put).
  std::byte* put_buffer(int64_t chunk) { return slots_[chunk % kSlots].get(); }
  /// Sender: publishes chunk `chunk` (its bytes are visible to the receiver after this).
  void put_done(int64_t chunk) { full_[chunk % kSlots].store(1, std::memory_order_release); }

  /// Receiver: true when chunk `chunk` has arrived.
  bool can_take(int64_t chunk) const {
    return full_[chunk % kSlots].load(std::memory_order_acquire) != 0;
  }
  /// Receiver: memory of chunk `chunk` (after can_take).
  const std::byte* take_buffer(int64_t chunk) const { return slots_[chunk % kSlots].get(); }
  /// Receiver: frees chunk `chunk`'s slot for the sender.
  void take_done(int64_t chunk) { full_[chunk % kSlots].store(0, std::memory_order_release); }

 private:
  std::unique_ptr<std::byte[]> slots_[kSlots];
  std::atomic<uint32_t> full_[kSlots] = {};
  size_t slot_bytes_ = 0;
};

}  // namespace fusco::transport
