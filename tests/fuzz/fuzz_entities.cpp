// The wss listener's HTML entity decoding (what a pullwss poller sends) on arbitrary text:
// never longer than its input, text without '&' unchanged, and valid UTF-8 in, valid out.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"
#include "gorgone/utf8.hpp"
#include "html_entities.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string out = gorgone::proxy::decode_html_entities(text);
  // Every entity is at least as long as the UTF-8 it stands for.
  FUZZ_CHECK(out.size() <= size);
  if (text.find('&') == std::string_view::npos) FUZZ_CHECK(out == text);
  if (gorgone::utf8::is_clean(text)) FUZZ_CHECK(gorgone::utf8::is_clean(out));
  return 0;
}
