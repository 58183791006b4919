#include "testing/files.hpp"

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

namespace fusco::testing {

namespace {

std::string errno_text(int error) {
  return std::error_code(error, std::generic_category()).message();
}

}  // namespace

Result<std::string> read_file_bounded(const std::string& path, int64_t max_bytes) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return Status(StatusCode::kInvalidArgument, path + ": cannot open (" + errno_text(errno) + ")");
  }
  std::string bytes;
  std::vector<char> block(size_t{1} << 16);
  while (file.read(block.data(), static_cast<std::streamsize>(block.size())) || file.gcount() > 0) {
    bytes.append(block.data(), static_cast<size_t>(file.gcount()));
    if (static_cast<int64_t>(bytes.size()) > max_bytes) {
      return Status(
          StatusCode::kInvalidArgument,
          path + ": larger than the " + std::to_string(max_bytes) + " bytes read at most");
    }
  }
  return bytes;
}

Status check_writable(const std::string& path) {
  const bool existed = std::filesystem::exists(path);
  std::ofstream file(path, std::ios::app);
  if (!file) {
    return Status(StatusCode::kInvalidArgument,
                  path + ": cannot be opened for writing (" + errno_text(errno) + ")");
  }
  file.close();
  if (!existed) std::filesystem::remove(path);  // a failed run leaves no empty report behind
  return Status();
}

}  // namespace fusco::testing
