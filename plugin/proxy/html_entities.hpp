// HTML entities as Gorgone's pullwss poller writes them (Perl's HTML::Entities): its
// messages reach the central's listener encoded ("&quot;", "&eacute;", "&#233;", "&#xE9;"),
// which decodes them before reading the frame.
// Thread-safety: pure function; any thread.
#pragma once

#include <string>
#include <string_view>

namespace gorgone::proxy {

// Decodes the five XML entities, HTML 4's Latin-1 names (&nbsp; ... &yuml;) and numeric
// references (decimal and hex) to UTF-8. Anything else (an unknown name, a reference to 0,
// to a surrogate or beyond U+10FFFF, a missing ';') is left as it is.
std::string decode_html_entities(std::string_view text);

}  // namespace gorgone::proxy
