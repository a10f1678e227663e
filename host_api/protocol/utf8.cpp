#include "gorgone/utf8.hpp"

#include <cstdint>

namespace gorgone::utf8 {

namespace {

// Length of the well-formed sequence starting at text[i], or 0 when the bytes there are
// ill-formed; then *subpart is the length of the maximal subpart to replace (at least 1).
// Table 3-7 of the Unicode Standard (well-formed UTF-8 byte sequences).
std::size_t Sequence(std::string_view text, std::size_t i, std::size_t* subpart) {
  auto b = [&](std::size_t k) { return static_cast<std::uint8_t>(text[k]); };
  std::uint8_t c = b(i);
  *subpart = 1;
  if (c == 0x00) return 0;
  if (c < 0x80) return 1;
  std::size_t len;
  std::uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;  // continuation byte, C0, C1, F5..FF
  }
  for (std::size_t k = 1; k < len; ++k) {
    if (i + k >= text.size()) return 0;  // cut short: the subpart so far
    std::uint8_t n = b(i + k);
    if (n < (k == 1 ? lo : 0x80) || n > (k == 1 ? hi : 0xBF)) return 0;
    *subpart = k + 1;
  }
  return len;
}

}  // namespace

bool is_clean(std::string_view text) {
  std::size_t subpart;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = Sequence(text, i, &subpart);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string sanitize(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t subpart;
  std::size_t clean_from = 0;  // start of the run of valid bytes not yet copied
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = Sequence(text, i, &subpart);
    if (n != 0) {
      i += n;
      continue;
    }
    out.append(text.data() + clean_from, i - clean_from);
    out.append(kReplacement);
    i += subpart;
    clean_from = i;
  }
  out.append(text.data() + clean_from, text.size() - clean_from);
  return out;
}

std::size_t sanitize_in_place(std::string& text) {
  if (is_clean(text)) return 0;
  std::size_t count = 0, subpart;
  for (std::size_t i = 0; i < text.size();) {
    std::size_t n = Sequence(text, i, &subpart);
    if (n == 0) ++count;
    i += n != 0 ? n : subpart;
  }
  text = sanitize(text);
  return count;
}

}  // namespace gorgone::utf8
