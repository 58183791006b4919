#include "testing/npy.hpp"

#include <cstring>
#include <limits>

#include "testing/files.hpp"

namespace fusco::testing {

namespace {

Status bad(const std::string& why) { return Status(StatusCode::kInvalidArgument, "npy: " + why); }

// The value of `key` in the header dict: the text after "'key':" up to the next top-level
// comma or closing brace (a shape tuple's commas are inside parentheses).
Result<std::string_view> header_value(std::string_view header, std::string_view key) {
  const std::string quoted = "'" + std::string(key) + "'";
  const size_t at = header.find(quoted);
  if (at == std::string_view::npos) {
    return bad("header has no " + quoted + ": " + std::string(header));
  }
  size_t begin = header.find(':', at + quoted.size());
  if (begin == std::string_view::npos) return bad("header entry " + quoted + " has no value");
  ++begin;
  while (begin < header.size() && header[begin] == ' ') ++begin;
  size_t end = begin;
  int depth = 0;
  while (end < header.size() && (depth > 0 || (header[end] != ',' && header[end] != '}'))) {
    depth += header[end] == '(' ? 1 : header[end] == ')' ? -1 : 0;
    ++end;
  }
  return header.substr(begin, end - begin);
}

Result<std::vector<int64_t>> parse_shape(std::string_view text) {
  if (text.size() < 2 || text.front() != '(' || text.back() != ')') {
    return bad("shape " + std::string(text) + " is not a tuple");
  }
  std::vector<int64_t> shape;
  std::string_view inner = text.substr(1, text.size() - 2);
  while (!inner.empty()) {
    while (!inner.empty() && (inner.front() == ' ' || inner.front() == ',')) inner.remove_prefix(1);
    if (inner.empty()) break;
    int64_t dim = 0;
    size_t digits = 0;
    while (digits < inner.size() && inner[digits] >= '0' && inner[digits] <= '9') {
      if (dim > (std::numeric_limits<int64_t>::max() - 9) / 10) return bad("shape is too large");
      dim = dim * 10 + (inner[digits] - '0');
      ++digits;
    }
    if (digits == 0) return bad("shape " + std::string(text) + " has a non-number");
    shape.push_back(dim);
    inner.remove_prefix(digits);
  }
  return shape;
}

}  // namespace

Result<NpyArray> parse_npy(std::string_view bytes) {
  static constexpr char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.substr(0, 6) != std::string_view(kMagic, 6)) {
    return bad("not a .npy file (no \\x93NUMPY magic)");
  }
  const auto major = static_cast<uint8_t>(bytes[6]);
  size_t header_len = 0;
  size_t header_at = 0;
  if (major == 1) {
    header_len =
        static_cast<uint8_t>(bytes[8]) | static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8;
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) return bad("truncated header length");
    for (int i = 0; i < 4; ++i) {
      header_len |= static_cast<size_t>(static_cast<uint8_t>(bytes[8 + static_cast<size_t>(i)]))
                    << (8 * i);
    }
    header_at = 12;
  } else {
    return bad("format version " + std::to_string(major) + " is not 1, 2 or 3");
  }
  if (header_len > bytes.size() - header_at) return bad("header runs past the end of the file");
  const std::string_view header = bytes.substr(header_at, header_len);
  Result<std::string_view> descr = header_value(header, "descr");
  FUSCO_RETURN_IF_ERROR(descr.status());
  Result<std::string_view> order = header_value(header, "fortran_order");
  FUSCO_RETURN_IF_ERROR(order.status());
  Result<std::string_view> shape_text = header_value(header, "shape");
  FUSCO_RETURN_IF_ERROR(shape_text.status());
  size_t width = 0;
  for (size_t w : {size_t{1}, size_t{2}, size_t{4}, size_t{8}}) {
    const std::string little = "'<i" + std::to_string(w) + "'";
    const std::string any = "'|i" + std::to_string(w) + "'";
    if (descr.value() == little || (w == 1 && descr.value() == any)) width = w;
  }
  if (width == 0) {
    return bad("dtype " + std::string(descr.value()) +
               " is not a little-endian integer ('<i1', '<i2', '<i4' or '<i8')");
  }
  if (order.value() != "False") return bad("the array is in Fortran order; save it in C order");
  Result<std::vector<int64_t>> shape = parse_shape(shape_text.value());
  FUSCO_RETURN_IF_ERROR(shape.status());
  NpyArray array;
  array.shape = std::move(shape).value();
  int64_t count = 1;
  for (int64_t dim : array.shape) {
    if (dim != 0 && count > std::numeric_limits<int64_t>::max() / 8 / dim) {
      return bad("shape is too large");
    }
    count *= dim;
  }
  const std::string_view data = bytes.substr(header_at + header_len);
  if (static_cast<uint64_t>(count) * width != data.size()) {
    return bad("shape " + std::string(shape_text.value()) + " needs " +
               std::to_string(static_cast<uint64_t>(count) * width) + " data bytes, the file has " +
               std::to_string(data.size()));
  }
  array.values.resize(static_cast<size_t>(count));
  for (size_t i = 0; i < array.values.size(); ++i) {
    uint64_t raw = 0;
    for (size_t b = 0; b < width; ++b) {
      raw |= static_cast<uint64_t>(static_cast<uint8_t>(data[i * width + b])) << (8 * b);
    }
    const unsigned shift = static_cast<unsigned>(64 - 8 * width);  // sign-extend
    array.values[i] = static_cast<int64_t>(raw << shift) >> shift;
  }
  return array;
}

Result<NpyArray> read_npy(const std::string& path) {
  Result<std::string> bytes = read_file_bounded(path, kMaxNpyBytes);
  FUSCO_RETURN_IF_ERROR(bytes.status());
  Result<NpyArray> array = parse_npy(bytes.value());
  if (!array.ok()) {
    return Status(array.status().code(), path + ": " + array.status().message());
  }
  return array;
}

}  // namespace fusco::testing
