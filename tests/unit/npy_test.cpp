// Reading routing files written by numpy.save.

#include "testing/npy.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

namespace fusco::testing {
namespace {

// A version-1 .npy file as numpy.save writes it: magic, version, header padded to 64 bytes.
std::string npy(const std::string& descr, const std::string& shape, const std::string& data,
                const std::string& order = "False") {
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': " + order + ", 'shape': " + shape + ", }";
  while ((10 + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string file = "\x93NUMPY";
  file += '\x01';
  file += '\x00';
  file += static_cast<char>(header.size() & 0xff);
  file += static_cast<char>(header.size() >> 8);
  return file + header + data;
}

std::string int32s(std::initializer_list<int32_t> values) {
  std::string bytes(values.size() * 4, '\0');
  size_t at = 0;
  for (int32_t v : values) {
    std::memcpy(bytes.data() + at, &v, 4);
    at += 4;
  }
  return bytes;
}

TEST(Npy, ReadsInt32AndInt64InCOrderWithSigns) {
  Result<NpyArray> a = parse_npy(npy("<i4", "(2, 3)", int32s({0, -1, 7, 255, 3, -2})));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a.value().shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.value().values, (std::vector<int64_t>{0, -1, 7, 255, 3, -2}));
  std::string eight(16, '\0');
  const int64_t v[2] = {-1, int64_t{1} << 40};
  std::memcpy(eight.data(), v, 16);
  Result<NpyArray> b = parse_npy(npy("<i8", "(2,)", eight));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b.value().values, (std::vector<int64_t>{-1, int64_t{1} << 40}));
  Result<NpyArray> empty = parse_npy(npy("<i4", "(0, 8)", ""));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty.value().values.empty());
}

TEST(Npy, ErrorsSayWhatIsWrong) {
  auto message = [](const std::string& bytes) { return parse_npy(bytes).status().message(); };
  EXPECT_EQ(message("PK\x03\x04 a zip file"), "npy: not a .npy file (no \\x93NUMPY magic)");
  EXPECT_NE(message(npy("<f4", "(1,)", "abcd")).find("dtype '<f4' is not a little-endian integer"),
            std::string::npos);
  EXPECT_NE(message(npy(">i4", "(1,)", "abcd")).find("is not a little-endian integer"),
            std::string::npos);
  EXPECT_EQ(message(npy("<i4", "(2, 2)", int32s({1, 2, 3, 4}), "True")),
            "npy: the array is in Fortran order; save it in C order");
  EXPECT_EQ(message(npy("<i4", "(2, 2)", int32s({1, 2, 3}))),
            "npy: shape (2, 2) needs 16 data bytes, the file has 12");
  EXPECT_NE(message(npy("<i4", "(2, x)", "")).find("has a non-number"), std::string::npos);
  EXPECT_EQ(read_npy("/nonexistent/routing.npy").status().message(),
            "/nonexistent/routing.npy: cannot open (No such file or directory)");
}

}  // namespace
}  // namespace fusco::testing
