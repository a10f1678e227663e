// Strict and lenient base64 and hex on arbitrary text, with round trips.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace gorgone::protocol;
  std::string_view text(reinterpret_cast<const char*>(data), size);

  auto strict = base64_decode(text);
  std::string lenient = base64_decode_lenient(text);
  if (strict) {
    // Whatever strict accepts, lenient (Perl's decode_base64) reads the same way.
    FUZZ_CHECK(lenient == strict.value());
    FUZZ_CHECK(strict->size() <= size / 4 * 3);
    auto again = base64_decode(base64_encode(strict.value()));
    FUZZ_CHECK(again.ok() && again.value() == strict.value());
  }
  auto mime = base64_decode_mime(text);
  if (mime) {
    // What the MIME reader accepts, lenient reads the same way (it also skips whitespace).
    FUZZ_CHECK(lenient == mime.value());
  }
  if (strict) FUZZ_CHECK(mime.ok() && mime.value() == strict.value());
  // Our own encoding is always accepted and read back exactly.
  std::string encoded = base64_encode(text);
  auto decoded = base64_decode(encoded);
  FUZZ_CHECK(decoded.ok() && decoded.value() == text);
  FUZZ_CHECK(base64_decode_lenient(encoded) == text);
  auto mime_again = base64_decode_mime(encoded);
  FUZZ_CHECK(mime_again.ok() && mime_again.value() == text);
  FUZZ_CHECK(base64url_encode(text).find_first_of("+/=") == std::string::npos);

  auto hex = from_hex(text);
  if (hex) FUZZ_CHECK(hex->size() * 2 == size);
  auto hex_again = from_hex(to_hex(text));
  FUZZ_CHECK(hex_again.ok() && hex_again.value() == text);
  return 0;
}
