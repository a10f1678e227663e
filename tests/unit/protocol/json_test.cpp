// json::parse on hostile text: nesting and size limits, clear errors, no recursion.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "gorgone/json.hpp"

namespace gorgone::json {
namespace {

std::string nested(std::size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST(Json, AcceptsNestingUpToTheLimit) {
  Document d;
  std::string error;
  EXPECT_TRUE(parse(d, nested(kMaxDepth), &error)) << error;
  EXPECT_TRUE(d.IsArray());
}

TEST(Json, RefusesDeeperNestingWithAClearMessage) {
  Document d;
  std::string error;
  EXPECT_FALSE(parse(d, nested(kMaxDepth + 1), &error));
  EXPECT_EQ(error, "JSON nested deeper than 64 levels");
  EXPECT_TRUE(d.IsNull());
}

TEST(Json, FourHundredKilobytesOfOpeningBracketsAreRefusedWithoutRecursion) {
  // The recursive parser used to overflow the stack on this (a SIGSEGV of the whole host).
  Document d;
  std::string error;
  EXPECT_FALSE(parse(d, std::string(400 * 1024, '['), &error));
  EXPECT_NE(error.find("nested deeper"), std::string::npos);
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  EXPECT_FALSE(parse(d, objects, &error));
}

TEST(Json, BracketsInsideStringsDoNotCount) {
  Document d;
  std::string text = "{\"a\":\"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}";
  std::string error;
  ASSERT_TRUE(parse(d, text, &error)) << error;
  EXPECT_EQ(d["a"].GetStringLength(), 2001u);
}

TEST(Json, RefusesTextAboveTheSizeLimit) {
  Document d;
  std::string error;
  EXPECT_FALSE(parse(d, "[1,2,3]", &error, kMaxDepth, 4));
  EXPECT_EQ(error, "JSON text of 7 bytes is larger than the limit of 4 bytes");
  EXPECT_TRUE(parse(d, "[1,2,3]", &error, kMaxDepth, 7));
}

TEST(Json, SyntaxErrorsSayWhere) {
  Document d;
  std::string error;
  EXPECT_FALSE(parse(d, "{\"a\":}", &error));
  EXPECT_EQ(error, "Invalid value. at offset 5");
}

TEST(Json, RefusesNumbersTheParserWouldMishandle) {
  // rapidjson 1.1.0's full-precision path reads past its table of powers on the first one
  // (found by tests/fuzz/fuzz_json.cpp), overflows an int on the second, and turns the third
  // into an infinity that no writer can put back.
  Document d;
  std::string error;
  EXPECT_FALSE(parse(d, "[" + std::string(84, '5') + "e300]", &error));
  EXPECT_EQ(error, "JSON number out of range");
  EXPECT_FALSE(parse(d, "[1e-2000000000]", &error));
  EXPECT_EQ(error, "JSON number with an exponent of more than 6 digits");
  EXPECT_FALSE(parse(d, "{\"ctime\":2e308}", &error));
  EXPECT_FALSE(parse(d, "[0." + std::string(400, '0') + "1]", &error));
  EXPECT_FALSE(parse(d, "[" + std::string(401, '1') + "]", &error));
  EXPECT_EQ(error, "JSON number longer than 400 characters");
  EXPECT_FALSE(parse(d, "[0e300]", &error));  // came out as -1.7e-21
  EXPECT_FALSE(parse(d, "[0." + std::string(30, '0') + "]", &error));
  // 2^64-1 then a digit >= 5 wraps its rounding to zero (found by the fuzzer, UBSan: clz(0)),
  // wherever the decimal point sits and after any leading zeros.
  for (const char* n : {"18446744073709551615.5", "184467440737095516159", "-0.00184467440737095516157e3"}) {
    EXPECT_FALSE(parse(d, std::string("{\"\":[") + n + "]}", &error)) << n;
    EXPECT_EQ(error, "JSON number with 2^64-1 as its leading digits, which this parser cannot read exactly");
  }
  // Ordinary numbers, zeros, and digits inside strings are untouched.
  ASSERT_TRUE(parse(d, "[0e5, -0.0, 1e300, 1.5e-300, 18446744073709551615, \"1e999\", 18446744073709551615.4]",
                    &error))
      << error;
  EXPECT_EQ(d[6].GetDouble(), 18446744073709551615.4);
  EXPECT_EQ(d[0].GetDouble(), 0.0);
  EXPECT_EQ(d[2].GetDouble(), 1e300);
  EXPECT_TRUE(d[4].IsUint64());
}

TEST(Json, WhatIsAcceptedIsAcceptedAgainOnceWritten) {
  // 28 nines then digits, times 1e200: just under 1e308, read as 1e308 and written "1e308"
  // (found by the fuzzer: the second parse refused what the first had accepted).
  Document d, again;
  std::string error;
  const std::string near = "[" + std::string(28, '9') + std::string(80, '0') + "e200, 9.9999999999999999999e307]";
  ASSERT_TRUE(parse(d, near, &error)) << error;
  EXPECT_EQ(dump(d), "[1e308,1e308]");
  ASSERT_TRUE(parse(again, dump(d), &error)) << error;
  EXPECT_EQ(again[0].GetDouble(), 1e308);
  for (const char* n : {"1e308", "-1E+308", "10e307", "0.1e309", "1.000000000000000000000000000000e308"}) {
    EXPECT_TRUE(parse(d, std::string("[") + n + "]", &error)) << n << ": " << error;
    EXPECT_EQ(std::abs(d[0].GetDouble()), 1e308) << n;
  }
  // Anything above it stays out, however it is written.
  for (const char* n : {"1.0000000000000000000000001e308", "2e308", "11e307", "1e309", "10.000000000000000000001e307"}) {
    EXPECT_FALSE(parse(d, std::string("[") + n + "]", &error)) << n;
    EXPECT_EQ(error, "JSON number out of range") << n;
  }
}

TEST(Json, CtimeComesBackBitForBit) {
  Document d;
  ASSERT_TRUE(parse(d, "{\"ctime\":1700000000.12345}"));
  EXPECT_EQ(d["ctime"].GetDouble(), 1700000000.12345);
}

}  // namespace
}  // namespace gorgone::json
