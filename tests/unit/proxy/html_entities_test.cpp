// What Gorgone's Perl pullwss poller encodes (HTML::Entities) is what the listener decodes.
#include <gtest/gtest.h>

#include "html_entities.hpp"

namespace gorgone::proxy {
namespace {

TEST(HtmlEntities, TheTranscriptsEncodingDecodes) {
  EXPECT_EQ(decode_html_entities("{&quot;data&quot;:{&quot;id&quot;:&quot;6&quot;}}"), R"({"data":{"id":"6"}})");
  EXPECT_EQ(decode_html_entities("a &lt;b&gt; &amp; &#39;c&#39; &apos;"), "a <b> & 'c' '");
}

// Perl's poller encodes the bytes of its messages: UTF-8 "é" (C3 A9) travels as two
// entities and comes back as the same two bytes.
TEST(HtmlEntities, Latin1NamesAndSmallNumbersAreBytes) {
  EXPECT_EQ(decode_html_entities("caf&Atilde;&copy;"), "caf\xC3\xA9");
  EXPECT_EQ(decode_html_entities("&eacute;&#233;&#xE9;&#x80;"), "\xE9\xE9\xE9\x80");
  EXPECT_EQ(decode_html_entities("&#x20AC;&#128512;"), "\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST(HtmlEntities, EncodingIsPerlsAndRoundTrips) {
  EXPECT_EQ(encode_html_entities("{\"a\":\"caf\xC3\xA9 <&> 'x'\"}\t\x01\x7F"),
            "{&quot;a&quot;:&quot;caf&Atilde;&copy; &lt;&amp;&gt; &#39;x&#39;&quot;}\t&#x1;&#x7F;");
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  EXPECT_EQ(decode_html_entities(encode_html_entities(all)), all);
}

// What is not an entity stays as it is: no '&' is lost, nothing outside Unicode is made.
TEST(HtmlEntities, AnythingElseIsLeftAlone) {
  for (const char* kept : {"&", "& ;", "&unknown;", "&#;", "&#x;", "&#xD800;", "&#x110000;", "&#99999999999;",
                           "&quot", "&#12a;", "&verylongnamethatisnotanentity;", "&&amp"}) {
    std::string expected = kept;
    if (expected == "&&amp") expected = "&&amp";
    EXPECT_EQ(decode_html_entities(kept), expected) << kept;
  }
  EXPECT_EQ(decode_html_entities("&&amp;"), "&&");
  EXPECT_EQ(decode_html_entities(std::string("a\0b", 3)), std::string("a\0b", 3));
}

}  // namespace
}  // namespace gorgone::proxy
