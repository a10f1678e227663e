// Frame parsing and building, byte-compatible with gorgone/class/frame.pm::parse and
// gorgone/standard/library.pm::build_protocol.

#include "gorgone/protocol/frame.hpp"

#include <cstddef>

#include "gorgone/protocol/crypto.hpp"

namespace gorgone::protocol {

namespace {

constexpr std::size_t kNone = std::string_view::npos;

// Perl's \s on byte strings (no locale, no Unicode rules).
bool is_perl_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

// First position >= `from` where `pred` holds, or `end`. Queries are expected in non-decreasing
// order: the last answer is reused while it is still ahead of the query, so over a whole parse
// every position is tested at most once and hostile frames cannot make the parser quadratic.
// Out-of-order queries stay correct, they only rescan.
template <typename Pred>
class ForwardSearch {
 public:
  ForwardSearch(std::size_t end, Pred pred) : end_(end), pred_(pred) {}

  std::size_t find(std::size_t from) {
    if (valid_ && from >= from_ && from <= found_) return found_;
    std::size_t p = from;
    while (p < end_ && !pred_(p)) ++p;
    valid_ = true;
    from_ = from;
    found_ = p;
    return p;
  }

 private:
  std::size_t end_;
  Pred pred_;
  bool valid_ = false;
  std::size_t from_ = 0;
  std::size_t found_ = 0;
};

template <typename Pred>
ForwardSearch<Pred> make_search(std::size_t end, Pred pred) {
  return ForwardSearch<Pred>(end, pred);
}

// Emulates /^\[(.+?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s+/ (no /s: the groups never hold a newline)
// with Perl's backtracking order: the shortest ACTION for which the rest matches, then the
// shortest TOKEN, then the shortest TARGET. That is why "[A]x] [t] [] {}" has ACTION "A]x".
class FrameMatcher {
 public:
  explicit FrameMatcher(std::string_view s) : s_(s), n_(s.size()) {}

  std::optional<Frame> match() {
    if (n_ < 2 || s_[0] != '[') return std::nullopt;
    auto newline_b = make_search(n_, [this](std::size_t p) { return s_[p] == '\n'; });
    auto newline_c = make_search(n_, [this](std::size_t p) { return s_[p] == '\n'; });
    auto close_c = make_search(n_, [this](std::size_t p) { return is_close_then_space(p); });
    // End of TARGET for a TARGET starting at `c0`: first "]" + whitespace on the same line.
    auto target_end = [&](std::size_t c0) -> std::size_t {
      std::size_t k = close_c.find(c0);
      return k < newline_c.find(c0) ? k : kNone;
    };
    // A "]" that can end TOKEN: a separator whose TARGET can be closed.
    auto token_end = make_search(n_, [&](std::size_t j) {
      std::size_t c0 = after_separator(j);
      return c0 != kNone && target_end(c0) != kNone;
    });

    std::size_t action_limit = s_.find('\n', 1);
    if (action_limit == kNone) action_limit = n_;
    for (std::size_t i = 2; i < action_limit; ++i) {
      std::size_t b0 = after_separator(i);
      if (b0 == kNone) continue;
      std::size_t j = token_end.find(b0);
      if (j >= n_ || j >= newline_b.find(b0)) continue;
      std::size_t c0 = after_separator(j);
      std::size_t k = target_end(c0);
      std::size_t data = skip_spaces(k + 1);
      return Frame{std::string(s_.substr(1, i - 1)), std::string(s_.substr(b0, j - b0)),
                   std::string(s_.substr(c0, k - c0)), std::string(s_.substr(data))};
    }
    return std::nullopt;
  }

 private:
  std::size_t skip_spaces(std::size_t p) const {
    while (p < n_ && is_perl_space(s_[p])) ++p;
    return p;
  }

  bool is_close_then_space(std::size_t p) const {
    return s_[p] == ']' && p + 1 < n_ && is_perl_space(s_[p + 1]);
  }

  // For "]" + whitespace + "[" at `i`, the index after that "["; kNone otherwise.
  std::size_t after_separator(std::size_t i) const {
    if (!is_close_then_space(i)) return kNone;
    std::size_t m = skip_spaces(i + 1);
    return (m < n_ && s_[m] == '[') ? m + 1 : kNone;
  }

  std::string_view s_;
  std::size_t n_;
};

}  // namespace

std::optional<Frame> parse_frame(std::string_view text) { return FrameMatcher(text).match(); }

std::string build_frame(std::string_view action, std::string_view token, std::string_view target,
                        std::string_view data) {
  std::string out;
  out.reserve(action.size() + token.size() + target.size() + data.size() + 10);
  out.append("[").append(action).append("] [").append(token).append("] [").append(target).append("] ");
  out.append(data.empty() ? std::string_view("{}") : data);
  return out;
}

std::string build_response(std::string_view type, std::string_view token, int code,
                           std::string_view data_json) {
  // Perl tests /^PONG|SYNCLOGS$/: "starts with PONG" or "ends with SYNCLOGS" ($ also matches
  // before a final newline).
  auto ends_with = [&](std::string_view suffix) {
    return type.size() >= suffix.size() && type.substr(type.size() - suffix.size()) == suffix;
  };
  bool extra_target = type.substr(0, 4) == "PONG" || ends_with("SYNCLOGS") || ends_with("SYNCLOGS\n");

  std::string out;
  out.reserve(type.size() + token.size() + data_json.size() + 40);
  out.append("[").append(type).append("] [").append(token).append("] ");
  if (extra_target) out.append("[] ");
  out.append("{\"code\":").append(std::to_string(code)).append(",\"data\":");
  out.append(data_json.empty() ? std::string_view("null") : data_json);
  out.append("}");
  return out;
}

std::string generate_token(std::size_t bytes) { return to_hex(random_bytes(bytes)); }

bool is_safe_token(std::string_view token) {
  if (token.empty() || token.size() > 256) return false;
  for (char c : token) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace gorgone::protocol
