// gorgone::utf8: ill-formed UTF-8 and NUL become U+FFFD, one per maximal subpart; valid text
// is kept byte for byte.
#include "gorgone/utf8.hpp"

#include <gtest/gtest.h>

#include <string>

namespace gorgone::utf8 {
namespace {

const std::string R(kReplacement);

std::string Bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s += static_cast<char>(c);
  return s;
}

TEST(Utf8, ValidTextIsKeptAsIs) {
  for (std::string s : {std::string(""), std::string("plain ascii {\"a\":[1,2]}\t\n\x01\x7f"),
                        std::string("caf\xC3\xA9"),                 // é, 2 bytes
                        std::string("\xE6\x97\xA5\xE6\x9C\xAC"),    // 日本, 3 bytes
                        std::string("\xF0\x9F\x98\x80"),            // 😀, 4 bytes
                        std::string("\xC2\x80\xDF\xBF"),            // U+0080, U+07FF
                        std::string("\xE0\xA0\x80\xED\x9F\xBF"),    // U+0800, U+D7FF
                        std::string("\xEE\x80\x80\xEF\xBF\xBF"),    // U+E000, U+FFFF
                        std::string("\xF0\x90\x80\x80\xF4\x8F\xBF\xBF"),  // U+10000, U+10FFFF
                        R}) {
    EXPECT_TRUE(is_clean(s)) << s;
    EXPECT_EQ(sanitize(s), s);
    std::string copy = s;
    EXPECT_EQ(sanitize_in_place(copy), 0u);
    EXPECT_EQ(copy, s);
  }
}

TEST(Utf8, Latin1BytesBecomeReplacementCharacters) {
  EXPECT_FALSE(is_clean("caf\xE9"));
  EXPECT_EQ(sanitize("caf\xE9"), "caf" + R);
  // A lead byte followed by ASCII: the ASCII byte is kept (a JSON quote stays a quote).
  EXPECT_EQ(sanitize("{\"stdout\":\"caf\xE9\"}"), "{\"stdout\":\"caf" + R + "\"}");
  EXPECT_EQ(sanitize("\xE9t\xE9"), R + "t" + R);
}

TEST(Utf8, NulBecomesAReplacementCharacter) {
  std::string s("a\0b\0", 4);
  EXPECT_FALSE(is_clean(s));
  EXPECT_EQ(sanitize(s), "a" + R + "b" + R);
  EXPECT_EQ(sanitize_in_place(s), 2u);
  EXPECT_EQ(s, "a" + R + "b" + R);
}

TEST(Utf8, StrayContinuationAndInvalidBytes) {
  EXPECT_EQ(sanitize(Bytes({0x80})), R);
  EXPECT_EQ(sanitize(Bytes({0xBF, 0x80})), R + R);  // each stray byte is its own subpart
  EXPECT_EQ(sanitize(Bytes({0xC0, 0xC1, 0xF5, 0xFF, 0xFE})), R + R + R + R + R);
}

TEST(Utf8, OverlongsAreRefused) {
  EXPECT_EQ(sanitize(Bytes({0xC0, 0xAF})), R + R);              // '/' on 2 bytes
  EXPECT_EQ(sanitize(Bytes({0xC1, 0xBF})), R + R);
  EXPECT_EQ(sanitize(Bytes({0xE0, 0x80, 0xAF})), R + R + R);    // '/' on 3 bytes
  EXPECT_EQ(sanitize(Bytes({0xE0, 0x9F, 0xBF})), R + R + R);    // U+07FF on 3 bytes
  EXPECT_EQ(sanitize(Bytes({0xF0, 0x80, 0x80, 0xAF})), R + R + R + R);
  EXPECT_EQ(sanitize(Bytes({0xF0, 0x8F, 0xBF, 0xBF})), R + R + R + R);  // U+FFFF on 4 bytes
  EXPECT_EQ(sanitize(Bytes({0xC0, 0x80})), R + R);              // "modified UTF-8" NUL
}

TEST(Utf8, SurrogatesAndCodePointsAboveTheLastAreRefused) {
  EXPECT_EQ(sanitize(Bytes({0xED, 0xA0, 0x80})), R + R + R);  // U+D800
  EXPECT_EQ(sanitize(Bytes({0xED, 0xBF, 0xBF})), R + R + R);  // U+DFFF
  EXPECT_EQ(sanitize(Bytes({0xED, 0xA0, 0xBD, 0xED, 0xB8, 0x80})), R + R + R + R + R + R);  // a CESU-8 pair
  EXPECT_EQ(sanitize(Bytes({0xF4, 0x90, 0x80, 0x80})), R + R + R + R);  // U+110000
}

TEST(Utf8, TruncatedSequences) {
  // Cut at the end of the text: the valid prefix of a sequence is one subpart.
  EXPECT_EQ(sanitize("ab" + Bytes({0xC3})), "ab" + R);
  EXPECT_EQ(sanitize("ab" + Bytes({0xE6, 0x97})), "ab" + R);
  EXPECT_EQ(sanitize("ab" + Bytes({0xF0, 0x9F, 0x98})), "ab" + R);
  // Cut in the middle, followed by something else.
  EXPECT_EQ(sanitize(Bytes({0xF0, 0x9F, 0x98}) + "x"), R + "x");
  EXPECT_EQ(sanitize(Bytes({0xE6, 0x97, 0xC3, 0xA9})), R + "\xC3\xA9");
  EXPECT_EQ(sanitize(Bytes({0xF0, 0x9F, 0xF0, 0x9F, 0x98, 0x80})), R + "\xF0\x9F\x98\x80");
}

TEST(Utf8, SanitizedTextIsAlwaysClean) {
  // Every 1- and 2-byte string, and a few longer mixes.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      std::string s = Bytes({a, b});
      std::string out = sanitize(s);
      ASSERT_TRUE(is_clean(out)) << a << " " << b;
      if (is_clean(s)) {
        ASSERT_EQ(out, s);
      }
    }
  }
  std::string mix = "x" + Bytes({0xE2, 0x82}) + "\xE2\x82\xAC" + Bytes({0xF4, 0x8F, 0xBF}) + std::string("\0", 1) + "y";
  EXPECT_EQ(sanitize(mix), "x" + R + "\xE2\x82\xAC" + R + R + "y");
  EXPECT_TRUE(is_clean(sanitize(mix)));
}

}  // namespace
}  // namespace gorgone::utf8
