// HTML entities as Gorgone's pullwss poller writes them (Perl's HTML::Entities on the bytes
// of a message): its messages reach the central's listener encoded, byte by byte ("é" in
// UTF-8, bytes C3 A9, travels as "&Atilde;&copy;"), and the listener decodes them before
// reading the frame. Both directions here, so that our listener reads a Perl poller and our
// poller writes what a Perl listener reads.
// Thread-safety: pure function; any thread.
#pragma once

#include <string>
#include <string_view>

namespace gorgone::proxy {

// Decodes the five XML entities, HTML 4's Latin-1 names (&nbsp; ... &yuml;) and numeric
// references (decimal and hex): a code point below 256 becomes that byte (what Perl's
// decode_entities gives for the bytes its poller encoded), a larger one its UTF-8. Anything
// else (an unknown name, a reference to a surrogate or beyond U+10FFFF, a missing ';')
// is left as it is. (&#0; is a NUL byte, as Perl's decoder gives it.)
std::string decode_html_entities(std::string_view text);

// What Perl's encode_entities writes for these bytes with its default set: every byte but
// tab, LF, CR and printable ASCII other than " & ' < > becomes an entity (a name where HTML 4
// has one, "&#39;" for ', else "&#xHH;"). decode_html_entities(encode_html_entities(b)) == b.
std::string encode_html_entities(std::string_view bytes);

}  // namespace gorgone::proxy
