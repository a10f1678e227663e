#include "html_entities.hpp"

#include <cstdint>

namespace gorgone::proxy {
namespace {

// HTML 4's names for U+00A0 ... U+00FF, in order.
constexpr const char* kLatin1[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",    "copy",   "ordf",
    "laquo",  "not",    "shy",    "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",   "acute",  "micro",
    "para",   "middot", "cedil",  "sup1",   "ordm",   "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave",
    "Aacute", "Acirc",  "Atilde", "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",
    "Igrave", "Iacute", "Icirc",  "Iuml",   "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",
    "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",  "Uuml",   "Yacute", "THORN",  "szlig",  "agrave", "aacute",
    "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil", "egrave", "eacute", "ecirc",  "euml",   "igrave",
    "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute", "ocirc",  "otilde", "ouml",   "divide",
    "oslash", "ugrave", "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

void put_utf8(std::string& out, std::uint32_t c) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

constexpr std::uint32_t kNone = 0xFFFFFFFF;

// The code point `name` (what sits between '&' and ';') stands for, or kNone.
std::uint32_t entity(std::string_view name) {
  if (name.size() > 1 && name[0] == '#') {
    bool hex = name[1] == 'x' || name[1] == 'X';
    std::string_view digits = name.substr(hex ? 2 : 1);
    if (digits.empty() || digits.size() > 8) return kNone;
    std::uint32_t c = 0;
    for (char d : digits) {
      int v = d >= '0' && d <= '9' ? d - '0'
              : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
              : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10
                                            : -1;
      if (v < 0) return kNone;
      c = c * (hex ? 16 : 10) + static_cast<std::uint32_t>(v);
      if (c > 0x10FFFF) return kNone;
    }
    if (c >= 0xD800 && c <= 0xDFFF) return kNone;
    return c;
  }
  if (name == "quot") return '"';
  if (name == "amp") return '&';
  if (name == "lt") return '<';
  if (name == "gt") return '>';
  if (name == "apos") return '\'';
  for (std::uint32_t i = 0; i < 96; ++i)
    if (name == kLatin1[i]) return 0xA0 + i;
  return kNone;
}

}  // namespace

std::string decode_html_entities(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t amp = text.find('&', i);
    if (amp == std::string_view::npos) {
      out.append(text.substr(i));
      break;
    }
    out.append(text.substr(i, amp - i));
    // Entity names are short: look for ';' within 10 characters only.
    std::size_t semi = text.find(';', amp + 1);
    std::uint32_t c = kNone;
    if (semi != std::string_view::npos && semi - amp <= 10) c = entity(text.substr(amp + 1, semi - amp - 1));
    if (c == kNone) {
      out.push_back('&');
      i = amp + 1;
      continue;
    }
    if (c < 0x100) out.push_back(static_cast<char>(c));
    else put_utf8(out, c);
    i = semi + 1;
  }
  return out;
}

std::string encode_html_entities(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + bytes.size() / 4);
  for (char ch : bytes) {
    auto b = static_cast<unsigned char>(ch);
    bool plain = b == '\t' || b == '\n' || b == '\r' ||
                 (b >= 0x20 && b <= 0x7E && b != '"' && b != '&' && b != '\'' && b != '<' && b != '>');
    if (plain) {
      out.push_back(ch);
    } else if (b == '"') {
      out += "&quot;";
    } else if (b == '&') {
      out += "&amp;";
    } else if (b == '<') {
      out += "&lt;";
    } else if (b == '>') {
      out += "&gt;";
    } else if (b == '\'') {
      out += "&#39;";
    } else if (b >= 0xA0) {
      out.push_back('&');
      out += kLatin1[b - 0xA0];
      out.push_back(';');
    } else {
      static const char kHex[] = "0123456789ABCDEF";
      out += "&#x";
      if (b >= 16) out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 15]);
      out.push_back(';');
    }
  }
  return out;
}

}  // namespace gorgone::proxy
