// UTF-8 repair for text that must be stored or sent as UTF-8 (PostgreSQL text, JSON): a
// command's output, a row synced from a node that passed foreign bytes through.
// Ill-formed sequences (RFC 3629: stray continuation bytes, overlongs, surrogates, code
// points above U+10FFFF, sequences cut short) and NUL bytes, which PostgreSQL text cannot
// hold, become U+FFFD. Each maximal subpart of an ill-formed sequence gives one U+FFFD (the
// Unicode Standard's recommended practice, as browsers decode), so an ASCII byte is never
// swallowed: a JSON text keeps its structure and only the characters inside its strings
// change. Valid text comes back byte for byte.
// Thread-safety: reentrant.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace gorgone::utf8 {

inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// True when `text` is well-formed UTF-8 without a NUL byte (sanitize would not change it).
bool is_clean(std::string_view text);

// `text` with every ill-formed subpart and every NUL byte replaced by U+FFFD.
std::string sanitize(std::string_view text);

// Same in place; returns how many replacements were made (0: `text` is unchanged).
std::size_t sanitize_in_place(std::string& text);

}  // namespace gorgone::utf8
