#pragma once

// Device memory owned by one object (allocated and freed by a backend's DeviceOps: cudaMalloc
// and cudaFree, or host memory for the host backend), filled from host memory.

#include <cstddef>
#include <cstring>
#include <utility>
#include <vector>

#include "gpu/device_ops.hpp"

namespace fusco::gpu {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : ops_(other.ops_), data_(std::exchange(other.data_, nullptr)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(ops_, other.ops_);
    std::swap(data_, other.data_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (data_ != nullptr) {
      ops_->release(data_);
    }
  }

  /// `bytes` of uninitialised device memory (nothing allocated for 0).
  static Result<DeviceBuffer> allocate(size_t bytes, const char* what,
                                       const DeviceOps& ops = cuda_ops()) {
    DeviceBuffer buffer;
    buffer.ops_ = &ops;
    FUSCO_RETURN_IF_ERROR(ops.allocate(&buffer.data_, bytes, what));
    return buffer;
  }

  /// A copy of `host` in device memory (nothing allocated for an empty vector).
  template <typename T>
  static Result<DeviceBuffer> upload(const std::vector<T>& host, const char* what,
                                     const DeviceOps& ops = cuda_ops()) {
    const size_t bytes = host.size() * sizeof(T);
    Result<DeviceBuffer> buffer = allocate(bytes, what, ops);
    FUSCO_RETURN_IF_ERROR(buffer.status());
    FUSCO_RETURN_IF_ERROR(ops.upload(buffer.value().data_, host.data(), bytes, what));
    return buffer;
  }

  /// One allocation cut into parts of `bytes[i]` bytes, each 256-byte aligned: parts[i] is
  /// its first byte (nullptr for an empty part). Nothing is allocated when every part is empty.
  static Result<DeviceBuffer> allocate_parts(const std::vector<size_t>& bytes,
                                             std::vector<void*>& parts, const char* what,
                                             const DeviceOps& ops = cuda_ops()) {
    std::vector<size_t> offsets;
    size_t total = 0;
    for (size_t part : bytes) {
      offsets.push_back(total);
      total += (part + kPartAlign - 1) / kPartAlign * kPartAlign;
    }
    Result<DeviceBuffer> buffer = allocate(total, what, ops);
    FUSCO_RETURN_IF_ERROR(buffer.status());
    parts.clear();
    for (size_t i = 0; i < bytes.size(); ++i) {
      parts.push_back(bytes[i] == 0 ? nullptr
                                    : static_cast<char*>(buffer.value().data_) + offsets[i]);
    }
    return buffer;
  }

  /// allocate_parts for `pieces` (host bytes each), with every piece copied into its part (a
  /// piece with a null source is allocated and left unfilled): one upload of a host image of
  /// the whole allocation.
  static Result<DeviceBuffer> upload_parts(
      const std::vector<std::pair<const void*, size_t>>& pieces, std::vector<void*>& parts,
      const char* what, const DeviceOps& ops = cuda_ops()) {
    std::vector<size_t> bytes;
    bytes.reserve(pieces.size());
    for (const auto& piece : pieces) bytes.push_back(piece.second);
    Result<DeviceBuffer> buffer = allocate_parts(bytes, parts, what, ops);
    FUSCO_RETURN_IF_ERROR(buffer.status());
    char* base = static_cast<char*>(buffer.value().data_);
    size_t end = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (parts[i] != nullptr) {
        end = static_cast<size_t>(static_cast<char*>(parts[i]) - base) + bytes[i];
      }
    }
    std::vector<char> image(end);
    for (size_t i = 0; i < pieces.size(); ++i) {
      if (pieces[i].second == 0 || pieces[i].first == nullptr) continue;
      std::memcpy(image.data() + (static_cast<char*>(parts[i]) - base), pieces[i].first,
                  pieces[i].second);
    }
    FUSCO_RETURN_IF_ERROR(ops.upload(base, image.data(), image.size(), what));
    return buffer;
  }

  void* data() const { return data_; }

  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data_);
  }

 private:
  static constexpr size_t kPartAlign = 256;
  const DeviceOps* ops_ = nullptr;
  void* data_ = nullptr;
};

}  // namespace fusco::gpu
