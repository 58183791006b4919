#pragma once

// Packing of trivially copyable values into byte buffers for planner exchanges.

#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "fusco/status.hpp"

namespace fusco::core {

class WireWriter {
 public:
  template <typename T>
  void put(const T& value) {
    put_array(&value, 1);
  }
  template <typename T>
  void put_array(const T* values, size_t count) {
    static_assert(std::is_trivially_copyable_v<T>);
    if (count > 0) {
      const auto* bytes = reinterpret_cast<const std::byte*>(values);
      bytes_.insert(bytes_.end(), bytes, bytes + count * sizeof(T));
    }
  }
  void reserve(size_t bytes) { bytes_.reserve(bytes); }
  std::vector<std::byte> take() { return std::move(bytes_); }

 private:
  std::vector<std::byte> bytes_;
};

class WireReader {
 public:
  explicit WireReader(const std::vector<std::byte>& bytes) : bytes_(bytes) {}

  template <typename T>
  Status get(T* value) {
    return get_array(value, 1);
  }
  template <typename T>
  Status get_array(T* values, size_t count) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t size = count * sizeof(T);
    if (size > bytes_.size() - at_) {
      return Status(StatusCode::kInternal, "planner message truncated: wanted " +
                                               std::to_string(size) + " bytes at offset " +
                                               std::to_string(at_) + " of " +
                                               std::to_string(bytes_.size()));
    }
    if (size > 0) {
      std::memcpy(values, bytes_.data() + at_, size);
    }
    at_ += size;
    return Status();
  }
  bool done() const { return at_ == bytes_.size(); }

 private:
  const std::vector<std::byte>& bytes_;
  size_t at_ = 0;
};

}  // namespace fusco::core
