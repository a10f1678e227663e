// Frame and response parsers on arbitrary bytes: no crash, no quadratic blow-up, the captures
// keep the properties the callers rely on, and on short inputs parse_frame agrees with the
// core's regular expression run by a backtracking engine (std::regex, whose ECMAScript
// semantics order alternatives like Perl's; '.' and '\s' are spelt out as Perl's byte classes).
#include <cstddef>
#include <cstdint>
#include <regex>
#include <string_view>

#include "fuzz_support.hpp"
#include "gorgone/protocol/frame.hpp"
#include "gorgone/protocol/response.hpp"

namespace {

// std::regex recurses per character: only short inputs are compared.
constexpr std::size_t kMaxReferenceSize = 512;

void compare_with_reference(std::string_view text, const std::optional<gorgone::protocol::Frame>& ours) {
  static const std::regex reference(
      R"(^\[([^\n]+?)\][ \t\n\v\f\r]+\[([^\n]*?)\][ \t\n\v\f\r]+\[([^\n]*?)\][ \t\n\v\f\r]+)");
  std::string s(text);
  std::smatch m;
  bool matched = std::regex_search(s, m, reference, std::regex_constants::match_continuous);
  FUZZ_CHECK(matched == ours.has_value());
  if (!matched) return;
  FUZZ_CHECK(m[1].str() == ours->action);
  FUZZ_CHECK(m[2].str() == ours->token);
  FUZZ_CHECK(m[3].str() == ours->target);
  FUZZ_CHECK(s.substr(static_cast<std::size_t>(m.length(0))) == ours->data);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace gorgone::protocol;
  if (size <= kMaxReferenceSize) compare_with_reference(text, parse_frame(text));

  if (auto f = parse_frame(text)) {
    // The groups of /^\[(.+?)\]\s+\[(.*?)\]\s+\[(.*?)\]\s+/ never span a line.
    FUZZ_CHECK(!f->action.empty());
    FUZZ_CHECK(f->action.find('\n') == std::string::npos);
    FUZZ_CHECK(f->token.find('\n') == std::string::npos);
    FUZZ_CHECK(f->target.find('\n') == std::string::npos);
    FUZZ_CHECK(f->action.size() + f->token.size() + f->target.size() + f->data.size() + 6 <= size);
    // What the host forwards must parse back to the same routing fields.
    std::string rebuilt = build_frame(*f);
    auto again = parse_frame(rebuilt);
    FUZZ_CHECK(again.has_value());
  }

  if (auto r = parse_response(text)) {
    FUZZ_CHECK(!r->type.empty());
    FUZZ_CHECK(r->json.size() <= size);
    // A response we build from the parsed parts must parse again.
    std::string rebuilt = build_response(r->type, r->token, 0, r->json);
    auto again = parse_response(rebuilt);
    if (r->token.find(']') == std::string::npos) FUZZ_CHECK(again.has_value());
  }
  (void)is_safe_token(text);
  return 0;
}
