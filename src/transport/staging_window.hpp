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
///
/// Two kinds: an owned window (in-process ranks) whose slots live on the heap and grow on
/// demand, and an attached window over memory that another party laid out (a shared-memory
/// segment), whose slot size is fixed.
class StagingWindow {
 public:
  static constexpr int kSlots = 2;

  /// An owned window, empty until reserve().
  StagingWindow() : full_(owned_full_) {}
  /// A window over `base` (kSlots slots of `slot_bytes` each, back to back) with its slot
  /// flags at `full` (kSlots words). The memory must outlive the window.
  StagingWindow(std::byte* base, size_t slot_bytes, std::atomic<uint32_t>* full)
      : full_(full), slot_bytes_(slot_bytes), attached_(true) {
    for (int s = 0; s < kSlots; ++s) {
      slot_ptr_[s] = base + static_cast<size_t>(s) * slot_bytes;
    }
  }
  StagingWindow(const StagingWindow&) = delete;
  StagingWindow& operator=(const StagingWindow&) = delete;

  /// Makes the slots hold at least `slot_bytes`. Owned windows grow (only while no operation
  /// uses the window); attached ones already hold Transport::max_chunk_bytes().
  void reserve(size_t slot_bytes) {
    if (slot_bytes <= slot_bytes_ || attached_) {
      return;  // an attached window's slot size is fixed (the engine checks rows against it)
    }
    for (int s = 0; s < kSlots; ++s) {
      owned_[s].reset(new std::byte[slot_bytes]);
      slot_ptr_[s] = owned_[s].get();
    }
    slot_bytes_ = slot_bytes;
  }

  /// Sender: true when chunk `chunk`'s slot is free to fill.
  bool can_put(int64_t chunk) const {
    return full_[chunk % kSlots].load(std::memory_order_acquire) == 0;
  }
  /// Sender: memory of chunk `chunk`'s slot (after can_put).
  std::byte* put_buffer(int64_t chunk) { return slot_ptr_[chunk % kSlots]; }
  /// Sender: publishes chunk `chunk` of `bytes` bytes (visible to the receiver after this).
  void put_done(int64_t chunk, size_t bytes) {
    filled_[chunk % kSlots] = bytes;
    full_[chunk % kSlots].store(1, std::memory_order_release);
  }
  /// Bytes the sender put into `slot` (message-based transports send only these).
  size_t filled(int slot) const { return filled_[slot]; }
  /// The transport side of a message-based window: slot memory and flag by slot index.
  std::byte* slot_memory(int slot) { return slot_ptr_[slot]; }
  std::atomic<uint32_t>& slot_full(int slot) { return full_[slot]; }

  /// Receiver: true when chunk `chunk` has arrived.
  bool can_take(int64_t chunk) const {
    return full_[chunk % kSlots].load(std::memory_order_acquire) != 0;
  }
  /// Receiver: memory of chunk `chunk` (after can_take).
  const std::byte* take_buffer(int64_t chunk) const { return slot_ptr_[chunk % kSlots]; }
  /// Receiver: frees chunk `chunk`'s slot for the sender.
  void take_done(int64_t chunk) { full_[chunk % kSlots].store(0, std::memory_order_release); }

 private:
  std::unique_ptr<std::byte[]> owned_[kSlots];
  std::atomic<uint32_t> owned_full_[kSlots] = {};
  std::byte* slot_ptr_[kSlots] = {};
  std::atomic<uint32_t>* full_;
  size_t filled_[kSlots] = {};  // written before the release store of full_
  size_t slot_bytes_ = 0;
  bool attached_ = false;
};

}  // namespace fusco::transport
