// What Gorgone's Perl pullwss poller encodes (HTML::Entities) is what the listener decodes.
#include <gtest/gtest.h>

#include "html_entities.hpp"

namespace gorgone::proxy {
namespace {

TEST(HtmlEntities, TheTranscriptsEncodingDecodes) {
  EXPECT_EQ(decode_html_entities("{&quot;data&quot;:{&quot;id&quot;:&quot;6&quot;}}"), R"({"data":{"id":"6"}})");
  EXPECT_EQ(decode_html_entities("a &lt;b&gt; &amp; &#39;c&#39; &apos;"), "a <b> & 'c' '");
}

TEST(HtmlEntities, Latin1NamesAndNumbersBecomeUtf8) {
  EXPECT_EQ(decode_html_entities("caf&eacute; &Agrave;&yuml;&nbsp;"), "caf\xC3\xA9 \xC3\x80\xC3\xBF\xC2\xA0");
  EXPECT_EQ(decode_html_entities("&#233;&#xE9;&#x20AC;&#128512;"), "\xC3\xA9\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

// What is not an entity stays as it is: no '&' is lost, nothing outside Unicode is made.
TEST(HtmlEntities, AnythingElseIsLeftAlone) {
  for (const char* kept : {"&", "& ;", "&unknown;", "&#;", "&#x;", "&#0;", "&#xD800;", "&#x110000;", "&#99999999999;",
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
