// The HTML entities of the wss listener and poller on arbitrary bytes: decoding is never
// longer than its input and leaves text without '&' unchanged; encoding round-trips.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"
#include "html_entities.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string out = gorgone::proxy::decode_html_entities(text);
  // Every entity is at least as long as the UTF-8 it stands for.
  FUZZ_CHECK(out.size() <= size);
  if (text.find('&') == std::string_view::npos) FUZZ_CHECK(out == text);
  FUZZ_CHECK(gorgone::proxy::decode_html_entities(gorgone::proxy::encode_html_entities(text)) == text);
  return 0;
}
