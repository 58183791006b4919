// Status, Result, DType names and sizes, and the fp16/bf16 conversions every engine uses.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/convert.hpp"
#include "fusco/dtype.hpp"
#include "fusco/status.hpp"

namespace fusco {
namespace {

TEST(Status, DefaultIsOk_FailureCarriesCodeAndMessage) {
  EXPECT_TRUE(Status().ok());
  const Status failed(StatusCode::kTimeout, "rank 3 did not arrive");
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(failed.code(), StatusCode::kTimeout);
  EXPECT_EQ(failed.to_string(), "timeout: rank 3 did not arrive");
}

TEST(Result, HoldsValueOrStatus_OkStatusWithoutValueIsInternalError) {
  Result<int> value(7);
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value.value(), 7);
  Result<int> failed(Status(StatusCode::kInvalidArgument, "bad"));
  EXPECT_EQ(failed.status().code(), StatusCode::kInvalidArgument);
  Result<int> misuse{Status()};
  EXPECT_EQ(misuse.status().code(), StatusCode::kInternal);
}

TEST(DType, SizesAndNamesRoundTrip) {
  const std::pair<DType, size_t> sizes[] = {
      {DType::kFloat32, 4},    {DType::kFloat16, 2},    {DType::kBFloat16, 2},
      {DType::kFloat8E4M3, 1}, {DType::kFloat8E5M2, 1}, {DType::kInt8, 1},
      {DType::kInt32, 4},      {DType::kInt64, 8},      {DType::kFloat64, 8}};
  for (const auto& [dtype, size] : sizes) {
    EXPECT_EQ(dtype_size(dtype), size);
    Result<DType> parsed = dtype_from_name(dtype_name(dtype));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(parsed.value(), dtype);
  }
  EXPECT_EQ(dtype_from_name("bfloat16").value(), DType::kBFloat16);
}

TEST(DType, UnknownNameIsAnErrorListingTheChoices) {
  Result<DType> parsed = dtype_from_name("fp128");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("'fp128'"), std::string::npos);
  EXPECT_NE(parsed.status().message().find("bf16"), std::string::npos);
}

TEST(DType, CombineIsOfferedForFloatTypesOnly) {
  EXPECT_TRUE(dtype_supports_combine(DType::kBFloat16));
  EXPECT_TRUE(dtype_supports_combine(DType::kFloat16));
  EXPECT_TRUE(dtype_supports_combine(DType::kFloat32));
  EXPECT_FALSE(dtype_supports_combine(DType::kFloat8E4M3));
  EXPECT_FALSE(dtype_supports_combine(DType::kInt32));
  EXPECT_TRUE(dtype_supports_combine(DType::kFloat64));
}

float bits_to_float(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

TEST(Convert, Bf16KnownValuesAndRoundToNearestEven) {
  EXPECT_EQ(core::float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(core::float_to_bf16(-2.0f), 0xc000);
  EXPECT_EQ(core::bf16_to_float(0x3f80), 1.0f);
  // Halfway between 0x3f80 and 0x3f81: ties go to the even mantissa (0x3f80).
  EXPECT_EQ(core::float_to_bf16(bits_to_float(0x3f808000u)), 0x3f80);
  // Halfway between 0x3f81 and 0x3f82: ties go to 0x3f82.
  EXPECT_EQ(core::float_to_bf16(bits_to_float(0x3f818000u)), 0x3f82);
  EXPECT_EQ(core::float_to_bf16(bits_to_float(0x3f808001u)), 0x3f81);
  EXPECT_TRUE(std::isnan(core::bf16_to_float(core::float_to_bf16(std::nanf("")))));
  EXPECT_EQ(core::float_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
}

TEST(Convert, Bf16EveryFiniteValueRoundTrips) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto half = static_cast<uint16_t>(h);
    const float f = core::bf16_to_float(half);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(core::bf16_to_float(core::float_to_bf16(f))));
    } else {
      ASSERT_EQ(core::float_to_bf16(f), half) << h;
    }
  }
}

TEST(Convert, Fp16KnownValues) {
  EXPECT_EQ(core::float_to_fp16(1.0f), 0x3c00);
  EXPECT_EQ(core::float_to_fp16(-2.5f), 0xc100);
  EXPECT_EQ(core::float_to_fp16(65504.0f), 0x7bff);
  EXPECT_EQ(core::float_to_fp16(65520.0f), 0x7c00);  // rounds up to infinity
  EXPECT_EQ(core::float_to_fp16(65519.0f), 0x7bff);
  EXPECT_EQ(core::float_to_fp16(5.9604644775390625e-8f), 0x0001);   // smallest subnormal
  EXPECT_EQ(core::float_to_fp16(2.98023223876953125e-8f), 0x0000);  // tie to even: zero
  EXPECT_EQ(core::float_to_fp16(8.94069671630859375e-8f), 0x0002);  // 1.5 ulp: tie to even
  EXPECT_EQ(core::fp16_to_float(0x0001), 5.9604644775390625e-8f);
  EXPECT_EQ(core::fp16_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(core::fp16_to_float(0x7e00)));
}

TEST(Convert, Fp16EveryValueRoundTrips_AndMidpointsRoundToEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto half = static_cast<uint16_t>(h);
    const float f = core::fp16_to_float(half);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(core::fp16_to_float(core::float_to_fp16(f))));
      continue;
    }
    ASSERT_EQ(core::float_to_fp16(f), half) << h;
    // The midpoint to the next value up (in magnitude) rounds to whichever is even.
    const auto next = static_cast<uint16_t>(half + 1);
    if ((half & 0x7fff) < 0x7bff) {
      const float mid = (f + core::fp16_to_float(next)) / 2;  // exact in fp32
      const uint16_t even = (half & 1) == 0 ? half : next;
      ASSERT_EQ(core::float_to_fp16(mid), even) << h;
    }
  }
}

}  // namespace
}  // namespace fusco
